-- What a redelivery and an idempotency key need to know of a first delivery. PostgreSQL.
--
-- deliveries.signature is the signature step's verdict (store.Signature*): only a delivery
-- that passed the check, or needed none, may be redelivered. '' = the step was not reached, or
-- the delivery was stored before flowd recorded it (then the stored trace is read instead).
--
-- webhook_idempotency.body_sha256 is the SHA-256 of the body that claimed the key: the same key
-- with another body is refused (idempotency_key_mismatch). NULL for keys claimed before.

--
-- webhook_triggers.require_timestamp: the general webhook's signature must cover a fresh
-- X-Flowd-Timestamp (replay protection, opt-in per trigger).

ALTER TABLE deliveries ADD COLUMN signature TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_triggers ADD COLUMN require_timestamp BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE webhook_idempotency ADD COLUMN body_sha256 BYTEA;
