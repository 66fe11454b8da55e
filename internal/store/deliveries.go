package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/jackc/pgx/v5/pgconn"
)

// deliveryAttempts is how many times DeliveryRecord runs its transaction when it loses a race
// it can retry (another transaction took the same idempotency key first, or a deadlock).
const deliveryAttempts = 5

// deliverySelect reads a delivery (alias d) with its pipeline's name, for scanDelivery; without
// full, headers and body are read as NULL (lists).
func deliverySelect(full bool) string {
	headers, body := "d.headers", "d.body"
	if !full {
		headers, body = "NULL", "NULL"
	}
	return `SELECT d.id, d.pipeline_id, p.name, d.received_at, d.remote_addr, ` + headers + `, ` + body + `,
			d.body_truncated, d.status_code, d.error_code, d.response, d.run_id, d.trace, d.dry_run,
			d.redelivery_of, d.replay_of, d.idempotency_key, d.signature
		FROM deliveries d JOIN pipelines p ON p.id = d.pipeline_id`
}

func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var (
		d                             Delivery
		runID, redeliveryOf, replayOf sql.NullInt64
	)
	err := row.Scan(&d.ID, &d.PipelineID, &d.Pipeline, timeScan{&d.ReceivedAt}, &d.RemoteAddr, headersScan{&d.Headers},
		&d.Body, &d.BodyTruncated, &d.StatusCode, &d.ErrorCode, &d.Response, &runID, &d.Trace, &d.DryRun,
		&redeliveryOf, &replayOf, &d.IdempotencyKey, &d.Signature)
	d.RunID, d.RedeliveryOf, d.ReplayOf = idPtr(runID), idPtr(redeliveryOf), idPtr(replayOf)
	return d, err
}

// headersScan reads the JSON text of a delivery's headers; NULL (left out) is nil.
type headersScan struct{ h *map[string][]string }

func (s headersScan) Scan(v any) error {
	if v == nil {
		*s.h = nil
		return nil
	}
	b, err := textBytes(v, "headers")
	if err != nil {
		return err
	}
	h := map[string][]string{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("store: read headers: %w", err)
		}
	}
	*s.h = h
	return nil
}

// idPtr reads a nullable id.
func idPtr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

