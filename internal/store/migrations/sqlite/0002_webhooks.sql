-- Webhook triggers, their audit log, deliveries and idempotency keys. SQLite.

CREATE TABLE webhook_triggers (
    pipeline_id   INTEGER PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    enabled       INTEGER NOT NULL DEFAULT 0,
    token_hash    BLOB    NOT NULL UNIQUE,
    token_sealed  BLOB    NOT NULL,
    secret_sealed BLOB,
    owner_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    owner_name    TEXT    NOT NULL,
    enabled_at    INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX webhook_triggers_owner ON webhook_triggers (owner_id);

CREATE TABLE webhook_audit (
    id          INTEGER PRIMARY KEY,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX webhook_audit_pipeline ON webhook_audit (pipeline_id, id DESC);

-- redelivery_of and replay_of are plain ids: the delivery they name may have been pruned.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    pipeline_id     INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    received_at     INTEGER NOT NULL,
    remote_addr     TEXT    NOT NULL DEFAULT '',
    headers         TEXT    NOT NULL DEFAULT '{}',
    body            BLOB,
    body_truncated  INTEGER NOT NULL DEFAULT 0,
    status_code     INTEGER NOT NULL,
    error_code      TEXT    NOT NULL DEFAULT '',
    response        BLOB,
    run_id          INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    trace           BLOB,
    dry_run         INTEGER NOT NULL DEFAULT 0,
    redelivery_of   INTEGER,
    replay_of       INTEGER,
    idempotency_key TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_pipeline ON deliveries (pipeline_id, id DESC);
CREATE INDEX deliveries_received ON deliveries (received_at);
CREATE INDEX deliveries_run ON deliveries (run_id);

-- delivery_id is the first delivery with the key (a plain id; DeliveryPrune keeps that delivery
-- while the key is inside the window).
CREATE TABLE webhook_idempotency (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    delivery_id INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (pipeline_id, key)
);
CREATE INDEX webhook_idempotency_created ON webhook_idempotency (created_at);
CREATE INDEX webhook_idempotency_delivery ON webhook_idempotency (delivery_id);
