package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"time"
)

// Notification statuses (Notification.Status). The notifier plans a notification pending
// (NotifyPlan); its claims and results (NotificationsClaim, NotificationRecord) move it to
// delivered on a 2xx answer or to failed once its give-up time has passed.
const (
	NotifyPending   = "pending"
	NotifyDelivered = "delivered"
	NotifyFailed    = "failed"
)

// EndedRun is an ended run whose notifications are not planned yet (notify_pending: the
// database writes it in the transaction that ends the run).
type EndedRun struct {
	RunID   int64
	EndedAt time.Time
}

// NotifyTarget is where a run's notification goes: a notify entry of its definition.
type NotifyTarget struct {
	Index  int    // its position in the definition's notify list
	URL    string // http or https
	Secret string // the name of the secret variable that signs it; "" = unsigned
}

// Notification is one run's notification to one target, with its attempts (newest last;
// filled by RunNotifications only).
type Notification struct {
	ID             int64
	RunID          int64
	NotifyTarget   NotifyTarget
	Delivery       string // the id receivers dedupe by (X-Flowd-Delivery)
	Status         string // NotifyPending, NotifyDelivered, NotifyFailed
	Attempts       int    // attempts begun; a claim counts its attempt
	NextAttemptAt  time.Time
	GiveUpAt       time.Time
	LastStatusCode int // 0 = no HTTP answer
	LastError      string
	CreatedAt      time.Time
	FinishedAt     *time.Time // when it was delivered or given up
	History        []NotifyAttempt
}

// NotifyAttempt is one POST of a notification.
type NotifyAttempt struct {
	Number     int           `json:"number"`
	StartedAt  time.Time     `json:"started_at"`
	Duration   time.Duration `json:"-"`
	StatusCode int           `json:"status_code,omitempty"` // 0 = no HTTP answer
	Error      string        `json:"error,omitempty"`
}

// NotifyEndedRuns lists up to limit ended runs whose notifications are not planned, oldest
// first.
func (s *Store) NotifyEndedRuns(ctx context.Context, limit int) ([]EndedRun, error) {
	rows, err := queryAll(ctx, s.reader(), func(row scanner, e *EndedRun) error {
		return row.Scan(&e.RunID, timeScan{&e.EndedAt})
	}, "SELECT run_id, ended_at FROM notify_pending ORDER BY ended_at, run_id LIMIT ?", limit)
	if err != nil {
		return nil, wrap("list ended runs to notify", err)
	}
	return rows, nil
}