// nullIDPtr stores a nil id as NULL.
func nullIDPtr(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// errKeyTaken says another transaction inserted the same idempotency key first; DeliveryRecord
// retries, and then replays that one's answer.
var errKeyTaken = errors.New("idempotency key taken by a concurrent delivery")

// retryable says whether DeliveryRecord may run its transaction again after err.
func retryable(err error) bool {
	if errors.Is(err, errKeyTaken) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") // deadlock, serialization
}

// DeliveryRecord stores a delivery and, when rec.NewRun is set, the queued run it starts, in ONE
// transaction (a crash after it returns loses neither). With Delivery.IdempotencyKey set: when the
// same pipeline already recorded that key within IdempotencyWindow, no run is created; the new
// delivery is stored as a replay (ReplayOf = the first delivery, with the first's StatusCode,
// ErrorCode, Response and RunID) and replayed is true. Safe when requests with one key race
// (also across servers on PostgreSQL): exactly one of them starts a run.
//
// Dry runs and redeliveries (DryRun, RedeliveryOf set) keep their IdempotencyKey as a record but
// neither claim nor replay it. A zero ReceivedAt is now; a zero NewRun.PipelineID is the
// delivery's. When a racing request took the key first the transaction runs again, so Answer
// may be called more than once; only the last call's run and answer are stored.
func (s *Store) DeliveryRecord(ctx context.Context, rec DeliveryRecord) (d Delivery, replayed bool, err error) {
	d, replayed, err = s.deliveryRecord(ctx, rec)
	if err == nil {
		s.Changed(TopicDeliveries, strconv.FormatInt(d.PipelineID, 10))
		if d.RunID != nil && !replayed {
			s.runsChanged(*d.RunID)
		}
	}
	return d, replayed, err
}

func (s *Store) deliveryRecord(ctx context.Context, rec DeliveryRecord) (d Delivery, replayed bool, err error) {
	in := rec.Delivery
	if in.PipelineID == 0 {
		return Delivery{}, false, errors.New("store: record delivery: no pipeline id")
	}
	var newRun RunCreate
	if rec.NewRun != nil {
		if rec.Answer == nil {
			return Delivery{}, false, errors.New("store: record delivery: NewRun set without Answer")
		}
		newRun = *rec.NewRun
		if newRun.PipelineID == 0 {
			newRun.PipelineID = in.PipelineID
		}
		if newRun.PipelineID != in.PipelineID {
			return Delivery{}, false, fmt.Errorf("store: record delivery: run of pipeline %d for a delivery of pipeline %d",
				newRun.PipelineID, in.PipelineID)
		}
	}
	headers := "{}"
	if len(in.Headers) > 0 {
		b, err := json.Marshal(in.Headers)
		if err != nil {
			return Delivery{}, false, fmt.Errorf("store: record delivery: headers: %w", err)
		}
		headers = string(b)
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = now()
	}
	in.ReceivedAt = in.ReceivedAt.UTC().Truncate(time.Microsecond)
	useKey := in.IdempotencyKey != "" && !in.DryRun && in.RedeliveryOf == nil
	if s.pg && !useKey {
		var nr *runRow
		if rec.NewRun != nil {
			if nr, err = newRunRow(db{pg: true}, newRun); err != nil {
				return Delivery{}, false, wrap("record delivery", err)
			}
		}
		if nr == nil || nr.oneStatement(db{pg: true}) {
			d, err := s.recordOne(ctx, nr, in, headers, rec.Answer, rec.Basis)
			if err != nil {
				return Delivery{}, false, wrap("record delivery", err)
			}
			return d, false, nil
		}
	}

	if s.pg && useKey && rec.NewRun != nil {
		nr, err := newRunRow(db{pg: true}, newRun)
		if err != nil {
			return Delivery{}, false, wrap("record delivery", err)
		}
		if nr.oneStatement(db{pg: true}) {
			d, stored, err := s.recordKeyed(ctx, nr, in, headers, rec.BodySHA256, rec.Answer, rec.Basis)
			if err != nil {
				return Delivery{}, false, wrap("record delivery", err)
			}
			if stored {
				return d, false, nil
			}
			// The key replays an earlier answer, or mismatches, or was taken meanwhile, or the
			// basis failed: the transaction below says which.
		}
	}

	for attempt := 1; ; attempt++ {
		err = s.write(ctx, func(tx db) error {
			row := in
			row.RunID, row.ReplayOf, replayed = nil, nil, false
			if rec.Basis != nil {
				if err := checkBasis(ctx, tx, in.PipelineID, rec.Basis); err != nil {
					return err
				}
			}
			if useKey {
				first, err := claimKey(ctx, tx, in.PipelineID, in.IdempotencyKey, rec.BodySHA256)
				if err != nil {
					return err
				}
				if first != nil {
					replayed = true
					row.StatusCode, row.ErrorCode, row.Response, row.RunID = first.StatusCode, first.ErrorCode, first.Response, first.RunID
					row.ReplayOf = &first.ID
				}
			}
			var r *run.Run // the run created, if any
			if rec.NewRun != nil && !replayed {
				created, err := createRun(ctx, tx, s.numbers(tx), newRun)
				if err != nil {
					return err
				}
				r = &created
				row.StatusCode, row.Response = rec.Answer(created)
				row.RunID = &created.ID
			}
			var id int64
			if err := tx.queryRow(ctx, insertDelivery, deliveryArgs(tx, row, headers)...).Scan(&id); err != nil {
				return err
			}
			if useKey && !replayed {
				if _, err := tx.exec(ctx, "UPDATE webhook_idempotency SET delivery_id = ? WHERE pipeline_id = ? AND key = ?",
					id, row.PipelineID, row.IdempotencyKey); err != nil {
					return err
				}
			}
			var name string
			if r != nil {
				name = r.Pipeline
			} else if err := tx.queryRow(ctx, "SELECT name FROM pipelines WHERE id = ?", row.PipelineID).Scan(&name); err != nil {
				return err
			}
			d = storedDelivery(row, id, name)
			return nil
		})
		if err == nil {
			return d, replayed, nil
		}
		if attempt >= deliveryAttempts || !retryable(err) || ctx.Err() != nil {
			return Delivery{}, false, wrap("record delivery", err)
		}
		s.logger.Debug("store: record delivery: retrying", "attempt", attempt, "err", err)
	}
}

// storedDelivery is row as DeliveryGet reads it back once it is stored with id: built from the
// values written instead of read again. Only the pipeline's name comes from the database.
func storedDelivery(row Delivery, id int64, pipeline string) Delivery {
	d := row
	d.ID, d.Pipeline = id, pipeline
	d.Headers = make(map[string][]string, len(row.Headers))
	for k, v := range row.Headers {
		d.Headers[k] = slices.Clone(v)
	}
	d.Body, d.Response, d.Trace = bytes.Clone(row.Body), bytes.Clone(row.Response), bytes.Clone(row.Trace)
	d.RunID, d.RedeliveryOf, d.ReplayOf = clonePtr(row.RunID), clonePtr(row.RedeliveryOf), clonePtr(row.ReplayOf)
	return d
}

// clonePtr is a copy of *p, or nil.
func clonePtr(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// insertDelivery stores a delivery (deliveryArgs) and returns its id.
const insertDelivery = insertDeliveryInto + " VALUES (" + deliveryValues + ") RETURNING id"

// insertDeliveryInto and deliveryValues are insertDelivery's halves: the table and columns,
// and deliveryArgs' placeholders.
const (
	insertDeliveryInto = `INSERT INTO deliveries (` + deliveryCols + `)`
	deliveryCols       = `pipeline_id, received_at, remote_addr, headers, body, body_truncated,
		status_code, error_code, response, run_id, trace, dry_run, redelivery_of, replay_of, idempotency_key, signature`
	deliveryValues = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
)

// deliveryArgs are insertDelivery's arguments for row, its headers as JSON.
func deliveryArgs(tx db, row Delivery, headers string) []any {
	return []any{row.PipelineID, tx.ts(row.ReceivedAt), row.RemoteAddr, headers, row.Body, row.BodyTruncated,
		row.StatusCode, row.ErrorCode, row.Response, nullIDPtr(row.RunID), row.Trace, row.DryRun,
		nullIDPtr(row.RedeliveryOf), nullIDPtr(row.ReplayOf), row.IdempotencyKey, row.Signature}
}

// recordOne is DeliveryRecord of a delivery with no idempotency key to claim, on PostgreSQL,
// in ONE statement, its own transaction: one round trip and one commit, where a transaction
// would take several (BEGIN, the INSERTs, COMMIT), which is most of what a delivery costs
// there. A delivery that starts a run (nr set) has the run's number and ids reserved first
// (runRow.reserve, on the counter pool), so that the answer can be built and the run, its
// jobs, its steps and the delivery stored by that one statement.
//
// With basis, the statement begins with basisHolds and each of its INSERTs inserts only when
// that found the basis holding; when not, it stores nothing and this returns ErrStale (a run
// number reserved for it is then never used).
func (s *Store) recordOne(ctx context.Context, nr *runRow, in Delivery, headers string, answer func(run.Run) (int, []byte), basis *WebhookBasis) (Delivery, error) {
	tx := db{q: s.w, pg: true}
	var (
		ctes []string
		args []any
	)
	if basis != nil {
		ctes, args = append(ctes, "ok AS ("+basisHolds+")"), basisArgs(tx, in.PipelineID, basis)
	}
	row, name := in, ""
	if nr != nil {
		if err := nr.reserve(ctx, s.numbers(db{})); err != nil {
			if basis != nil && (errors.Is(err, ErrNotFound) || errors.Is(classify(err), ErrNotFound)) {
				// The pipeline was deleted since the basis was read: it no longer holds.
				return Delivery{}, ErrStale
			}
			return Delivery{}, err
		}
		row.StatusCode, row.Response = answer(nr.r)
		row.RunID, name = &nr.r.ID, nr.r.Pipeline
		gate := ""
		if basis != nil {
			gate = "ok"
		}
		q, a := nr.inserts(gate)
		ctes, args = append(ctes, q), append(args, a...)
	}
	var q strings.Builder
	if len(ctes) > 0 {
		q.WriteString("WITH " + strings.Join(ctes, ", ") + " ")
	}
	q.WriteString(insertDeliveryInto)
	if basis != nil {
		q.WriteString(" SELECT " + deliveryValues + " FROM ok")
	} else {
		q.WriteString(" VALUES (" + deliveryValues + ")")
	}
	q.WriteString(" RETURNING id, (SELECT name FROM pipelines p WHERE p.id = pipeline_id)")
	var id int64
	err := tx.queryRow(ctx, q.String(), append(args, deliveryArgs(tx, row, headers)...)...).Scan(&id, &name)
	if basis != nil && errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrStale
	}
	if err != nil {
		return Delivery{}, err
	}
	return storedDelivery(row, id, name), nil
}

// keyReplays is the condition, on an idempotency key's row k (argument: the window's start), of
// a key that may replay its first delivery's answer: claimed by a delivery within
// IdempotencyWindow. (Whether that delivery is still stored, DeliveryRecord's transaction finds
// out.) It reads the row alone: in the ON CONFLICT of recordKeyed it is evaluated on the row as
// a concurrent claim committed it, which a subquery, reading the statement's snapshot, would
// not see.
const keyReplays = `k.delivery_id IS NOT NULL AND k.created_at > ?`

// reserveKeyedPG is reservePG for a delivery that claims an idempotency key, with an id for the
// delivery too; it takes nothing and returns no row when the key may replay (keyReplays), so
// a repeated delivery uses up no run number. Arguments: the pipeline, the key, the window's
// start, then reservePG's.
var reserveKeyedPG = `WITH live AS (SELECT 1 FROM webhook_idempotency k WHERE k.pipeline_id = ? AND k.key = ? AND ` + keyReplays + `),
	n AS (` + nextRunNumberInto + `SELECT ` + nextRunNumberRow + ` WHERE NOT EXISTS (SELECT 1 FROM live)` +
	fmt.Sprintf(nextRunNumberUpdate, "GREATEST", "") + `) ` + reserveSelect(", nextval('deliveries_id_seq')")

// recordKeyed is DeliveryRecord of a delivery that starts a run and claims an idempotency key,
// on PostgreSQL, in ONE statement when the key is new or expired: after the number and ids
// are reserved (reserveKeyedPG, which also finds a key that replays), the statement claims the
// key — inserting its row, or taking over an expired one — and stores the run, its jobs, its
// steps and the delivery only when it did (and, with basis, when the basis holds). stored is
// false, with nothing stored, when the key may replay, or another delivery claimed it
// meanwhile, or the basis failed: DeliveryRecord's transaction then replays, refuses or stores
// it (the number reserved in the last two cases is never used).
func (s *Store) recordKeyed(ctx context.Context, nr *runRow, in Delivery, headers string, bodyHash []byte,
	answer func(run.Run) (int, []byte), basis *WebhookBasis) (d Delivery, stored bool, err error) {
	tx := db{q: s.w, pg: true}
	at := now()
	since := tx.ts(at.Add(-IdempotencyWindow))
	r := &nr.r
	var id int64
	found, err := nr.reserveBy(ctx, s.numbers(db{}), reserveKeyedPG,
		[]any{in.PipelineID, in.IdempotencyKey, since, r.PipelineID, r.PipelineID, len(nr.jobs), nr.nextSteps, r.PipelineID}, &id)
	if err != nil || !found {
		return Delivery{}, false, err
	}
	row := in
	row.StatusCode, row.Response = answer(nr.r)
	row.RunID = &nr.r.ID
	var (
		ctes []string
		args []any
		from string
	)
	if basis != nil {
		ctes, args, from = append(ctes, "ok AS ("+basisHolds+")"), basisArgs(tx, in.PipelineID, basis), " FROM ok"
	}
	ctes = append(ctes, `claimed AS (INSERT INTO webhook_idempotency AS k (pipeline_id, key, delivery_id, created_at, body_sha256)
		SELECT ?, ?, ?, ?, ?`+from+`
		ON CONFLICT (pipeline_id, key) DO UPDATE SET delivery_id = excluded.delivery_id, created_at = excluded.created_at,
			body_sha256 = excluded.body_sha256
		WHERE NOT (`+keyReplays+`)
		RETURNING 1)`)
	args = append(args, in.PipelineID, in.IdempotencyKey, id, tx.ts(at), bodyHash, since)
	q, a := nr.inserts("claimed")
	ctes, args = append(ctes, q), append(args, a...)
	stmt := "WITH " + strings.Join(ctes, ", ") + " INSERT INTO deliveries (id, " + deliveryCols + ") OVERRIDING SYSTEM VALUE SELECT ?, " +
		deliveryValues + " FROM claimed RETURNING id, (SELECT name FROM pipelines p WHERE p.id = pipeline_id)"
	var name string
	err = tx.queryRow(ctx, stmt, append(append(args, id), deliveryArgs(tx, row, headers)...)...).Scan(&id, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, false, nil
	}
	if err != nil {
		return Delivery{}, false, err
	}
	return storedDelivery(row, id, name), true, nil
}

// claimKey looks an idempotency key up inside DeliveryRecord's transaction. Within the window it
// returns the first delivery with the key (status, error code, response and run only), to
// replay, or ErrKeyMismatch when the key came with another body (both hashes known).
// Otherwise it drops an expired key row and inserts a fresh one with bodyHash (delivery_id set
// by the caller once the delivery is stored) and returns nil. On PostgreSQL a racing
// transaction's insert of the same key waits for the first and then fails with errKeyTaken.
func claimKey(ctx context.Context, tx db, pipelineID int64, key string, bodyHash []byte) (*Delivery, error) {
	at := now()
	var (
		firstID   sql.NullInt64
		created   time.Time
		firstHash []byte
	)
	err := tx.queryRow(ctx, "SELECT delivery_id, created_at, body_sha256 FROM webhook_idempotency WHERE pipeline_id = ? AND key = ?",
		pipelineID, key).Scan(&firstID, timeScan{&created}, &firstHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, err
	default:
		if firstID.Valid && created.After(at.Add(-IdempotencyWindow)) {
			if len(firstHash) > 0 && len(bodyHash) > 0 && !bytes.Equal(firstHash, bodyHash) {
				return nil, ErrKeyMismatch
			}
			var (
				first Delivery
				runID sql.NullInt64
			)
			err := tx.queryRow(ctx, `SELECT id, status_code, error_code, response, run_id FROM deliveries
				WHERE id = ? AND pipeline_id = ?`, firstID.Int64, pipelineID).Scan(
				&first.ID, &first.StatusCode, &first.ErrorCode, &first.Response, &runID)
			if err == nil {
				first.RunID = idPtr(runID)
				return &first, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, err
			}
			// The first delivery is gone (DeliveryPrune keeps it while its key is live, so only
			// something outside the store removes it): nothing to replay, start anew.
		}
		if _, err := tx.exec(ctx, "DELETE FROM webhook_idempotency WHERE pipeline_id = ? AND key = ?", pipelineID, key); err != nil {
			return nil, err
		}
	}
	_, err = tx.exec(ctx, "INSERT INTO webhook_idempotency (pipeline_id, key, delivery_id, created_at, body_sha256) VALUES (?, ?, NULL, ?, ?)",
		pipelineID, key, tx.ts(at), bodyHash)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return nil, fmt.Errorf("%w: %w", errKeyTaken, err)
	}
	return nil, err
}

