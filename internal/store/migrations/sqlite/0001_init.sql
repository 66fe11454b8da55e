-- flowd schema, SQLite. Times are INTEGER unix nanoseconds, UTC; booleans are 0/1.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE pipelines (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    revision   INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE pipeline_revisions (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    secrets     BLOB,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (pipeline_id, revision)
);

CREATE TABLE members (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'developer', 'admin')),
    PRIMARY KEY (pipeline_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    pipeline_id      INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    trigger_kind     TEXT    NOT NULL,
    triggered_by     TEXT    NOT NULL,
    variables        TEXT    NOT NULL DEFAULT '{}',
    secret_variables BLOB,
    stage            INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    message          TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE UNIQUE INDEX runs_pipeline_number ON runs (pipeline_id, number DESC);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage       INTEGER NOT NULL,
    stage_name  TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    timeout_ms  INTEGER NOT NULL DEFAULT 0,
    env         TEXT    NOT NULL DEFAULT '{}',
    message     TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX jobs_status_run ON jobs (status, run_id);
CREATE INDEX jobs_run_stage ON jobs (run_id, stage, idx);

CREATE TABLE steps (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    script      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    exit_code   INTEGER,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX steps_job ON steps (job_id, idx);

CREATE TABLE log_chunks (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    job_id INTEGER,
    data   BLOB    NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
