-- Log retention: a run whose log chunks the retention sweep deleted keeps its record, with the
-- time its log expired. The partial index finds the finished runs whose log is still kept.
ALTER TABLE runs ADD COLUMN log_expired_at TIMESTAMPTZ;
CREATE INDEX runs_log_kept ON runs (finished_at) WHERE log_expired_at IS NULL AND finished_at IS NOT NULL;