// NotifyPlan turns an ended run's pending row into one pending notification per target, due
// at now and given up at giveUpAt, in one transaction. It reports false when the run was
// already planned (by another server): nothing changed then.
func (s *Store) NotifyPlan(ctx context.Context, runID int64, targets []NotifyTarget, now, giveUpAt time.Time) (bool, error) {
	var planned bool
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "DELETE FROM notify_pending WHERE run_id = ?", runID)
		if err != nil || n == 0 {
			return err
		}
		for _, t := range targets {
			_, err := tx.exec(ctx, `INSERT INTO notifications (run_id, target, url, secret, delivery, status, next_attempt_at, give_up_at, created_at)
				VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
				runID, t.Index, t.URL, t.Secret, newDeliveryID(), tx.ts(now), tx.ts(giveUpAt), tx.ts(now))
			if err != nil {
				return err
			}
		}
		planned = true
		return nil
	})
	if err != nil {
		return false, wrap("plan notifications", err)
	}
	return planned, nil
}

// newDeliveryID is a random UUID (version 4), the id a receiver dedupes a notification by.
func newDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

const notificationCols = `id, run_id, target, url, secret, delivery, status, attempts, next_attempt_at, give_up_at,
	last_status_code, last_error, created_at, finished_at`

func scanNotification(row scanner, n *Notification) error {
	var code sql.NullInt64
	err := row.Scan(&n.ID, &n.RunID, &n.NotifyTarget.Index, &n.NotifyTarget.URL, &n.NotifyTarget.Secret, &n.Delivery, &n.Status,
		&n.Attempts, timeScan{&n.NextAttemptAt}, timeScan{&n.GiveUpAt}, &code, &n.LastError, timeScan{&n.CreatedAt},
		nullTimeScan{&n.FinishedAt})
	n.LastStatusCode = int(code.Int64)
	return err
}

// NotificationsClaim takes up to limit pending notifications due at now whose lease (if any)
// has run out, for one attempt each: it counts the attempt and leases the notification until
// now+lease, in one statement. Two servers never claim the same notification at once
// (PostgreSQL skips the rows another claim has locked; SQLite has one writer).
func (s *Store) NotificationsClaim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Notification, error) {
	var out []Notification
	err := s.write(ctx, func(tx db) error {
		lock := ""
		if tx.pg {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		var err error
		out, err = queryAll(ctx, tx, scanNotification, `UPDATE notifications SET attempts = attempts + 1, lease_until = ?
			WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?
				AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, id LIMIT ?`+lock+`)
			RETURNING `+notificationCols,
			tx.ts(now.Add(lease)), tx.ts(now), tx.ts(now), limit)
		return err
	})
	if err != nil {
		return nil, wrap("claim notifications", err)
	}
	return out, nil
}

// NotifyResult is what became of one attempt: Status is NotifyDelivered, NotifyFailed (given
// up) or NotifyPending (tried again at Next).
type NotifyResult struct {
	Attempt NotifyAttempt
	Status  string
	Next    time.Time // when Status is NotifyPending
}

// NotificationRecord records attempt number of notification id and its outcome, fenced by the
// attempt: it reports false (and changes nothing) when the notification has moved on since
// (another claim after a lease ran out).
func (s *Store) NotificationRecord(ctx context.Context, id int64, r NotifyResult) (bool, error) {
	var ok bool
	a := r.Attempt
	err := s.write(ctx, func(tx db) error {
		var finished, code any
		if r.Status != NotifyPending {
			finished = tx.ts(a.StartedAt.Add(a.Duration))
		}
		if a.StatusCode != 0 {
			code = a.StatusCode
		}
		next := r.Next
		if next.IsZero() {
			next = a.StartedAt
		}
		n, err := tx.execN(ctx, `UPDATE notifications SET status = ?, next_attempt_at = ?, lease_until = NULL,
			last_status_code = ?, last_error = ?, finished_at = ? WHERE id = ? AND attempts = ? AND status = 'pending'`,
			r.Status, tx.ts(next), code, a.Error, finished, id, a.Number)
		if err != nil || n == 0 {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO notification_attempts (notification_id, number, started_at, duration_ms, status_code, error)
			VALUES (?, ?, ?, ?, ?, ?)`, id, a.Number, tx.ts(a.StartedAt), a.Duration.Milliseconds(), code, a.Error)
		ok = err == nil
		return err
	})
	if err != nil {
		return false, wrap("record notification", err)
	}
	return ok, nil
}

// RunNotifications lists a run's notifications by target with their attempts; none (and no
// error) for a run without any.
func (s *Store) RunNotifications(ctx context.Context, runID int64) ([]Notification, error) {
	var out []Notification
	err := s.read(ctx, func(tx db) error {
		var err error
		out, err = queryAll(ctx, tx, scanNotification, "SELECT "+notificationCols+" FROM notifications WHERE run_id = ? ORDER BY target", runID)
		if err != nil {
			return err
		}
		type row struct {
			id int64
			a  NotifyAttempt
		}
		attempts, err := queryAll(ctx, tx, func(sc scanner, r *row) error {
			var code sql.NullInt64
			var ms int64
			err := sc.Scan(&r.id, &r.a.Number, timeScan{&r.a.StartedAt}, &ms, &code, &r.a.Error)
			r.a.Duration, r.a.StatusCode = time.Duration(ms)*time.Millisecond, int(code.Int64)
			return err
		}, `SELECT a.notification_id, a.number, a.started_at, a.duration_ms, a.status_code, a.error
			FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id
			WHERE n.run_id = ? ORDER BY a.notification_id, a.number`, runID)
		if err != nil {
			return err
		}
		for _, r := range attempts {
			for i := range out {
				if out[i].ID == r.id {
					out[i].History = append(out[i].History, r.a)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("list run notifications", err)
	}
	return out, nil
}
