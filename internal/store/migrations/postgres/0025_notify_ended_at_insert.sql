-- A run stored already ended (one without jobs: success at once) is notified too. Migration
-- 0023's trigger sees only status UPDATEs; this one sees such INSERTs.
CREATE TRIGGER runs_ended_notify_insert AFTER INSERT ON runs FOR EACH ROW
WHEN (NEW.status IN ('success', 'failed', 'canceled'))
EXECUTE FUNCTION runs_ended_notify();
