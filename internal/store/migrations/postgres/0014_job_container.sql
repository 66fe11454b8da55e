-- Jobs in containers (issue 12): a job's image:, container: and services: as the trigger fixed
-- them when its run was created, a JSON object (store.containerRecord); NULL for a job that runs
-- on the host. Read with the job wherever it is read (the claim included), written with it.
ALTER TABLE jobs ADD COLUMN container TEXT;
