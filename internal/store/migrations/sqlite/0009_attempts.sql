-- Job attempts, leases, nodes and the leader lease. SQLite (times: unix nanoseconds).
-- See the PostgreSQL migration of the same number for what each table means. SQLite cannot add
-- a CHECK to an existing table, so triggers refuse an unknown status on runs, jobs and steps.
CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,
    runner       TEXT    NOT NULL,
    node         TEXT    NOT NULL,
    instance     TEXT    NOT NULL,
    token_hash   BLOB    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'canceling', 'finished', 'lost')),
    reason       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    UNIQUE (job_id, number)
);
CREATE INDEX attempts_live ON attempts (expires_at) WHERE state IN ('running', 'canceling');
CREATE INDEX attempts_node ON attempts (node, instance) WHERE state IN ('running', 'canceling');

ALTER TABLE jobs ADD COLUMN attempt_id INTEGER REFERENCES attempts (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retry_lost INTEGER NOT NULL DEFAULT 0 CHECK (retry_lost BETWEEN 0 AND 3);

CREATE TABLE nodes (
    name         TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('server', 'agent')),
    instance     TEXT    NOT NULL,
    version      TEXT    NOT NULL DEFAULT '',
    addr         TEXT    NOT NULL DEFAULT '',
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

CREATE TABLE leaders (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    elected_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TRIGGER runs_status_insert BEFORE INSERT ON runs
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: runs_status'); END;
CREATE TRIGGER runs_status_update BEFORE UPDATE OF status ON runs
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: runs_status'); END;
CREATE TRIGGER jobs_status_insert BEFORE INSERT ON jobs
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: jobs_status'); END;
CREATE TRIGGER jobs_status_update BEFORE UPDATE OF status ON jobs
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: jobs_status'); END;
CREATE TRIGGER steps_status_insert BEFORE INSERT ON steps
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: steps_status'); END;
CREATE TRIGGER steps_status_update BEFORE UPDATE OF status ON steps
WHEN NEW.status NOT IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: steps_status'); END;
