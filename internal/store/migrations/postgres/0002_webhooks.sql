-- Webhook triggers, their audit log, deliveries and idempotency keys. PostgreSQL.

CREATE TABLE webhook_triggers (
    pipeline_id   BIGINT      PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    enabled       BOOLEAN     NOT NULL DEFAULT FALSE,
    token_hash    BYTEA       NOT NULL UNIQUE,
    token_sealed  BYTEA       NOT NULL,
    secret_sealed BYTEA,
    owner_id      BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    owner_name    TEXT        NOT NULL,
    enabled_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_triggers_owner ON webhook_triggers (owner_id);

CREATE TABLE webhook_audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    detail      TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX webhook_audit_pipeline ON webhook_audit (pipeline_id, id DESC);

-- redelivery_of and replay_of are plain ids: the delivery they name may have been pruned.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id     BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    received_at     TIMESTAMPTZ NOT NULL,
    remote_addr     TEXT        NOT NULL DEFAULT '',
    headers         TEXT        NOT NULL DEFAULT '{}',
    body            BYTEA,
    body_truncated  BOOLEAN     NOT NULL DEFAULT FALSE,
    status_code     INTEGER     NOT NULL,
    error_code      TEXT        NOT NULL DEFAULT '',
    response        BYTEA,
    run_id          BIGINT      REFERENCES runs (id) ON DELETE SET NULL,
    trace           BYTEA,
    dry_run         BOOLEAN     NOT NULL DEFAULT FALSE,
    redelivery_of   BIGINT,
    replay_of       BIGINT,
    idempotency_key TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_pipeline ON deliveries (pipeline_id, id DESC);
CREATE INDEX deliveries_received ON deliveries (received_at);
CREATE INDEX deliveries_run ON deliveries (run_id);

-- delivery_id is the first delivery with the key (a plain id; DeliveryPrune keeps that delivery
-- while the key is inside the window).
CREATE TABLE webhook_idempotency (
    pipeline_id BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    key         TEXT        NOT NULL,
    delivery_id BIGINT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pipeline_id, key)
);
CREATE INDEX webhook_idempotency_created ON webhook_idempotency (created_at);
CREATE INDEX webhook_idempotency_delivery ON webhook_idempotency (delivery_id);
