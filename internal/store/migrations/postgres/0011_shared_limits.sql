-- Limits that hold for every server on the database. PostgreSQL.
--
-- Times here are the database's clock in unix nanoseconds (BIGINT), as on SQLite: a token
-- bucket is arithmetic on times, and no process clock ever writes them.
--
-- The tables are UNLOGGED: their changes write no WAL, so a commit does not wait for a flush
-- while it holds the row of a hot key (one trigger's bucket took ~400 takes/s logged, ~1,900
-- unlogged, on the 2-core test machine under load). A crash of PostgreSQL empties them, which
-- forgets some counts (buckets start full again, sign-in windows start over), and standbys do
-- not have them; both are harmless for limits that look back minutes.
--
-- A token bucket per key (webhook:<pipeline id>): tokens as of at; took says whether the last
-- request took one (RateTake's one statement reads its own verdict back).
CREATE UNLOGGED TABLE rate_buckets (
    key    TEXT             PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at     BIGINT           NOT NULL,
    took   BOOLEAN          NOT NULL
);

-- Sign-in attempts per key (an HMAC of the user name and the caller's address, so no typed
-- name is kept): count attempts in the window that began at since; counted says whether the
-- last attempt was counted or refused.
CREATE UNLOGGED TABLE sign_in_attempts (
    key     TEXT    PRIMARY KEY,
    count   INTEGER NOT NULL,
    since   BIGINT  NOT NULL,
    counted BOOLEAN NOT NULL
);