// DeliveryGet returns one delivery with headers and body.
func (s *Store) DeliveryGet(ctx context.Context, id int64) (Delivery, error) {
	d, err := scanDelivery(s.reader().queryRow(ctx, deliverySelect(true)+" WHERE d.id = ?", id))
	if err != nil {
		return Delivery{}, wrap("get delivery", err)
	}
	return d, nil
}

// DeliveryList returns a pipeline's deliveries newest first, without Headers and Body (limit
// 1..200, 0 = 50; beforeID 0 = from the newest).
func (s *Store) DeliveryList(ctx context.Context, pipelineID int64, limit int, beforeID int64) ([]Delivery, error) {
	switch {
	case limit <= 0:
		limit = 50
	case limit > 200:
		limit = 200
	}
	q, args := deliverySelect(false)+" WHERE d.pipeline_id = ?", []any{pipelineID}
	if beforeID > 0 {
		q, args = q+" AND d.id < ?", append(args, beforeID)
	}
	q, args = q+" ORDER BY d.id DESC LIMIT ?", append(args, limit)
	out, err := queryAll(ctx, s.reader(), func(row scanner, d *Delivery) (err error) {
		*d, err = scanDelivery(row)
		return err
	}, q, args...)
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	return out, nil
}

// keyLive keeps DeliveryPrune from removing a delivery that a live idempotency key (one inside
// the window: older ones are dropped first) still replays.
const keyLive = " AND NOT EXISTS (SELECT 1 FROM webhook_idempotency k WHERE k.delivery_id = deliveries.id)"

