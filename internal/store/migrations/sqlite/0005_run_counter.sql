-- Run numbers from a per-pipeline counter. SQLite.
--
-- last_run_number is the highest number given to a run of the pipeline. createRun takes the next
-- one with UPDATE … RETURNING instead of reading MAX(number) under a lock held from the start
-- of its transaction, so on PostgreSQL the pipeline row is locked only from the run's INSERT
-- to COMMIT. It starts at the pipeline's highest run number, so numbering continues.

ALTER TABLE pipelines ADD COLUMN last_run_number INTEGER NOT NULL DEFAULT 0;
UPDATE pipelines SET last_run_number = COALESCE((SELECT MAX(number) FROM runs WHERE runs.pipeline_id = pipelines.id), 0);
