-- Run notifications (issue 15). SQLite (times: unix nanoseconds). See the PostgreSQL migration
-- of the same number for what each table and column means.
CREATE TABLE notify_pending (
    run_id   INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    ended_at INTEGER NOT NULL
);
CREATE TRIGGER runs_ended_notify AFTER UPDATE OF status ON runs
WHEN NEW.status IN ('success', 'failed', 'canceled') AND OLD.status NOT IN ('success', 'failed', 'canceled')
BEGIN
    INSERT INTO notify_pending (run_id, ended_at) VALUES (NEW.id, COALESCE(NEW.finished_at, 0))
    ON CONFLICT (run_id) DO NOTHING;
END;
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    target           INTEGER NOT NULL,
    url              TEXT    NOT NULL,
    secret           TEXT    NOT NULL DEFAULT '',
    delivery         TEXT    NOT NULL UNIQUE,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    give_up_at       INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    UNIQUE (run_id, target)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE TABLE notification_attempts (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, number)
);
