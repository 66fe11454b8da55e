-- Run numbers from a table of counters of their own. SQLite.
--
-- See the PostgreSQL migration of the same number. On SQLite the counter is still taken inside
-- the run's transaction (one writer: nothing waits on it), with the same statement.

CREATE TABLE run_counters (
    pipeline_id INTEGER PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    last_number INTEGER NOT NULL
);
INSERT INTO run_counters (pipeline_id, last_number) SELECT id, last_run_number FROM pipelines WHERE last_run_number > 0;
ALTER TABLE pipelines DROP COLUMN last_run_number;
