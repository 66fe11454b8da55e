-- Build agents (issue 13). SQLite (times: unix nanoseconds). See the PostgreSQL migration of
-- the same number for what each table and column means.
CREATE TABLE agent_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    token_hash BLOB    NOT NULL UNIQUE,
    labels     TEXT    NOT NULL DEFAULT '{}',
    created_by TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE agents (
    id            INTEGER PRIMARY KEY,
    token_id      INTEGER NOT NULL REFERENCES agent_tokens (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    labels        TEXT    NOT NULL DEFAULT '{}',
    capacity      INTEGER NOT NULL CHECK (capacity BETWEEN 1 AND 256),
    version       TEXT    NOT NULL DEFAULT '',
    paused        INTEGER NOT NULL DEFAULT 0,
    registered_at INTEGER NOT NULL,
    UNIQUE (token_id, name)
);
CREATE INDEX agents_name ON agents (name);

ALTER TABLE attempts ADD COLUMN log_length INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN log_sha BLOB;
ALTER TABLE log_chunks ADD COLUMN attempt_id INTEGER;
CREATE INDEX log_chunks_attempt ON log_chunks (attempt_id) WHERE attempt_id IS NOT NULL;
