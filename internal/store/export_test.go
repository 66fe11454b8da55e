package store

import (
	"context"
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
