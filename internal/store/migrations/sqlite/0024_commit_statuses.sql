-- Commit statuses (issue 15). SQLite (times: unix nanoseconds). See the PostgreSQL migration
-- of the same number for what each table and column means.
CREATE TABLE commit_statuses (
    run_id           INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state            TEXT    NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    sent_state       TEXT    NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,
    tries            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    give_up_at       INTEGER,
    last_status_code INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    changed_at       INTEGER NOT NULL
);
CREATE INDEX commit_statuses_due ON commit_statuses (next_attempt_at) WHERE status = 'pending';
CREATE TRIGGER runs_commit_status_insert AFTER INSERT ON runs
WHEN NEW.git IS NOT NULL AND json_extract(NEW.git, '$.status_token_var') IS NOT NULL
    AND NEW.status IN ('queued', 'running', 'success', 'failed', 'canceled')
BEGIN
    INSERT INTO commit_statuses (run_id, state, status, next_attempt_at, changed_at)
    VALUES (NEW.id, NEW.status, 'pending', 0, CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER));
END;
CREATE TRIGGER runs_commit_status_update AFTER UPDATE OF status ON runs
WHEN NEW.status IS NOT OLD.status AND NEW.git IS NOT NULL AND json_extract(NEW.git, '$.status_token_var') IS NOT NULL
    AND NEW.status IN ('queued', 'running', 'success', 'failed', 'canceled')
BEGIN
    INSERT INTO commit_statuses (run_id, state, status, next_attempt_at, changed_at)
    VALUES (NEW.id, NEW.status, 'pending', 0, CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER))
    ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, version = version + 1, status = 'pending',
        attempts = 0, next_attempt_at = excluded.next_attempt_at, give_up_at = NULL, changed_at = excluded.changed_at;
END;
CREATE TABLE commit_status_attempts (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, number)
);
