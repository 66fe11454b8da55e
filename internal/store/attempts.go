package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Attempts, leases and fencing (DESIGN.md "Job ownership").
//
// Every claim of a job creates an attempt: a row of attempts naming the runner that holds it,
// the node and process instance it runs in, a hashed random token, and a lease that ends at the
// database's now() + TTL. The job points at its current attempt (jobs.attempt_id). The runner
// renews its leases (AttemptsRenew); every write it makes for the job names the attempt and is
// refused with ErrFenced unless that attempt is still running or canceling. The leader's
// rescuer (AttemptsRescue) moves attempts whose lease ended to lost and fails their jobs
// (runner_lost), cancels them (lost while canceling) or queues them again (retry). Lease times
// come only from the database's clock, never from a process's.

// ErrFenced is the error of a write for an attempt that is no longer the job's live attempt: it
// was lost (its lease expired and the rescuer took it), or it finished. The runner must stop
// the job's processes at once and write nothing more for it.
var ErrFenced = errors.New("the job's attempt is no longer current (lost or finished): stop it")

// FencedError says which attempts a write was refused for; errors.Is(err, ErrFenced) holds, and
// so does errors.Is(err, ErrConflict): the write came too late.
type FencedError struct {
	Attempts []int64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("attempts %v: %v", e.Attempts, ErrFenced)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced || target == ErrConflict }

// Fenced reports whether attempt id is one the write was refused for (the logs package asks
// through an interface of its own, so it needs no import of the store).
func (e *FencedError) Fenced(id int64) bool { return slices.Contains(e.Attempts, id) }

// AttemptRef is what a runner holds of the attempt it runs: the id every write names, its
// number, and the token a remote runner proves itself with (only its hash is stored).
type AttemptRef struct {
	ID     int64
	Number int
	Token  string
}

// Holder is who claims: the node's name and this process's instance (random per start, so a
// node that restarted tells its previous instance's attempts from its own).
type Holder struct {
	Node     string
	Instance string
}

// LiveAttempt is one attempt a runner holds, as AttemptsRenew and AttemptStates answer.
type LiveAttempt struct {
	ID    int64
	State run.AttemptState
}

// liveStates is the SQL list of the states in which an attempt holds its job.
const liveStates = "('running', 'canceling')"

