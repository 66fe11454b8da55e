package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// readyJobs is the FROM/WHERE of jobs that may be claimed now: queued, of their run's current
// stage, the run queued or running and not cancel-requested, and the run within its
// concurrency group's bound (groupSlotFree).
const readyJobs = ` FROM jobs j JOIN runs r ON r.id = j.run_id
	WHERE j.status = 'queued' AND j.stage = r.stage AND r.status IN ('queued', 'running') AND NOT r.cancel_requested
	AND ` + groupSlotFree

// groupSlotFree says whether run r may start under its concurrency group (alias r). A run that
// is already running holds its slot; a run with no group or no bound (max_running 0) is free;
// a queued run of a bounded group may start while the group's running runs plus its older
// queued runs are fewer than max_running. Counting the older queued runs makes the group
// start its runs first in, first out: a newer run never takes a slot an older one waits for.
// The count covers runs of the same pipeline only, through the runs_concurrency index.
const groupSlotFree = `(r.status = 'running' OR r.concurrency_group = '' OR r.max_running <= 0 OR
	(SELECT COUNT(*) FROM runs g WHERE g.pipeline_id = r.pipeline_id AND g.concurrency_group = r.concurrency_group
		AND (g.status = 'running' OR (g.status = 'queued' AND g.number < r.number))) < r.max_running)`

// readyFor is the condition (on alias j, to follow readyJobs) that a runner with labels may
// take a job, with its arguments: the job has no runs-on (runs_on NULL), or every label of its
// runs-on is one of labels with the same value (run.LabelsMatch). A runner without labels
// takes only jobs without runs-on, and its condition has no argument. The labels of a job are
// read only when it has some, so jobs without runs-on cost a NULL test: on PostgreSQL jsonb
// containment (<@), on SQLite a json_each of the job's labels looked up in the runner's.
func readyFor(pg bool, labels map[string]string) (string, []any, error) {
	if len(labels) == 0 {
		return " AND j.runs_on IS NULL", nil, nil
	}
	have, err := toJSON(labels)
	if err != nil {
		return "", nil, err
	}
	if pg {
		return " AND (j.runs_on IS NULL OR j.runs_on::jsonb <@ ?::jsonb)", []any{have}, nil
	}
	return ` AND (j.runs_on IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(j.runs_on) w
		WHERE w.value IS NOT (SELECT h.value FROM json_each(?) h WHERE h.key = w.key)))`, []any{have}, nil
}

// JobQueueDepth counts queued jobs whose stage may run now, for metrics. Jobs of runs waiting
// for a slot of their concurrency group are not counted: they may not run now.
func (s *Store) JobQueueDepth(ctx context.Context) (int64, error) {
	var n int64
	if err := s.reader().queryRow(ctx, "SELECT COUNT(*)"+readyJobs).Scan(&n); err != nil {
		return 0, wrap("count queued jobs", err)
	}
	return n, nil
}

// advisoryGroup is the first key of the two-key advisory lock (PostgreSQL) JobClaim takes on a
// concurrency group; the second is a 32-bit hash of the pipeline id and the group's name. Two
// groups sharing a hash only pass each other over now and then. It differs from the keys in
// store.go.
const advisoryGroup int32 = 0x666c6f63 // "floc"

// claimSkipLimit bounds how many runs of busy concurrency groups one JobClaim passes over on
// PostgreSQL before it gives up (ErrNotFound); the scheduler's next poll tries again.
const claimSkipLimit = 16

