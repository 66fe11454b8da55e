-- A run stored already ended (one without jobs) is notified too; see the PostgreSQL migration
-- of the same number.
CREATE TRIGGER runs_ended_notify_insert AFTER INSERT ON runs
WHEN NEW.status IN ('success', 'failed', 'canceled')
BEGIN
    INSERT INTO notify_pending (run_id, ended_at) VALUES (NEW.id, COALESCE(NEW.finished_at, 0))
    ON CONFLICT (run_id) DO NOTHING;
END;
