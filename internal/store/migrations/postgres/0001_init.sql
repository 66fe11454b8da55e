-- flowd schema, PostgreSQL. Times are timestamptz.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    admin         BOOLEAN     NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    hash         BYTEA       NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE pipelines (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    revision   BIGINT      NOT NULL,
    created_by TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE pipeline_revisions (
    pipeline_id BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    revision    BIGINT      NOT NULL,
    source      TEXT        NOT NULL,
    secrets     BYTEA,
    created_by  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pipeline_id, revision)
);

CREATE TABLE members (
    pipeline_id BIGINT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT   NOT NULL CHECK (role IN ('viewer', 'developer', 'admin')),
    PRIMARY KEY (pipeline_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id      BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    number           BIGINT      NOT NULL,
    revision         BIGINT      NOT NULL,
    status           TEXT        NOT NULL,
    trigger_kind     TEXT        NOT NULL,
    triggered_by     TEXT        NOT NULL,
    variables        TEXT        NOT NULL DEFAULT '{}',
    secret_variables BYTEA,
    stage            INTEGER     NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN     NOT NULL DEFAULT FALSE,
    message          TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX runs_pipeline_number ON runs (pipeline_id, number DESC);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage       INTEGER     NOT NULL,
    stage_name  TEXT        NOT NULL,
    idx         INTEGER     NOT NULL,
    name        TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    timeout_ms  BIGINT      NOT NULL DEFAULT 0,
    env         TEXT        NOT NULL DEFAULT '{}',
    message     TEXT        NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX jobs_status_run ON jobs (status, run_id);
CREATE INDEX jobs_run_stage ON jobs (run_id, stage, idx);

CREATE TABLE steps (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      BIGINT      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         INTEGER     NOT NULL,
    name        TEXT        NOT NULL,
    script      TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    exit_code   INTEGER,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX steps_job ON steps (job_id, idx);

CREATE TABLE log_chunks (
    run_id BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    BIGINT      NOT NULL,
    job_id BIGINT,
    data   BYTEA       NOT NULL,
    at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, seq)
);