// JobClaim takes the oldest ready job (status queued, of its run's current stage, run queued or
// running and not cancel-requested, run within its concurrency group's bound), moves it to
// running and its run to running; ErrNotFound when none is ready.
//
// A queued run whose group has a bound (RunCreate.MaxRunning) starts only while fewer than
// MaxRunning runs of its pipeline and group are running, and only after the group's older
// queued runs: the group queues first in, first out. Runs already running are not limited:
// they hold their slot until they end, a cancel-requested one included.
//
// On PostgreSQL the job and its run are locked with SKIP LOCKED, so servers claiming at once
// never wait for each other or take the same job. Starting a run of a bounded group also takes
// a transaction-scoped advisory lock of the group with pg_try_advisory_xact_lock (never
// waiting) and counts the group again under it, so two servers cannot both fill its last
// slot; a group locked by another claim is passed over for this claim. SQLite's single writer
// serialises claims already.
func (s *Store) JobClaim(ctx context.Context) (Claim, error) {
	cs, err := s.JobsClaim(ctx, JobsClaim{Max: 1, Holder: Holder{Node: "local", Instance: "local"}})
	if err != nil {
		return Claim{}, err
	}
	return cs[0], nil
}

// JobsClaim says how JobsClaim claims.
type JobsClaim struct {
	// Max is how many jobs one call may take (at least 1): the scheduler's free slots.
	Max int
	// StartFirstStep also moves the first step of each claimed job to running, in the same
	// transaction, when the job's run has no Git (a run with Git checks out first, so its first
	// step starts later). The claim's Job.Steps[0] then shows it running; the caller must not
	// StepStart it again.
	StartFirstStep bool
	// Holder is the node and process instance claiming; Runners names the runner of each job
	// claimed, in claim order ("<node>/<slot>"; a missing one is "<node>/?").
	Holder  Holder
	Runners []string
	// TTL is the lease of each attempt created: it ends at the database's now() + TTL unless
	// renewed (AttemptsRenew). 0 means DefaultLeaseTTL.
	TTL time.Duration
	// Labels are the claimer's labels (an agent's, a server's --labels): a job with runs-on is
	// claimed only when they hold every label of it with the same value (run.LabelsMatch); a
	// job without runs-on by any claimer. Jobs the claimer may not take are passed over, so
	// they never hold up the jobs behind them.
	Labels map[string]string
}

// DefaultLeaseTTL is an attempt's lease when JobsClaim.TTL is 0.
const DefaultLeaseTTL = 60 * time.Second

