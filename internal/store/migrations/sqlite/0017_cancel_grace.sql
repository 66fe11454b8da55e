-- A job's cancel_grace (issue 13): how long a canceled or timed-out step's processes have
-- between SIGTERM and SIGKILL, in milliseconds; 0 is the runner's own (a server's 1 s, an
-- agent's 10 s).
ALTER TABLE jobs ADD COLUMN cancel_grace_ms INTEGER NOT NULL DEFAULT 0 CHECK (cancel_grace_ms >= 0);
