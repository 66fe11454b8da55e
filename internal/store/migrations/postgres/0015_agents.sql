-- Build agents (issue 13, docs/agent-protocol.md). PostgreSQL.
--
-- An agent token is a secret a global admin creates for one or more `flowd agent` processes;
-- only its SHA-256 is kept. labels, a JSON object, limits the labels its agents may give ({}:
-- any). A revoked token keeps its row (revoked_at set), so its name is not reused by mistake.
CREATE TABLE agent_tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    token_hash BYTEA       NOT NULL UNIQUE,
    labels     TEXT        NOT NULL DEFAULT '{}',
    created_by TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- An agent is one `flowd agent` identity: a row per token and name, kept across its restarts
-- (register is idempotent). It is also the node of kind agent of its name (nodes), whose
-- instance is the agent process's current one and whose heartbeat its calls renew.
CREATE TABLE agents (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id      BIGINT      NOT NULL REFERENCES agent_tokens (id) ON DELETE CASCADE,
    name          TEXT        NOT NULL,
    labels        TEXT        NOT NULL DEFAULT '{}',
    capacity      INTEGER     NOT NULL CHECK (capacity BETWEEN 1 AND 256),
    version       TEXT        NOT NULL DEFAULT '',
    paused        BOOLEAN     NOT NULL DEFAULT false,
    registered_at TIMESTAMPTZ NOT NULL,
    UNIQUE (token_id, name)
);
CREATE INDEX agents_name ON agents (name);

-- The log an agent sends by offset: per attempt, the bytes stored so far (log_length) and the
-- SHA-256 state after them (log_sha, Go's marshaled sha256 digest; NULL before the first
-- byte), so the finish's checksum is checked without reading the log back. Chunks name their
-- attempt, so a checksum mismatch drops that attempt's chunks only.
ALTER TABLE attempts ADD COLUMN log_length BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN log_sha BYTEA;
ALTER TABLE log_chunks ADD COLUMN attempt_id BIGINT;
CREATE INDEX log_chunks_attempt ON log_chunks (attempt_id) WHERE attempt_id IS NOT NULL;
