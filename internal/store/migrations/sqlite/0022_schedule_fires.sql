-- Cron schedules (issue 15). SQLite (times: unix nanoseconds). See the PostgreSQL migration of
-- the same number for what each column means.
CREATE TABLE schedule_fires (
    pipeline_id  INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    schedule_key TEXT    NOT NULL,
    fire_at      INTEGER NOT NULL,
    title        TEXT    NOT NULL,
    run_id       INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('started', 'refused', 'failed')),
    message      TEXT    NOT NULL DEFAULT '',
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (pipeline_id, schedule_key, fire_at)
);
CREATE INDEX schedule_fires_run ON schedule_fires (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX schedule_fires_recent ON schedule_fires (pipeline_id, recorded_at DESC);
