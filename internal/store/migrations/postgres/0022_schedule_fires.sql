-- Cron schedules (issue 15): one row per fire time of a pipeline's schedule that some server
-- acted on. The primary key makes each fire time happen once however many servers tick: a
-- server inserts the row in the transaction that creates the run (outcome started, run_id
-- set), or alone when the fire was refused (the schedule's owner lost the right, the pipeline
-- cannot run here) or failed (a Git ref that cannot be read). schedule_key is the schedule's
-- name, or its cron expression and zone (pipeline.Schedule.Key); title is how it is shown.
CREATE TABLE schedule_fires (
    pipeline_id  BIGINT      NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    schedule_key TEXT        NOT NULL,
    fire_at      TIMESTAMPTZ NOT NULL,
    title        TEXT        NOT NULL,
    run_id       BIGINT      REFERENCES runs (id) ON DELETE SET NULL,
    outcome      TEXT        NOT NULL CHECK (outcome IN ('started', 'refused', 'failed')),
    message      TEXT        NOT NULL DEFAULT '',
    recorded_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pipeline_id, schedule_key, fire_at)
);
CREATE INDEX schedule_fires_run ON schedule_fires (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX schedule_fires_recent ON schedule_fires (pipeline_id, recorded_at DESC);
