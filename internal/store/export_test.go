package store

import (
	"context"
	"strings"
	"time"
)

// ExecForTest runs a statement written with ? placeholders in a write transaction, storing
// time.Time arguments as the dialect keeps times, and returns how many rows it touched. Tests
// use it to age rows (a key past the idempotency window, an old delivery).
func (s *Store) ExecForTest(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx db) error {
		for i, a := range args {
			if t, ok := a.(time.Time); ok {
				args[i] = tx.ts(t)
			}
		}
		var err error
		n, err = tx.execN(ctx, query, args...)
		return err
	})
	return n, err
}

// CountForTest runs a SELECT COUNT(*) … written with ? placeholders.
func (s *Store) CountForTest(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.reader().queryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// HoldForTest runs a statement in a transaction of its own on the main pool and leaves the
// transaction open, as a server that stopped in the middle of it would; rollback ends it.
func (s *Store) HoldForTest(ctx context.Context, query string, args ...any) (rollback func(), err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, db{pg: s.pg}.rebind(query), args...); err != nil {
		tx.Rollback()
		return nil, err
	}
	return func() { _ = tx.Rollback() }, nil
}

// BacklogPlansForTest is SQLite's query plan of the backlog's two counts (RunsQueued,
// RunsEnded), one line per step; "" on PostgreSQL.
func (s *Store) BacklogPlansForTest(ctx context.Context) ([]string, error) {
	if s.pg {
		return nil, nil
	}
	var plans []string
	for i, q := range []string{queuedQuery, endedQuery(false)} {
		args := []any{int64(0)}
		if i == 0 {
			args = nil
		}
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			return nil, err
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				rows.Close()
				return nil, err
			}
			plan = append(plan, detail)
		}
		rows.Close()
		plans = append(plans, strings.Join(plan, "; "))
	}
	return plans, nil
}
