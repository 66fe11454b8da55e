-- Run numbers from a table of counters of their own. PostgreSQL.
--
-- run_counters.last_number is the highest number given to a run of the pipeline. On PostgreSQL
-- createRun takes the next one in a statement of its own, committed at once (synchronous_commit
-- off: see Store.counter), before the run's transaction commits: a pipeline's deliveries no
-- longer queue behind one row lock held until each COMMIT. Nothing references the table, so
-- the foreign-key checks of runs and deliveries (KEY SHARE locks on the pipeline row) never
-- meet the counter's updates. A pipeline without a row has never numbered a run (the row is
-- made by the first run); the counters continue pipelines.last_run_number, which goes.

CREATE TABLE run_counters (
    pipeline_id BIGINT PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    last_number BIGINT NOT NULL
);
INSERT INTO run_counters (pipeline_id, last_number) SELECT id, last_run_number FROM pipelines WHERE last_run_number > 0;
ALTER TABLE pipelines DROP COLUMN last_run_number;