// newToken returns a random attempt token (128 bits, hex) and the hash that is stored.
func newToken() (token string, hash []byte) {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	token = hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

// dbLater is the SQL expression of the database's current time (clock) plus a number of
// microseconds given as its one argument: how lease ends are computed.
func (d db) dbLater() string {
	if d.pg {
		return "(now() + ? * interval '1 microsecond')"
	}
	return "(" + d.clock() + " + ? * 1000)"
}

// createAttempt creates the next attempt of queued job jobID for runner and moves the job to
// running, pointing at it, in two statements of tx (SQLite's claim, and PostgreSQL's for a run
// of a bounded concurrency group; PostgreSQL's usual claim is claimPG's one statement). It
// returns sql.ErrNoRows when the job was not queued.
func createAttempt(ctx context.Context, tx db, jobID int64, h Holder, runner string, ttl time.Duration, at time.Time) (AttemptRef, error) {
	token, hash := newToken()
	ref := AttemptRef{Token: token}
	err := tx.queryRow(ctx, `INSERT INTO attempts (job_id, number, runner, node, instance, token_hash, state, created_at, heartbeat_at, expires_at)
		SELECT id, attempts + 1, ?, ?, ?, ?, 'running', `+tx.clock()+`, `+tx.clock()+`, `+tx.dbLater()+`
		FROM jobs WHERE id = ? AND status = 'queued' RETURNING id, number`,
		runner, h.Node, h.Instance, hash, ttl.Microseconds(), jobID).Scan(&ref.ID, &ref.Number)
	if err != nil {
		return ref, err
	}
	_, err = tx.exec(ctx, `UPDATE jobs SET status = 'running', started_at = ?, finished_at = NULL, attempt_id = ?, attempts = ?
		WHERE id = ? AND status = 'queued'`, tx.ts(at), ref.ID, ref.Number, jobID)
	return ref, err
}

// fence checks, inside a write, that attempt id is its job's live attempt (running or
// canceling) and returns its job; a *FencedError otherwise. On PostgreSQL it locks the attempt
// row for share, so the rescuer cannot take the attempt until the write commits.
func fence(ctx context.Context, tx db, id int64) (jobID int64, err error) {
	q := "SELECT a.job_id, a.state, COALESCE(j.attempt_id, 0) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?"
	if tx.pg {
		q += " FOR SHARE OF a"
	}
	var (
		state   run.AttemptState
		current int64
	)
	err = tx.queryRow(ctx, q, id).Scan(&jobID, &state, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &FencedError{Attempts: []int64{id}}
	}
	if err != nil {
		return 0, err
	}
	if current != id || (state != run.AttemptRunning && state != run.AttemptCanceling) {
		return 0, &FencedError{Attempts: []int64{id}}
	}
	return jobID, nil
}

// fenceChunks drops from chunks those of attempts that are not live (see fence) and returns
// what is left with the ids of the attempts refused. Chunks with Attempt 0 (flowd's own lines)
// are always kept.
func fenceChunks(ctx context.Context, tx db, chunks []run.LogChunk) ([]run.LogChunk, []int64, error) {
	var ids []int64
	for _, c := range chunks {
		if c.Attempt != 0 && !slices.Contains(ids, c.Attempt) {
			ids = append(ids, c.Attempt)
		}
	}
	if len(ids) == 0 {
		return chunks, nil, nil
	}
	slices.Sort(ids) // lock order: attempts by id
	var refused []int64
	for _, id := range ids {
		if _, err := fence(ctx, tx, id); err != nil {
			if !errors.Is(err, ErrFenced) {
				return nil, nil, err
			}
			refused = append(refused, id)
		}
	}
	if len(refused) == 0 {
		return chunks, nil, nil
	}
	kept := make([]run.LogChunk, 0, len(chunks))
	for _, c := range chunks {
		if !slices.Contains(refused, c.Attempt) {
			kept = append(kept, c)
		}
	}
	return kept, refused, nil
}

// AttemptsRenew extends the leases of the live attempts among ids to the database's now() +
// ttl and returns them with their state (canceling tells the runner to stop the job). An id
// missing from the answer is no longer live: the runner must stop that job at once.
func (s *Store) AttemptsRenew(ctx context.Context, ids []int64, ttl time.Duration) ([]LiveAttempt, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []LiveAttempt
	err := s.writeRelaxed(ctx, func(tx db) error {
		args := []any{ttl.Microseconds()}
		for _, id := range ids {
			args = append(args, id)
		}
		var err error
		out, err = queryAll(ctx, tx, func(row scanner, a *LiveAttempt) error { return row.Scan(&a.ID, &a.State) },
			"UPDATE attempts SET heartbeat_at = "+tx.clock()+", expires_at = "+tx.dbLater()+
				" WHERE id IN ("+placeholders(len(ids))+") AND state IN "+liveStates+" RETURNING id, state", args...)
		return err
	})
	if err != nil {
		return nil, wrap("renew leases", err)
	}
	return out, nil
}

// AttemptStates returns the live attempts among ids with their state, without renewing
// anything: the runner's cheap, frequent look for cancel requests between renewals.
func (s *Store) AttemptStates(ctx context.Context, ids []int64) ([]LiveAttempt, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	out, err := queryAll(ctx, s.reader(), func(row scanner, a *LiveAttempt) error { return row.Scan(&a.ID, &a.State) },
		"SELECT id, state FROM attempts WHERE id IN ("+placeholders(len(ids))+") AND state IN "+liveStates, args...)
	if err != nil {
		return nil, wrap("read attempt states", err)
	}
	return out, nil
}

// AttemptVerify checks a remote runner's token for attempt id (constant time, on the stored
// hash) and returns the attempt's state; ErrNotFound for an unknown attempt or a wrong token.
func (s *Store) AttemptVerify(ctx context.Context, id int64, token string) (run.AttemptState, error) {
	var (
		hash  []byte
		state run.AttemptState
	)
	err := s.reader().queryRow(ctx, "SELECT token_hash, state FROM attempts WHERE id = ?", id).Scan(&hash, &state)
	if err != nil {
		return "", wrap("verify attempt", err)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return "", wrap("verify attempt", ErrNotFound)
	}
	return state, nil
}

// Rescued is what the rescuer did with one lost attempt.
type Rescued struct {
	RunID, JobID int64
	Attempt      int
	Runner       string
	// Outcome is the job's status after: failed (runner_lost), canceled (lost while
	// canceling), or queued (retried as the next attempt).
	Outcome run.Status
	Message string
}

// RescueBatch bounds the attempts one rescue call takes.
const RescueBatch = 50

// AttemptsRescue takes up to RescueBatch live attempts whose lease expired by the database's
// clock and rescues each (see rescueOne); the next sweep takes the rest. Only
// the leader calls it; the guarded updates make a second caller harmless.
func (s *Store) AttemptsRescue(ctx context.Context) ([]Rescued, error) {
	return s.rescue(ctx, "a.expires_at < "+s.reader().clock(), nil, "stopped renewing its lease")
}

// AttemptsRescueInstance rescues at once, whatever their lease, the live attempts of node held
// by another instance than the caller's: a node that restarted takes back what its previous
// instance was running (that process is gone; its lease need not run out). With node "" it
// takes every live attempt of any other instance held by a server (not by an agent): for
// SQLite, which serves one server only. Agents' attempts are left to their leases, or to the
// agent's own next register with a new instance: agents keep running through a server's
// restart. Like AttemptsRescue it takes up to RescueBatch attempts per call: call it until it returns
// fewer.
func (s *Store) AttemptsRescueInstance(ctx context.Context, h Holder) ([]Rescued, error) {
	if h.Node == "" {
		return s.rescue(ctx, "a.instance <> ? AND a.node NOT IN (SELECT name FROM nodes WHERE kind = 'agent')", []any{h.Instance},
			"stopped: its server was restarted while the job ran")
	}
	return s.rescue(ctx, "a.node = ? AND a.instance <> ?", []any{h.Node, h.Instance}, "stopped: its server was restarted while the job ran")
}

// rescue runs rescueOne for each live attempt matching cond (on alias a), each in a
// transaction of its own: a sweep never holds one attempt while it waits for another (a runner
// renewing several of its attempts at once locks them too).
func (s *Store) rescue(ctx context.Context, cond string, args []any, why string) ([]Rescued, error) {
	type cand struct {
		id, runID int64
	}
	cands, err := queryAll(ctx, s.reader(), func(row scanner, c *cand) error { return row.Scan(&c.id, &c.runID) },
		"SELECT a.id, j.run_id FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.state IN "+liveStates+
			" AND "+cond+" ORDER BY a.id LIMIT ?", append(slices.Clone(args), RescueBatch)...)
	if err != nil {
		return nil, wrap("rescue attempts", err)
	}
	var out []Rescued
	for _, c := range cands {
		var (
			r  Rescued
			ok bool
		)
		err := s.writeRelaxed(ctx, func(tx db) error {
			var err error
			r, ok, err = rescueOne(ctx, tx, c.id, c.runID, cond, args, why)
			return err
		})
		if err != nil {
			return out, wrap("rescue attempts", err)
		}
		if ok {
			out = append(out, r)
			s.runsChanged(r.RunID)
		}
	}
	return out, nil
}

// rescueOne moves attempt id (of a job of run runID), if it is still live and matches cond, to
// lost; then its job: canceled when the attempt was canceling, queued again when the job's
// retry allows another attempt, failed with a runner_lost message otherwise. A line in the run's
// log names the runner, its last heartbeat and the lease's end.
func rescueOne(ctx context.Context, tx db, id, runID int64, cond string, args []any, why string) (Rescued, bool, error) {
	// Lock order: run, attempt, jobs, steps (as finishJob).
	var locked int64
	if err := tx.queryRow(ctx, "SELECT id FROM runs WHERE id = ?"+tx.forUpdate(), runID).Scan(&locked); err != nil {
		return Rescued{}, false, err
	}
	var (
		r                  = Rescued{RunID: runID}
		state              run.AttemptState
		heartbeat, expires time.Time
		retryLost          int
	)
	q := `SELECT a.job_id, a.number, a.runner, a.state, a.heartbeat_at, a.expires_at, j.retry_lost
		FROM attempts a JOIN jobs j ON j.id = a.job_id
		WHERE a.id = ? AND j.attempt_id = a.id AND a.state IN ` + liveStates + " AND " + cond
	if tx.pg {
		q += " FOR UPDATE OF a"
	}
	err := tx.queryRow(ctx, q, append([]any{id}, args...)...).Scan(&r.JobID, &r.Attempt, &r.Runner, &state,
		timeScan{&heartbeat}, timeScan{&expires}, &retryLost)
	if errors.Is(err, sql.ErrNoRows) {
		return Rescued{}, false, nil // renewed, finished or rescued meanwhile
	}
	if err != nil {
		return Rescued{}, false, err
	}
	reason := fmt.Sprintf("runner_lost: attempt %d's runner %s %s (last heartbeat %s, lease expired %s)",
		r.Attempt, r.Runner, why, heartbeat.UTC().Format(time.RFC3339), expires.UTC().Format(time.RFC3339))
	if _, err := tx.exec(ctx, "UPDATE attempts SET state = 'lost', reason = ?, finished_at = "+tx.clock()+" WHERE id = ?", reason, id); err != nil {
		return Rescued{}, false, err
	}
	at := now()
	switch {
	case state == run.AttemptCanceling:
		r.Outcome, r.Message = run.Canceled, "canceled by request; "+reason
	case r.Attempt <= retryLost:
		r.Outcome = run.Queued
		r.Message = fmt.Sprintf("%s; retrying as attempt %d (retry: when runner_lost, max %d)", reason, r.Attempt+1, retryLost)
	default:
		r.Outcome, r.Message = run.Failed, reason
	}
	if err := appendLogs(ctx, tx, []run.LogChunk{{RunID: runID, JobID: r.JobID, Data: []byte(r.Message + "\n"), At: at}}); err != nil {
		return Rescued{}, false, err
	}
	if r.Outcome == run.Queued {
		if _, err := tx.exec(ctx, `UPDATE steps SET status = 'queued', exit_code = NULL, started_at = NULL, finished_at = NULL
			WHERE job_id = ?`, r.JobID); err != nil {
			return Rescued{}, false, err
		}
		_, err := tx.exec(ctx, "UPDATE jobs SET status = 'queued', message = ?, attempt_id = NULL WHERE id = ? AND status = 'running'",
			r.Message, r.JobID)
		return r, true, err
	}
	// finishJob also settles a job whose run ended meanwhile (canceled between stages).
	if _, _, err := finishJob(ctx, tx, r.JobID, runID, r.Outcome, r.Message, nil); err != nil {
		return Rescued{}, false, err
	}
	return r, true, nil
}

// LeaderElect takes, or keeps, the lease of the duty name (e.g. "rescuer") for holder until the
// database's now() + ttl, and reports whether holder holds it: a free or expired lease is
// taken, the holder's own is extended, anyone else's is left alone.
func (s *Store) LeaderElect(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.writeRelaxed(ctx, func(tx db) error {
		got = ""
		err := tx.queryRow(ctx, `INSERT INTO leaders (name, holder, elected_at, expires_at) VALUES (?, ?, `+tx.clock()+`, `+tx.dbLater()+`)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
				elected_at = CASE WHEN leaders.holder = excluded.holder THEN leaders.elected_at ELSE excluded.elected_at END
			WHERE leaders.holder = excluded.holder OR leaders.expires_at < `+tx.clock()+`
			RETURNING holder`, name, holder, ttl.Microseconds()).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, wrap("elect leader", err)
	}
	return got == holder, nil
}

// LeaderResign gives up holder's lease of name, so another node takes the duty at its next try
// instead of after the lease ran out.
func (s *Store) LeaderResign(ctx context.Context, name, holder string) error {
	err := s.writeRelaxed(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "DELETE FROM leaders WHERE name = ? AND holder = ?", name, holder)
		return err
	})
	return wrap("resign leader", err)
}

