-- Backpressure (trigger.Backlog): a few times a second each server counts the queued runs per
-- pipeline and the runs that ended in the last minute per pipeline. Both indexes are rebuilt
-- to hold pipeline_id too, so each count reads an index only; no index is added, so no write
-- of a run pays for this. RunsEnded repeats runs_log_kept's condition so that it can use it
-- (log retention is at least an hour, so no run that ended within the minute has lost its log).
-- SQLite reads a column of that condition from the table unless the index holds it, hence
-- log_expired_at (always NULL in this index) at its end.
DROP INDEX runs_status;
CREATE INDEX runs_status ON runs (status, pipeline_id);
DROP INDEX runs_log_kept;
CREATE INDEX runs_log_kept ON runs (finished_at, pipeline_id, log_expired_at) WHERE log_expired_at IS NULL AND finished_at IS NOT NULL;
