package store

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Limits shared by the servers of one database: a token bucket per key (the webhook rate of
// each trigger) and sign-in attempts per key. Each decision is one statement that reads and
// changes the key's row under its lock, so servers deciding at once never both take the last
// token or the last attempt; every time in it is the database's clock, so servers whose clocks
// disagree still agree on the limit. Writes here acknowledge nothing (writeOne): a power loss
// that forgets the last counts forgets a few requests, which is harmless.

// writeOne runs fn, a single statement, as a transaction of its own. On PostgreSQL it runs
// outside BEGIN … COMMIT (autocommit), so the row it locks is held while the statement runs,
// not for a transaction's round trips: a hot key (one trigger's bucket) is taken about as
// fast as the database can run the statement. On SQLite it is a relaxed write in the ingest
// lane (a limit decides whether ingest may go on; it is no job progress).
func (s *Store) writeOne(ctx context.Context, fn func(tx db) error) error {
	if s.pg {
		s.stats.writes.Add(1)
		s.stats.txs.Add(1)
		return fn(db{q: s.w, pg: true, n: &s.stats.stmts})
	}
	return s.writeAs(ctx, relaxed, fn)
}

// nowNanos is the SQL expression of the database's clock in unix nanoseconds, the unit these
// tables keep times in.
func (d db) nowNanos() string {
	if d.pg {
		return "CAST(EXTRACT(EPOCH FROM now()) * 1000000000 AS BIGINT)"
	}
	return d.clock()
}

// least and greatest are the dialect's two-argument minimum and maximum.
func (d db) least() string {
	if d.pg {
		return "LEAST"
	}
	return "MIN"
}

func (d db) greatest() string {
	if d.pg {
		return "GREATEST"
	}
	return "MAX"
}

// RateTake takes n tokens at once from key's bucket, which holds at most burst tokens and gets
// rate tokens per second back (a new key starts full); ok says it took them. When fewer than n
// are left it takes none and returns false and how long until one is (rounded up, at least a
// microsecond): with n 1 that is when to ask again. rate must be above 0, burst at least 1, n
// from 1 to burst.
func (s *Store) RateTake(ctx context.Context, key string, rate float64, burst, n int) (ok bool, retryAfter time.Duration, err error) {
	if !(rate > 0) || math.IsInf(rate, 0) || burst < 1 || n < 1 || n > burst {
		return false, 0, fmt.Errorf("store: take rate tokens: rate %g, burst %d, n %d: want a finite rate above 0, a burst of at least 1 and n from 1 to the burst", rate, burst, n)
	}
	var tokens float64
	err = s.writeOne(ctx, func(tx db) error {
		now := tx.nowNanos()
		// The bucket's tokens now: what it had plus what came back since, at most burst.
		// Arguments: burst, rate. A clock that stepped back refills nothing.
		refill := fmt.Sprintf("%s(CAST(? AS DOUBLE PRECISION), b.tokens + %s(0, %s - b.at) * CAST(? AS DOUBLE PRECISION) / 1e9)",
			tx.least(), tx.greatest(), now)
		// Each ? after a refill is n.
		q := fmt.Sprintf(`INSERT INTO rate_buckets AS b (key, tokens, at, took)
			VALUES (?, CAST(? AS DOUBLE PRECISION) - ?, %[1]s, TRUE)
			ON CONFLICT (key) DO UPDATE SET
				tokens = %[2]s - CASE WHEN %[2]s >= ? THEN ? ELSE 0 END,
				at = %[3]s(b.at, %[1]s),
				took = %[2]s >= ?
			RETURNING took, tokens`, now, refill, tx.greatest())
		b, k := float64(burst), float64(n)
		return tx.queryRow(ctx, q, key, b, k, b, rate, b, rate, k, k, b, rate, k).Scan(&ok, &tokens)
	})
	if err != nil {
		return false, 0, wrap("take rate tokens", err)
	}
	if ok {
		return true, 0, nil
	}
	wait := time.Duration(math.Ceil((1 - tokens) / rate * float64(time.Second)))
	return false, max(wait, time.Microsecond), nil
}

// RatePrune deletes the buckets untouched for idle: long enough to have refilled (the caller
// knows its rate and burst), so forgetting them changes nothing, since a new bucket starts
// full. It returns how many it deleted.
func (s *Store) RatePrune(ctx context.Context, idle time.Duration) (int64, error) {
	var n int64
	err := s.writeOne(ctx, func(tx db) error {
		var err error
		n, err = tx.execN(ctx, "DELETE FROM rate_buckets WHERE at <= "+tx.nowNanos()+" - ?", idle.Nanoseconds())
		return err
	})
	return n, wrap("prune rate buckets", err)
}

// SignInReserve counts a sign-in attempt for key unless key has max attempts in its window
// already; then it returns false and how long until the window ends. A window begins at a
// key's first attempt after the previous one ended, and lasts window.
func (s *Store) SignInReserve(ctx context.Context, key string, maxAttempts int, window time.Duration) (ok bool, wait time.Duration, err error) {
	if maxAttempts < 1 {
		return false, window, nil
	}
	var left int64
	err = s.writeOne(ctx, func(tx db) error {
		now := tx.nowNanos()
		// expired: the key's window has ended. Argument: window.
		expired := "a.since <= " + now + " - ?"
		q := fmt.Sprintf(`INSERT INTO sign_in_attempts AS a (key, count, since, counted)
			VALUES (?, 1, %[1]s, TRUE)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN %[2]s THEN 1 WHEN a.count >= ? THEN a.count ELSE a.count + 1 END,
				since = CASE WHEN %[2]s THEN %[1]s ELSE a.since END,
				counted = (%[2]s OR a.count < ?)
			RETURNING counted, since + ? - %[1]s`, now, expired)
		w := window.Nanoseconds()
		return tx.queryRow(ctx, q, key, w, maxAttempts, w, w, maxAttempts, w).Scan(&ok, &left)
	})
	if err != nil {
		return false, 0, wrap("count a sign-in attempt", err)
	}
	if ok {
		return true, 0, nil
	}
	return false, max(time.Duration(left), time.Microsecond), nil
}

// SignInRelease gives back an attempt of key that was counted but not checked.
func (s *Store) SignInRelease(ctx context.Context, key string) error {
	err := s.writeOne(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "UPDATE sign_in_attempts SET count = count - 1 WHERE key = ? AND count > 0", key)
		return err
	})
	return wrap("give back a sign-in attempt", err)
}

// SignInClear forgets key's attempts (after a right password).
func (s *Store) SignInClear(ctx context.Context, key string) error {
	err := s.writeOne(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "DELETE FROM sign_in_attempts WHERE key = ?", key)
		return err
	})
	return wrap("clear sign-in attempts", err)
}

// SignInPrune deletes the keys whose window of length window has ended, and returns how many.
func (s *Store) SignInPrune(ctx context.Context, window time.Duration) (int64, error) {
	var n int64
	err := s.writeOne(ctx, func(tx db) error {
		var err error
		n, err = tx.execN(ctx, "DELETE FROM sign_in_attempts WHERE since <= "+tx.nowNanos()+" - ?", window.Nanoseconds())
		return err
	})
	return n, wrap("prune sign-in attempts", err)
}
