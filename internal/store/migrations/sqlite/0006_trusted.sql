-- Trusted pipelines (docs/DESIGN.md "Isolation").
--
-- trusted_by names the global admin who marked the pipeline trusted (or created it); NULL is an
-- untrusted pipeline. A server that cannot run steps as users of their own runs only trusted
-- pipelines' jobs. A new revision saved by anyone but a global admin sets it back to NULL.

ALTER TABLE pipelines ADD COLUMN trusted_by TEXT;
