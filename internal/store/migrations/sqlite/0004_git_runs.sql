-- Git runs and concurrency groups. SQLite.
--
-- git is the commit a run builds, as a JSON object (repo_url, sha, ref, branch, tag, event,
-- provider, message, author, credentials_var); NULL for a run without a Git source.
-- credentials_var is the NAME of the secret variable holding the clone token, never its value.
-- concurrency_group is the run's group under the pipeline's concurrency option ('' = none) and
-- max_running bounds the group's running runs (0 = no bound); JobClaim reads them through
-- runs_concurrency.

ALTER TABLE runs ADD COLUMN git TEXT;
ALTER TABLE runs ADD COLUMN concurrency_group TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_concurrency ON runs (pipeline_id, concurrency_group, status);
