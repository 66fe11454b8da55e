-- Job labels (issue 13): a job's runs-on as the trigger fixed it when its run was created, a
-- JSON object of label keys to values ({"gpu":"true"}); NULL for a job any runner may take.
-- A claim takes a job whose runs_on is NULL at once, and compares the labels only of the
-- others with the claimer's (store.readyFor). Read with the job wherever it is read.
ALTER TABLE jobs ADD COLUMN runs_on TEXT;

-- A server's own slots (flowd serve --executors, --labels), so that any server can tell why a
-- queued job waits (no live runner with its labels, or all busy): how many jobs it runs at
-- once and its labels as a JSON object. An agent's are in agents.
ALTER TABLE nodes ADD COLUMN executors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
