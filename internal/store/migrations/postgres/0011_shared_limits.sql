-- Limits that hold for every server on the database. PostgreSQL.
--
-- Times here are the database's clock in unix nanoseconds (BIGINT), as on SQLite: a token
-- bucket is arithmetic on times, and no process clock ever writes them.
--
-- A token bucket per key (webhook:<pipeline id>): tokens as of at; took says whether the last
-- request took one (RateTake's one statement reads its own verdict back).
CREATE TABLE rate_buckets (
    key    TEXT             PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at     BIGINT           NOT NULL,
    took   BOOLEAN          NOT NULL
);

-- Sign-in attempts per key (a SHA-256 of the user name and the caller's address, so no typed
-- name is kept): count attempts in the window that began at since; counted says whether the
-- last attempt was counted or refused.
CREATE TABLE sign_in_attempts (
    key     TEXT    PRIMARY KEY,
    count   INTEGER NOT NULL,
    since   BIGINT  NOT NULL,
    counted BOOLEAN NOT NULL
);
