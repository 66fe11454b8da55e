-- Each node's own lease TTL (its --lease-ttl), in milliseconds: a node is live while its last
-- heartbeat is within it, by the database's clock. Judged by the node's own TTL, not by
-- whoever asks, servers started with different --lease-ttl agree on who is live, and a server
-- with a short TTL cannot take the name of a live one with a long TTL.
ALTER TABLE nodes ADD COLUMN lease_ttl_ms BIGINT NOT NULL DEFAULT 60000 CHECK (lease_ttl_ms > 0);
