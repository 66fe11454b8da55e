-- Limits that hold for every server on the database. SQLite serves one server, which keeps
-- these limits in its memory; the tables exist so both databases have one schema and one
-- suite of tests. Times are the database's clock in unix nanoseconds.
CREATE TABLE rate_buckets (
    key    TEXT    PRIMARY KEY,
    tokens REAL    NOT NULL,
    at     INTEGER NOT NULL,
    took   INTEGER NOT NULL
);

CREATE TABLE sign_in_attempts (
    key     TEXT    PRIMARY KEY,
    count   INTEGER NOT NULL,
    since   INTEGER NOT NULL,
    counted INTEGER NOT NULL
);
