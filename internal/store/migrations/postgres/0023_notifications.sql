-- Run notifications (issue 15): a pipeline's notify targets get a signed POST when a run ends,
-- at least once, from the database.
--
-- notify_pending is the outbox of ended runs: the trigger below inserts a run's row in the
-- statement (so the transaction) that moves the run to success, failed or canceled, whatever
-- path ends it (a job's end, a cancel, the rescuer), so a crash can never lose an ended run.
-- A server's notifier reads the run's definition, inserts one notifications row per matching
-- target and deletes the pending row, in one transaction.
CREATE TABLE notify_pending (
    run_id   BIGINT      PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    ended_at TIMESTAMPTZ NOT NULL
);
CREATE FUNCTION runs_ended_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_pending (run_id, ended_at) VALUES (NEW.id, COALESCE(NEW.finished_at, now()))
    ON CONFLICT (run_id) DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER runs_ended_notify AFTER UPDATE OF status ON runs FOR EACH ROW
WHEN (NEW.status IN ('success', 'failed', 'canceled') AND OLD.status NOT IN ('success', 'failed', 'canceled'))
EXECUTE FUNCTION runs_ended_notify();
-- One row per run and notify target (its index in the run's definition): url and secret (the
-- name of the secret variable that signs it; '' = unsigned) as the definition said. delivery is
-- the id the receiver dedupes by (X-Flowd-Delivery). status: pending (the notifier tries it
-- at next_attempt_at; a claim sets lease_until and counts the attempt), delivered (a 2xx) or
-- failed (give_up_at passed: 24 h after the run ended). last_* are the newest attempt's.
CREATE TABLE notifications (
    id               BIGSERIAL   PRIMARY KEY,
    run_id           BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    target           INTEGER     NOT NULL,
    url              TEXT        NOT NULL,
    secret           TEXT        NOT NULL DEFAULT '',
    delivery         TEXT        NOT NULL UNIQUE,
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    give_up_at       TIMESTAMPTZ NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    UNIQUE (run_id, target)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
-- Each attempt of a notification: when, how long, the HTTP status (NULL: no answer) and error.
CREATE TABLE notification_attempts (
    notification_id BIGINT      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    number          INTEGER     NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    duration_ms     BIGINT      NOT NULL,
    status_code     INTEGER,
    error           TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, number)
);
