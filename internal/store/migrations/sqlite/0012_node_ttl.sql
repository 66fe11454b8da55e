-- Each node's own lease TTL, in milliseconds. See the PostgreSQL migration of the same number.
ALTER TABLE nodes ADD COLUMN lease_ttl_ms INTEGER NOT NULL DEFAULT 60000 CHECK (lease_ttl_ms > 0);
