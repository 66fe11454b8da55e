-- Commit statuses (issue 15): a run at a commit of a pipeline whose source has a status_token
-- reports each of its states to the code host, at least once, from the database.
--
-- commit_statuses holds one row per such run: the newest state to report. The triggers below
-- write it in the statement (so the transaction) that creates the run or changes its status,
-- whatever path does it, so a crash never loses a state. Only runs whose git record names the
-- status token's variable (status_token_var) have one. A newer state replaces an older one
-- not yet sent (the host shows the newest anyway) and bumps version, which fences the
-- answer of an attempt that was sending the older one.
--
-- status: pending (the reporter tries it at next_attempt_at; a claim sets lease_until, counts
-- the attempt in attempts (this version's, for the backoff) and tries (the run's, numbering
-- commit_status_attempts), and sets give_up_at, 24 h after this version's first try, when it
-- has none), sent (the host accepted it) or failed (the host refused it for good, or
-- give_up_at passed). sent_state is the newest state the host accepted; last_* are the newest
-- attempt's.
CREATE TABLE commit_statuses (
    run_id           BIGINT      PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state            TEXT        NOT NULL,
    version          INTEGER     NOT NULL DEFAULT 1,
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    sent_state       TEXT        NOT NULL DEFAULT '',
    attempts         INTEGER     NOT NULL DEFAULT 0,
    tries            INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    give_up_at       TIMESTAMPTZ,
    last_status_code INTEGER,
    last_error       TEXT        NOT NULL DEFAULT '',
    changed_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX commit_statuses_due ON commit_statuses (next_attempt_at) WHERE status = 'pending';
CREATE FUNCTION runs_commit_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_statuses (run_id, state, status, next_attempt_at, changed_at)
    VALUES (NEW.id, NEW.status, 'pending', to_timestamp(0), now())
    ON CONFLICT (run_id) DO UPDATE SET state = EXCLUDED.state, version = commit_statuses.version + 1,
        status = 'pending', attempts = 0, next_attempt_at = EXCLUDED.next_attempt_at, give_up_at = NULL,
        changed_at = EXCLUDED.changed_at;
    RETURN NULL;
END;
$$;
CREATE TRIGGER runs_commit_status_insert AFTER INSERT ON runs FOR EACH ROW
WHEN (NEW.git IS NOT NULL AND (NEW.git::jsonb ->> 'status_token_var') IS NOT NULL
    AND NEW.status IN ('queued', 'running', 'success', 'failed', 'canceled'))
EXECUTE FUNCTION runs_commit_status();
CREATE TRIGGER runs_commit_status_update AFTER UPDATE OF status ON runs FOR EACH ROW
WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.git IS NOT NULL
    AND (NEW.git::jsonb ->> 'status_token_var') IS NOT NULL
    AND NEW.status IN ('queued', 'running', 'success', 'failed', 'canceled'))
EXECUTE FUNCTION runs_commit_status();
-- Each attempt of a run's commit status: which state, when, how long, the HTTP status (NULL:
-- no answer) and the error.
CREATE TABLE commit_status_attempts (
    run_id      BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    number      INTEGER     NOT NULL,
    state       TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT      NOT NULL,
    status_code INTEGER,
    error       TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, number)
);