// DeliveryPrune keeps at most keep deliveries per pipeline and none older than maxAge, and
// drops idempotency keys older than IdempotencyWindow. It returns how many deliveries it removed.
//
// The first delivery of a key still inside the window is kept until the key expires, whatever
// keep and maxAge say, so the key goes on replaying its answer (and starting no second run).
// keep < 1 or maxAge <= 0 turns that bound off. Each step is its own transaction (one per
// pipeline for keep), so a large prune does not hold the SQLite writer for long.
func (s *Store) DeliveryPrune(ctx context.Context, keep int, maxAge time.Duration) (int64, error) {
	at := now()
	err := s.write(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "DELETE FROM webhook_idempotency WHERE created_at < ?", tx.ts(at.Add(-IdempotencyWindow)))
		return err
	})
	if err != nil {
		return 0, wrap("prune deliveries", err)
	}
	var removed int64
	if maxAge > 0 {
		err := s.write(ctx, func(tx db) error {
			n, err := tx.execN(ctx, "DELETE FROM deliveries WHERE received_at < ?"+keyLive, tx.ts(at.Add(-maxAge)))
			removed += n
			return err
		})
		if err != nil {
			return removed, wrap("prune deliveries", err)
		}
	}
	if keep < 1 {
		return removed, nil
	}
	over, err := queryIDs(ctx, s.reader(), "SELECT pipeline_id FROM deliveries GROUP BY pipeline_id HAVING COUNT(*) > ?", keep)
	if err != nil {
		return removed, wrap("prune deliveries", err)
	}
	for _, pid := range over {
		err := s.write(ctx, func(tx db) error {
			var oldestKept int64
			err := tx.queryRow(ctx, "SELECT id FROM deliveries WHERE pipeline_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
				pid, keep-1).Scan(&oldestKept)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			n, err := tx.execN(ctx, "DELETE FROM deliveries WHERE pipeline_id = ? AND id < ?"+keyLive, pid, oldestKept)
			removed += n
			return err
		})
		if err != nil {
			return removed, wrap("prune deliveries", err)
		}
	}
	return removed, nil
}
