-- Job attempts, leases, nodes and the leader lease. PostgreSQL.
--
-- A claim of a job creates attempt n (1, 2, …): who holds it (runner: "<node>/<slot>" for a
-- server's slot, an agent's name later), which process of that node (instance: random per
-- start, so a restarted node knows which attempts its previous instance left), a hashed random
-- token, and a lease that expires at the database's now() + TTL. The job points at its current
-- attempt. Every write a runner makes for a job names its attempt and is refused unless that
-- attempt is still running or canceling (fencing). The leader (a row of leaders) sweeps
-- attempts whose lease expired: they become lost.
CREATE TABLE attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       BIGINT      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number       INTEGER     NOT NULL,
    runner       TEXT        NOT NULL,
    node         TEXT        NOT NULL,
    instance     TEXT        NOT NULL,
    token_hash   BYTEA       NOT NULL,
    state        TEXT        NOT NULL CHECK (state IN ('running', 'canceling', 'finished', 'lost')),
    reason       TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    UNIQUE (job_id, number)
);
CREATE INDEX attempts_live ON attempts (expires_at) WHERE state IN ('running', 'canceling');
CREATE INDEX attempts_node ON attempts (node, instance) WHERE state IN ('running', 'canceling');

ALTER TABLE jobs ADD COLUMN attempt_id BIGINT REFERENCES attempts (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- retry_lost is how many times a job whose runner was lost is queued again (retry: {when: [runner_lost], max: N}).
ALTER TABLE jobs ADD COLUMN retry_lost INTEGER NOT NULL DEFAULT 0 CHECK (retry_lost BETWEEN 0 AND 3);

-- Servers (kind server) and, later, agents, each with a heartbeat.
CREATE TABLE nodes (
    name         TEXT        PRIMARY KEY,
    kind         TEXT        NOT NULL CHECK (kind IN ('server', 'agent')),
    instance     TEXT        NOT NULL,
    version      TEXT        NOT NULL DEFAULT '',
    addr         TEXT        NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- One row per elected duty (name 'rescuer'): held by a node instance until expires_at.
CREATE TABLE leaders (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    elected_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE runs ADD CONSTRAINT runs_status CHECK (status IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped'));
ALTER TABLE jobs ADD CONSTRAINT jobs_status CHECK (status IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped'));
ALTER TABLE steps ADD CONSTRAINT steps_status CHECK (status IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped'));