// JobsClaim takes up to p.Max ready jobs in one transaction, oldest first, each as JobClaim
// takes one (the job and its run move to running; see JobClaim for concurrency groups and
// locking), and returns them in claim order; ErrNotFound when none is ready.
func (s *Store) JobsClaim(ctx context.Context, p JobsClaim) ([]Claim, error) {
	// Look on a reader first, so an idle poll costs no write transaction.
	// LIMIT takes an argument so that the statement is prepared once (see stmtCache).
	rd := s.reader()
	cond, args, err := readyFor(rd.pg, p.Labels)
	if err != nil {
		return nil, wrap("claim job", err)
	}
	var ready int
	err = rd.queryRow(ctx, "SELECT 1"+readyJobs+cond+" LIMIT ?", append(slices.Clip(args), 1)...).Scan(&ready)
	if err != nil {
		return nil, wrap("claim job", err)
	}
	var out []Claim
	err = s.writeRelaxed(ctx, func(tx db) error {
		out = out[:0]
		for len(out) < max(p.Max, 1) {
			runner := p.Holder.Node + "/?"
			if len(out) < len(p.Runners) {
				runner = p.Runners[len(out)]
			}
			c, err := claimOne(ctx, tx, p, runner, cond, args)
			if errors.Is(err, sql.ErrNoRows) && len(out) > 0 {
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("claim job", err)
	}
	for _, c := range out {
		s.runsChanged(c.Run.ID) // it may have started
	}
	return out, nil
}

// claimOne picks and claims one ready job in tx for runner, creating its attempt and lease;
// sql.ErrNoRows when none is ready. cond and its args are readyFor's for the claimer.
func claimOne(ctx context.Context, tx db, p JobsClaim, runner, cond string, args []any) (Claim, error) {
	at := now()
	ttl := p.TTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	var (
		jobID, runID int64
		c            Claim
		claimed      bool
		err          error
	)
	if tx.pg {
		jobID, runID, c.Attempt, c.Trusted, claimed, err = claimPG(ctx, tx, p.Holder, runner, ttl, at, cond, args)
		if err != nil {
			return Claim{}, err
		}
	}
	if !claimed {
		// SQLite; or, on PostgreSQL, the oldest ready job is of a run waiting for a slot of
		// its concurrency group, which pickJob checks under the group's lock.
		if jobID, runID, c.Trusted, err = pickJob(ctx, tx, cond, args); err != nil {
			return Claim{}, err
		}
		c.Attempt, err = createAttempt(ctx, tx, jobID, p.Holder, runner, ttl, at)
		if errors.Is(err, sql.ErrNoRows) {
			return Claim{}, transitionError(ctx, tx, "job", jobID, run.Running)
		}
		if err != nil {
			return Claim{}, err
		}
		if _, err := tx.exec(ctx, "UPDATE runs SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'", tx.ts(at), runID); err != nil {
			return Claim{}, err
		}
	}
	startFirst := p.StartFirstStep
	if startFirst {
		// The step of the lowest index, only for a run without Git and only while queued.
		if _, err := tx.exec(ctx, `UPDATE steps SET status = 'running', started_at = ?
			WHERE id = (SELECT s.id FROM steps s WHERE s.job_id = ? ORDER BY s.idx, s.id LIMIT 1)
			AND status = 'queued' AND (SELECT git FROM runs WHERE id = ?) IS NULL`, tx.ts(at), jobID, runID); err != nil {
			return Claim{}, err
		}
	}
	// The job's attempts are not read: the claim's is c.Attempt (see Claim).
	jobs, err := readJobs(ctx, tx, false, "j.id = ?", jobID)
	if err != nil {
		return Claim{}, err
	}
	if len(jobs) != 1 {
		return Claim{}, fmt.Errorf("claimed job %d not found", jobID)
	}
	c.Job = jobs[0]
	c.Run, err = loadRun(ctx, tx, runID, false)
	return c, err
}

// claimPG claims, in one statement, the oldest ready job for runner on PostgreSQL: it picks and
// locks the job and its run (SKIP LOCKED, so servers claiming at once never wait for each
// other), creates its attempt with the lease (the database's now() + ttl), and moves the job
// and its run to running. claimed is false, with the job and run ids, when that job's run
// waits for a slot of a bounded concurrency group: the caller then claims through pickJob,
// which checks the group under its lock (this transaction holds the rows already).
// sql.ErrNoRows when no job is ready. cond and its args are readyFor's for the claimer.
func claimPG(ctx context.Context, tx db, h Holder, runner string, ttl time.Duration, at time.Time, cond string, args []any) (jobID, runID int64, ref AttemptRef, trusted, claimed bool, err error) {
	token, hash := newToken()
	var (
		attemptID sql.NullInt64
		number    sql.NullInt64
	)
	err = tx.queryRow(ctx, `WITH p AS (
			SELECT j.id, j.run_id, (r.status = 'queued' AND r.concurrency_group <> '' AND r.max_running > 0) AS gated,
				(SELECT pl.trusted_by IS NOT NULL FROM pipelines pl WHERE pl.id = r.pipeline_id) AS trusted`+readyJobs+cond+`
			ORDER BY j.run_id, j.id LIMIT 1 FOR NO KEY UPDATE OF j, r SKIP LOCKED),
		a AS (
			INSERT INTO attempts (job_id, number, runner, node, instance, token_hash, state, created_at, heartbeat_at, expires_at)
			SELECT j.id, j.attempts + 1, ?, ?, ?, ?, 'running', now(), now(), `+tx.dbLater()+`
			FROM p JOIN jobs j ON j.id = p.id WHERE NOT p.gated
			RETURNING id, job_id, number),
		u AS (
			UPDATE jobs SET status = 'running', started_at = ?, finished_at = NULL, attempt_id = a.id, attempts = a.number
			FROM a WHERE jobs.id = a.job_id RETURNING jobs.id),
		ru AS (
			UPDATE runs SET status = 'running', started_at = ?
			FROM p JOIN a ON a.job_id = p.id WHERE runs.id = p.run_id AND runs.status = 'queued' RETURNING runs.id)
		SELECT p.id, p.run_id, p.trusted, a.id, a.number FROM p LEFT JOIN a ON a.job_id = p.id`,
		append(slices.Clip(args), runner, h.Node, h.Instance, hash, ttl.Microseconds(), tx.ts(at), tx.ts(at))...).Scan(&jobID, &runID, &trusted, &attemptID, &number)
	if err != nil {
		return 0, 0, AttemptRef{}, false, false, err
	}
	if !attemptID.Valid {
		return jobID, runID, AttemptRef{}, false, false, nil
	}
	return jobID, runID, AttemptRef{ID: attemptID.Int64, Number: int(number.Int64), Token: token}, trusted, true, nil
}

// pickJob finds and, on PostgreSQL, locks the job JobClaim takes (see JobClaim) among those
// cond (readyFor's, with args) allows, and reads whether its pipeline is trusted. It returns
// sql.ErrNoRows when none is ready.
func pickJob(ctx context.Context, tx db, cond string, args []any) (jobID, runID int64, trusted bool, err error) {
	var skipped []any
	for {
		q := `SELECT j.id, j.run_id, r.status, r.pipeline_id, r.number, r.concurrency_group, r.max_running,
			(SELECT pl.trusted_by IS NOT NULL FROM pipelines pl WHERE pl.id = r.pipeline_id)` + readyJobs + cond
		if len(skipped) > 0 {
			q += " AND r.id NOT IN (" + placeholders(len(skipped)) + ")"
		}
		q += " ORDER BY j.run_id, j.id LIMIT ?" // an argument, so the statement is prepared once
		if tx.pg {
			q += " FOR NO KEY UPDATE OF j, r SKIP LOCKED"
		}
		var (
			status             run.Status
			pipelineID, number int64
			group              string
			maxRunning         int
		)
		qargs := append(append(slices.Clip(args), skipped...), 1)
		if err := tx.queryRow(ctx, q, qargs...).Scan(&jobID, &runID, &status, &pipelineID, &number, &group, &maxRunning, &trusted); err != nil {
			return 0, 0, false, err
		}
		if !tx.pg || status != run.Queued || group == "" || maxRunning <= 0 {
			return jobID, runID, trusted, nil
		}
		free, err := groupSlotLocked(ctx, tx, pipelineID, group, number, maxRunning)
		if err != nil {
			return 0, 0, false, err
		}
		if free {
			return jobID, runID, trusted, nil
		}
		if skipped = append(skipped, runID); len(skipped) >= claimSkipLimit {
			return 0, 0, false, sql.ErrNoRows
		}
	}
}

// groupSlotLocked takes, on PostgreSQL, the advisory lock of a pipeline's concurrency group
// without waiting, and under it checks groupSlotFree again for the queued run number: in a
// statement of its own, so that it sees every claim of the group committed before the lock was
// free. It reports false when the lock is held by another claim or the group has no free slot.
func groupSlotLocked(ctx context.Context, tx db, pipelineID int64, group string, number int64, maxRunning int) (bool, error) {
	// The key includes the schema, so flowd servers (or tests) in separate schemas of one
	// database never take each other's group locks.
	var locked bool
	key := fmt.Sprintf("%d/%s", pipelineID, group)
	if err := tx.queryRow(ctx, "SELECT pg_try_advisory_xact_lock(?::int4, hashtext(current_schema() || '/' || ?::text))", advisoryGroup, key).Scan(&locked); err != nil {
		return false, err
	}
	if !locked {
		return false, nil
	}
	var n int
	err := tx.queryRow(ctx, `SELECT COUNT(*) FROM runs g WHERE g.pipeline_id = ? AND g.concurrency_group = ?
		AND (g.status = 'running' OR (g.status = 'queued' AND g.number < ?))`, pipelineID, group, number).Scan(&n)
	return n < maxRunning, err
}

// StepStart moves a step of the job of attempt from queued to running; ErrFenced when attempt
// is not the job's live attempt.
func (s *Store) StepStart(ctx context.Context, attempt, stepID int64) error {
	err := s.writeRelaxed(ctx, func(tx db) error {
		if err := fenceStep(ctx, tx, attempt, stepID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, "UPDATE steps SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'",
			tx.ts(now()), stepID)
		if err == nil && n == 0 {
			return transitionError(ctx, tx, "step", stepID, run.Running)
		}
		return err
	})
	return wrap("start step", err)
}

// StepFinish moves a step of the job of attempt to a terminal status, recording the exit code
// when there is one; ErrFenced when attempt is not the job's live attempt.
func (s *Store) StepFinish(ctx context.Context, attempt, stepID int64, status run.Status, exitCode *int) error {
	if !status.Terminal() {
		return fmt.Errorf("store: finish step: %q is not a final status", status)
	}
	err := s.writeRelaxed(ctx, func(tx db) error {
		if err := fenceStep(ctx, tx, attempt, stepID); err != nil {
			return err
		}
		in, args := statusIn(run.From(status))
		n, err := tx.execN(ctx, "UPDATE steps SET status = ?, exit_code = ?, finished_at = ? WHERE id = ? AND status IN "+in,
			append([]any{string(status), nullInt(exitCode), tx.ts(now()), stepID}, args...)...)
		if err == nil && n == 0 {
			return transitionError(ctx, tx, "step", stepID, status)
		}
		return err
	})
	return wrap("finish step", err)
}

// fenceStep is fence for a write to step stepID: attempt must be live and the step one of its job.
func fenceStep(ctx context.Context, tx db, attempt, stepID int64) error {
	jobID, err := fence(ctx, tx, attempt)
	if err != nil {
		return err
	}
	return stepOfJob(ctx, tx, stepID, jobID)
}

// stepOfJob returns ErrConflict unless step stepID is one of job jobID's (ErrNotFound when the
// step does not exist).
func stepOfJob(ctx context.Context, tx db, stepID, jobID int64) error {
	var owner int64
	if err := tx.queryRow(ctx, "SELECT job_id FROM steps WHERE id = ?", stepID).Scan(&owner); err != nil {
		return err
	}
	if owner != jobID {
		return fmt.Errorf("step %d is not a step of job %d: %w", stepID, jobID, ErrConflict)
	}
	return nil
}

// JobFinish moves a running job to a terminal status (its steps still queued become skipped)
// and advances its run in the same transaction. It returns the run after.
//
// message says why the job failed or was canceled; the run keeps it as its own message when
// the job ends the run. Steps still running take the job's status. When every job of the run's
// current stage is final: a failed job fails the run, else a canceled job cancels it (the
// run's queued jobs become skipped either way); otherwise the next stage opens, or the run
// succeeds after its last one. A cancel-requested run is canceled, with the message given to
// RunCancel, as soon as one of its jobs finishes canceled, or when its stage ends.
//
// attempt is the job's attempt ending it: ErrFenced (nothing written) unless it is the job's
// live attempt, which becomes finished.
func (s *Store) JobFinish(ctx context.Context, attempt, jobID int64, status run.Status, message string) (run.Run, error) {
	if !run.CanTransition(run.Running, status) {
		return run.Run{}, fmt.Errorf("store: finish job: %q is not a final status of a running job", status)
	}
	var out run.Run
	err := s.writeRelaxed(ctx, func(tx db) error {
		runID, _, err := finishJob(ctx, tx, jobID, 0, status, message, func(runID int64, _ time.Time) error {
			_, err := fenceJob(ctx, tx, attempt, jobID, runID)
			return err
		})
		if err != nil {
			return err
		}
		out, err = loadRun(ctx, tx, runID, true)
		return err
	})
	if err != nil {
		return run.Run{}, wrap("finish job", err)
	}
	if out.Status.Terminal() {
		s.runsChanged(out.ID)
	}
	return out, nil
}

// StepResult is how one step ended, for StepAdvance and JobComplete.
type StepResult struct {
	StepID   int64
	Status   run.Status // a final status: success, failed, canceled, or skipped for a step never started
	ExitCode *int       // set when the step's process exited on its own
}

// fenceJob is fence for a write that ends job jobID of run runID, and ends the attempt, in one
// statement: attempt must be the job's live attempt (else a *FencedError); it becomes finished.
// It returns the job's status (read under the attempt's lock, after the run's).
func fenceJob(ctx context.Context, tx db, attempt, jobID, runID int64) (run.Status, error) {
	var (
		owner, ownerRun int64
		status          run.Status
	)
	err := tx.queryRow(ctx, `UPDATE attempts SET state = 'finished', finished_at = `+tx.clock()+`
		WHERE id = ? AND state IN `+liveStates+` AND id = (SELECT attempt_id FROM jobs WHERE jobs.id = attempts.job_id)
		RETURNING job_id, (SELECT run_id FROM jobs WHERE jobs.id = attempts.job_id), (SELECT status FROM jobs WHERE jobs.id = attempts.job_id)`,
		attempt).Scan(&owner, &ownerRun, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", &FencedError{Attempts: []int64{attempt}}
	}
	if err != nil {
		return "", err
	}
	if owner != jobID || ownerRun != runID {
		return "", fmt.Errorf("attempt %d is of job %d of run %d, not of job %d of run %d: %w", attempt, owner, ownerRun, jobID, runID, ErrConflict)
	}
	return status, nil
}

// StepAdvance records, in one transaction, the ends of finished steps (each as StepFinish
// would, in order) and then, unless startID is 0, the start of step startID (as StepStart). The
// scheduler calls it when a job moves from one step to the next. A step in the wrong state
// fails the whole call with ErrConflict; nothing is written then.
//
// attempt is the attempt of the job whose steps these are: ErrFenced when it is not the job's
// live attempt, and steps of other jobs are refused.
func (s *Store) StepAdvance(ctx context.Context, attempt int64, finished []StepResult, startID int64) error {
	for _, r := range finished {
		if !r.Status.Terminal() {
			return fmt.Errorf("store: advance steps: %q is not a final status", r.Status)
		}
	}
	err := s.writeRelaxed(ctx, func(tx db) error {
		jobID, err := fence(ctx, tx, attempt)
		if err != nil {
			return err
		}
		at := now()
		if err := finishSteps(ctx, tx, jobID, finished, at); err != nil {
			return err
		}
		if startID == 0 {
			return nil
		}
		if err := stepOfJob(ctx, tx, startID, jobID); err != nil { // the attempt was fenced above
			return err
		}
		n, err := tx.execN(ctx, "UPDATE steps SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'",
			tx.ts(at), startID)
		if err == nil && n == 0 {
			return transitionError(ctx, tx, "step", startID, run.Running)
		}
		return err
	})
	return wrap("advance steps", err)
}

// finishSteps moves each step of results to its final status, guarded as StepFinish; with
// jobID set, only steps of that job.
func finishSteps(ctx context.Context, tx db, jobID int64, results []StepResult, at time.Time) error {
	for _, r := range results {
		in, args := statusIn(run.From(r.Status))
		q := "UPDATE steps SET status = ?, exit_code = ?, finished_at = ? WHERE id = ? AND status IN " + in
		args = append([]any{string(r.Status), nullInt(r.ExitCode), tx.ts(at), r.StepID}, args...)
		if jobID != 0 {
			q += " AND job_id = ?"
			args = append(args, jobID)
		}
		n, err := tx.execN(ctx, q, args...)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if jobID != 0 {
			var owner int64
			if err := tx.queryRow(ctx, "SELECT job_id FROM steps WHERE id = ?", r.StepID).Scan(&owner); err != nil {
				return err
			}
			if owner != jobID {
				return fmt.Errorf("step %d is not a step of job %d: %w", r.StepID, jobID, ErrConflict)
			}
		}
		return transitionError(ctx, tx, "step", r.StepID, r.Status)
	}
	return nil
}

// JobEnd is everything that ends a running job, for JobComplete.
type JobEnd struct {
	// Attempt is the attempt ending the job: the whole call fails with ErrFenced unless it is
	// the job's live attempt, which becomes finished.
	Attempt int64
	JobID   int64
	// RunID is the job's run (from the claim), so it need not be read again; 0 reads it. A
	// wrong one fails the call with ErrConflict.
	RunID int64
	// Steps are the step results not recorded yet, in order (steps of other jobs are refused).
	Steps []StepResult
	// Logs are the job's last log chunks, appended as LogAppend does (Seq assigned after the
	// run's chunks committed before). Every earlier chunk of the job must be committed already.
	Logs    []run.LogChunk
	Status  run.Status // the job's final status
	Message string     // why it failed or was canceled; see JobFinish
	// Log, when set, is what the attempt's log stored by offset (an agent's; see
	// AttemptLogAppend) must be: otherwise nothing is written and the call fails with a
	// *LogSumError.
	Log *LogSum
}

// JobComplete ends a running job in one transaction: it records e.Steps (guarded as
// StepFinish), appends e.Logs, then finishes the job and advances its run exactly as JobFinish
// does, and returns the run's status after. A follower that sees the job or its run final therefore
// already finds its last lines. Anything in the wrong state (a job not running, a step already
// final) fails the whole call with ErrConflict and writes nothing.
func (s *Store) JobComplete(ctx context.Context, e JobEnd) (run.Status, error) {
	if !run.CanTransition(run.Running, e.Status) {
		return "", fmt.Errorf("store: complete job: %q is not a final status of a running job", e.Status)
	}
	for _, r := range e.Steps {
		if !r.Status.Terminal() {
			return "", fmt.Errorf("store: complete job: step status %q is not a final status", r.Status)
		}
	}
	logs := slices.Clone(e.Logs)
	var (
		out   run.Status
		runID int64
	)
	err := s.writeRelaxed(ctx, func(tx db) error {
		var err error
		runID, out, err = finishJob(ctx, tx, e.JobID, e.RunID, e.Status, e.Message, func(runID int64, at time.Time) error {
			if e.Log != nil {
				if err := checkLogSum(ctx, tx, e.Attempt, *e.Log); err != nil {
					return err
				}
			}
			js, err := fenceJob(ctx, tx, e.Attempt, e.JobID, runID)
			if err != nil {
				return err
			}
			if js != run.Running {
				return transitionError(ctx, tx, "job", e.JobID, e.Status)
			}
			if err := finishSteps(ctx, tx, e.JobID, e.Steps, at); err != nil {
				return err
			}
			for i := range logs {
				if logs[i].RunID != runID || logs[i].JobID != e.JobID {
					return fmt.Errorf("log chunk of run %d job %d given for job %d of run %d",
						logs[i].RunID, logs[i].JobID, e.JobID, runID)
				}
			}
			if len(logs) == 0 {
				return nil
			}
			return appendLogs(ctx, tx, logs)
		})
		return err
	})
	if err != nil {
		return "", wrap("complete job", err)
	}
	if out.Terminal() {
		s.runsChanged(runID)
	}
	return out, nil
}

// finishJob is JobFinish inside tx; it returns the job's run id and the run's status after.
// runID is the job's run when the caller knows it (its before must then check it, as fenceJob
// does), 0 to read it. before, if not nil, runs once the run is locked and before the job
// changes (lock order: run, jobs, steps).
func finishJob(ctx context.Context, tx db, jobID, runID int64, status run.Status, message string,
	before func(runID int64, at time.Time) error) (int64, run.Status, error) {
	if runID == 0 {
		if err := tx.queryRow(ctx, "SELECT run_id FROM jobs WHERE id = ?", jobID).Scan(&runID); err != nil {
			return 0, "", err
		}
	}
	var (
		rs        run.Status
		stage     int
		requested bool
		cancelMsg string
	)
	// Lock the run first (lock order: run, jobs, steps).
	if err := tx.queryRow(ctx, "SELECT status, stage, cancel_requested, message FROM runs WHERE id = ?"+tx.forUpdate(),
		runID).Scan(&rs, &stage, &requested, &cancelMsg); err != nil {
		return 0, "", err
	}
	at := now()
	if before != nil {
		if err := before(runID, at); err != nil {
			return 0, "", err
		}
	}
	n, err := tx.execN(ctx, "UPDATE jobs SET status = ?, message = ?, finished_at = ? WHERE id = ? AND status = 'running'",
		string(status), message, tx.ts(at), jobID)
	if err != nil {
		return 0, "", err
	}
	if n == 0 {
		return 0, "", transitionError(ctx, tx, "job", jobID, status)
	}
	// Its steps still queued are skipped; those still running take the job's status.
	if _, err := tx.exec(ctx, `UPDATE steps SET status = CASE WHEN status = 'queued' THEN 'skipped' ELSE ? END,
		finished_at = CASE WHEN status = 'queued' THEN finished_at ELSE ? END
		WHERE job_id = ? AND status IN ('queued', 'running')`, string(status), tx.ts(at), jobID); err != nil {
		return 0, "", err
	}
	if rs.Terminal() {
		return runID, rs, nil
	}
	rs, err = advanceRun(ctx, tx, runID, stage, requested, cancelMsg, status, at)
	return runID, rs, err
}

// advanceRun decides what a run does after one of its jobs finished with status (see
// JobFinish) and returns the run's status after.
func advanceRun(ctx context.Context, tx db, runID int64, stage int, requested bool, cancelMsg string, status run.Status, at time.Time) (run.Status, error) {
	if requested && status == run.Canceled {
		return run.Canceled, finishRun(ctx, tx, runID, run.Canceled, cancelMsg, at)
	}
	// The jobs of this stage, and the first job of the next stage if there is one.
	rows, err := tx.query(ctx, "SELECT stage, stage_name, name, status, message FROM jobs WHERE run_id = ? AND stage >= ? ORDER BY stage, id",
		runID, stage)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var (
		pending              bool
		failedMsg, cancelled string
		failed, canceled     bool
		next                 = -1
	)
	for rows.Next() {
		var (
			js                   int
			stageName, name, msg string
			st                   run.Status
		)
		if err := rows.Scan(&js, &stageName, &name, &st, &msg); err != nil {
			return "", err
		}
		if js != stage {
			next = js
			break
		}
		switch {
		case !st.Terminal():
			pending = true
		case st == run.Failed && !failed:
			failed, failedMsg = true, orDefault(msg, fmt.Sprintf("job %s/%s failed", stageName, name))
		case st == run.Canceled && !canceled:
			canceled, cancelled = true, orDefault(msg, fmt.Sprintf("job %s/%s was canceled", stageName, name))
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	rows.Close()
	switch {
	case pending:
		return run.Running, nil
	case requested:
		return run.Canceled, finishRun(ctx, tx, runID, run.Canceled, cancelMsg, at)
	case failed:
		return run.Failed, finishRun(ctx, tx, runID, run.Failed, failedMsg, at)
	case canceled:
		return run.Canceled, finishRun(ctx, tx, runID, run.Canceled, cancelled, at)
	case next < 0:
		// Every job of every stage has ended (a stage opens only when the one before ended),
		// so no queued job is left to skip.
		return run.Success, endRun(ctx, tx, runID, run.Success, "", at)
	}
	n, err := tx.execN(ctx, "UPDATE runs SET stage = ? WHERE id = ? AND status = 'running' AND stage = ?", next, runID, stage)
	if err == nil && n == 0 {
		return "", transitionError(ctx, tx, "run", runID, run.Running)
	}
	return run.Running, err
}

// finishRun ends a run: its queued jobs become skipped, then the run takes status.
func finishRun(ctx context.Context, tx db, runID int64, status run.Status, message string, at time.Time) error {
	if err := skipQueuedJobs(ctx, tx, runID, run.Skipped, at); err != nil {
		return err
	}
	return endRun(ctx, tx, runID, status, message, at)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