// loadAttempts fills the Attempts and Attempt of jobs (as loadJobs read them), oldest first.
func loadAttempts(ctx context.Context, d db, jobs []run.Job) error {
	byID := make(map[int64]int, len(jobs))
	args := make([]any, 0, len(jobs))
	for i, j := range jobs {
		if j.Attempt > 0 {
			byID[j.ID] = i
			args = append(args, j.ID)
		}
	}
	if len(args) == 0 {
		return nil
	}
	rows, err := d.query(ctx, `SELECT id, job_id, number, runner, node, state, reason, created_at, heartbeat_at, expires_at, finished_at
		FROM attempts WHERE job_id IN (`+placeholders(len(args))+`) ORDER BY job_id, number`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a     run.Attempt
			jobID int64
		)
		if err := rows.Scan(&a.ID, &jobID, &a.Number, &a.Runner, &a.Node, &a.State, &a.Reason,
			timeScan{&a.StartedAt}, timeScan{&a.HeartbeatAt}, timeScan{&a.ExpiresAt}, nullTimeScan{&a.FinishedAt}); err != nil {
			return err
		}
		if i, ok := byID[jobID]; ok {
			jobs[i].Attempts = append(jobs[i].Attempts, a)
		}
	}
	return rows.Err()
}

// JobAttempt returns the id of job jobID's current attempt; ErrNotFound when the job does not
// exist or never started.
func (s *Store) JobAttempt(ctx context.Context, jobID int64) (int64, error) {
	var id sql.NullInt64
	if err := s.reader().queryRow(ctx, "SELECT attempt_id FROM jobs WHERE id = ?", jobID).Scan(&id); err != nil {
		return 0, wrap("get job attempt", err)
	}
	if !id.Valid {
		return 0, wrap("get job attempt", ErrNotFound)
	}
	return id.Int64, nil
}
