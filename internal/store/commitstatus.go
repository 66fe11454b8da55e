package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Commit status report statuses (CommitStatus.Status). The database makes a run's report
// pending whenever the run's state changes (migration 0024's triggers); the reporter's claims
// and results (CommitStatusesClaim, CommitStatusRecord) move it to sent when the host accepts
// it, or to failed when the host refuses it for good or its give-up time has passed.
const (
	ReportPending = "pending"
	ReportSent    = "sent"
	ReportFailed  = "failed"
)

// CommitStatus is what a run reports to the code host of its commit: the newest state and how
// sending it went, with every attempt (newest last; filled by RunCommitStatus only).
type CommitStatus struct {
	RunID          int64
	State          run.Status // the run's newest state, the one to report
	Version        int        // counts the state's changes; fences an attempt's answer
	Status         string     // ReportPending, ReportSent, ReportFailed
	SentState      run.Status // the newest state the host accepted; "" = none yet
	Attempts       int        // attempts at this version; a claim counts its attempt
	Tries          int        // attempts at every version: the newest attempt's number
	NextAttemptAt  time.Time
	GiveUpAt       *time.Time // set by this version's first claim
	LastStatusCode int        // 0 = no HTTP answer
	LastError      string
	ChangedAt      time.Time // when State was set
	History        []CommitStatusAttempt
}

// CommitStatusAttempt is one request that reported State.
type CommitStatusAttempt struct {
	Number     int
	State      run.Status
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int // 0 = no HTTP answer
	Error      string
}

const commitStatusCols = `run_id, state, version, status, sent_state, attempts, tries, next_attempt_at, give_up_at,
	last_status_code, last_error, changed_at`

func scanCommitStatus(row scanner, c *CommitStatus) error {
	var code sql.NullInt64
	err := row.Scan(&c.RunID, &c.State, &c.Version, &c.Status, &c.SentState, &c.Attempts, &c.Tries,
		timeScan{&c.NextAttemptAt}, nullTimeScan{&c.GiveUpAt}, &code, &c.LastError, timeScan{&c.ChangedAt})
	c.LastStatusCode = int(code.Int64)
	return err
}

// CommitStatusesClaim takes up to limit pending reports due at now whose lease (if any) has run
// out, for one attempt each: it counts the attempt, leases the report until now+lease and, on a
// version's first attempt, sets its give-up time to now+window, in one statement. Two servers
// never claim the same report at once (PostgreSQL skips the rows another claim has locked;
// SQLite has one writer).
func (s *Store) CommitStatusesClaim(ctx context.Context, now time.Time, lease, window time.Duration, limit int) ([]CommitStatus, error) {
	var out []CommitStatus
	err := s.write(ctx, func(tx db) error {
		lock := ""
		if tx.pg {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		var err error
		out, err = queryAll(ctx, tx, scanCommitStatus, `UPDATE commit_statuses SET attempts = attempts + 1, tries = tries + 1,
				lease_until = ?, give_up_at = COALESCE(give_up_at, ?)
			WHERE run_id IN (SELECT run_id FROM commit_statuses WHERE status = 'pending' AND next_attempt_at <= ?
				AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, run_id LIMIT ?`+lock+`)
			RETURNING `+commitStatusCols,
			tx.ts(now.Add(lease)), tx.ts(now.Add(window)), tx.ts(now), tx.ts(now), limit)
		return err
	})
	if err != nil {
		return nil, wrap("claim commit statuses", err)
	}
	return out, nil
}

// CommitStatusResult is what became of one attempt at a claimed report (the claim's Version
// and State, Attempt.Number = its Tries): Status is ReportSent, ReportFailed (refused for good,
// or given up) or ReportPending (tried again at Next).
type CommitStatusResult struct {
	Version int
	Attempt CommitStatusAttempt
	Status  string
	Next    time.Time // when Status is ReportPending
}

// CommitStatusRecord records an attempt at run runID's report and its outcome, fenced by the
// attempt's number: it reports false (and changes nothing) when the report was claimed again
// since (a lease that ran out). An accepted state becomes the sent state even when the run has
// moved on meanwhile; the outcome decides the report's status only while its version is the
// attempt's, else the newer state stays pending, due at once.
func (s *Store) CommitStatusRecord(ctx context.Context, runID int64, r CommitStatusResult) (bool, error) {
	var ok bool
	a := r.Attempt
	err := s.write(ctx, func(tx db) error {
		var code any
		if a.StatusCode != 0 {
			code = a.StatusCode
		}
		next := r.Next
		if next.IsZero() {
			next = a.StartedAt
		}
		sent := r.Status == ReportSent
		n, err := tx.execN(ctx, `UPDATE commit_statuses SET lease_until = NULL, last_status_code = ?, last_error = ?,
				sent_state = CASE WHEN ? THEN ? ELSE sent_state END,
				status = CASE WHEN version = ? THEN ? ELSE status END,
				next_attempt_at = CASE WHEN version = ? THEN ? ELSE next_attempt_at END
			WHERE run_id = ? AND tries = ?`,
			code, a.Error, sent, a.State, r.Version, r.Status, r.Version, tx.ts(next), runID, a.Number)
		if err != nil || n == 0 {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO commit_status_attempts (run_id, number, state, started_at, duration_ms, status_code, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, runID, a.Number, a.State, tx.ts(a.StartedAt), a.Duration.Milliseconds(), code, a.Error)
		ok = err == nil
		return err
	})
	if err != nil {
		return false, wrap("record commit status", err)
	}
	return ok, nil
}

// RunCommitStatus is run runID's commit status report with its attempts; ErrNotFound when the
// run reports none (no commit, or its pipeline's source has no status_token).
func (s *Store) RunCommitStatus(ctx context.Context, runID int64) (CommitStatus, error) {
	var c CommitStatus
	err := s.read(ctx, func(tx db) error {
		err := scanCommitStatus(tx.queryRow(ctx, "SELECT "+commitStatusCols+" FROM commit_statuses WHERE run_id = ?", runID), &c)
		if err != nil {
			return err
		}
		c.History, err = queryAll(ctx, tx, func(sc scanner, a *CommitStatusAttempt) error {
			var code sql.NullInt64
			var ms int64
			err := sc.Scan(&a.Number, &a.State, timeScan{&a.StartedAt}, &ms, &code, &a.Error)
			a.Duration, a.StatusCode = time.Duration(ms)*time.Millisecond, int(code.Int64)
			return err
		}, `SELECT number, state, started_at, duration_ms, status_code, error FROM commit_status_attempts
			WHERE run_id = ? ORDER BY number`, runID)
		return err
	})
	if err != nil {
		return CommitStatus{}, wrap("read commit status", err)
	}
	return c, nil
}
