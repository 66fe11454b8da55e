package store_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// twoStores opens two stores separately on one fresh database of dialect: two servers.
func twoStores(t *testing.T, dialect string) (a, b *store.Store) {
	t.Helper()
	dsn := storetest.DSN(t, dialect)
	return openAt(t, dsn), openAt(t, dsn)
}

// forEachDialect runs fn as parallel subtests "sqlite" and "postgres".
func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			fn(t, dialect)
		})
	}
}

// TestRateTake: a bucket starts full, gives burst tokens, then refuses with the wait until the
// next token; time passing on the database's clock refills it at the rate, never above burst;
// keys are separate.
func TestRateTake(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		const rate = 0.5 // a token every 2 s
		for i := range 3 {
			if ok, wait, err := s.RateTake(ctx, "webhook:1", rate, 3, 1); err != nil || !ok {
				t.Fatalf("take %d of a full bucket of 3: %v %v %v", i+1, ok, wait, err)
			}
		}
		ok, wait, err := s.RateTake(ctx, "webhook:1", rate, 3, 1)
		if err != nil || ok || wait <= time.Second || wait > 2*time.Second {
			t.Fatalf("take from an empty bucket: ok %v, wait %v, err %v; want refused, about 2 s", ok, wait, err)
		}
		if ok, _, err := s.RateTake(ctx, "webhook:2", rate, 3, 1); err != nil || !ok {
			t.Fatalf("another key: %v %v", ok, err)
		}
		// 5 s pass: 2.5 tokens come back.
		if _, err := s.ExecForTest(ctx, "UPDATE rate_buckets SET at = at - ? WHERE key = ?", (5 * time.Second).Nanoseconds(), "webhook:1"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if ok, wait, err := s.RateTake(ctx, "webhook:1", rate, 3, 1); err != nil || !ok {
				t.Fatalf("take %d after 5 s: %v %v %v", i+1, ok, wait, err)
			}
		}
		if ok, _, _ := s.RateTake(ctx, "webhook:1", rate, 3, 1); ok {
			t.Fatal("a third token after 5 s at 0.5/s")
		}
		// An hour idle refills to burst, not beyond.
		if _, err := s.ExecForTest(ctx, "UPDATE rate_buckets SET at = at - ? WHERE key = ?", time.Hour.Nanoseconds(), "webhook:1"); err != nil {
			t.Fatal(err)
		}
		took := 0
		for range 5 {
			if ok, _, _ := s.RateTake(ctx, "webhook:1", rate, 3, 1); ok {
				took++
			}
		}
		if took != 3 {
			t.Errorf("after an hour idle %d tokens were taken, want the burst of 3", took)
		}
		// Pruning the buckets idle past a refill forgets those only.
		if _, err := s.ExecForTest(ctx, "UPDATE rate_buckets SET at = at - ? WHERE key = ?", time.Hour.Nanoseconds(), "webhook:2"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.RatePrune(ctx, time.Minute); err != nil || n != 1 {
			t.Errorf("RatePrune = %d, %v; want the idle bucket only", n, err)
		}
		if _, _, err := s.RateTake(ctx, "x", 0, 1, 1); err == nil {
			t.Error("RateTake with rate 0 did not fail")
		}
		if _, _, err := s.RateTake(ctx, "x", 1, 3, 4); err == nil {
			t.Error("RateTake of more than the burst did not fail")
		}
		// n at once: all or none.
		if ok, _, err := s.RateTake(ctx, "webhook:3", 0.001, 10, 4); err != nil || !ok {
			t.Fatalf("take 4 of a new bucket of 10: %v %v", ok, err)
		}
		if ok, _, err := s.RateTake(ctx, "webhook:3", 0.001, 10, 4); err != nil || !ok {
			t.Fatalf("take 4 of the 6 left: %v %v", ok, err)
		}
		if ok, _, err := s.RateTake(ctx, "webhook:3", 0.001, 10, 4); err != nil || ok {
			t.Fatalf("take 4 of the 2 left: ok %v %v; want refused", ok, err)
		}
		for i := range 2 {
			if ok, _, err := s.RateTake(ctx, "webhook:3", 0.001, 10, 1); err != nil || !ok {
				t.Fatalf("take %d of the 2 left one at a time (a refused take of 4 took none): %v %v", i+1, ok, err)
			}
		}
	})
}

// TestRateTakeTwoServers: two stores (two servers) taking from one bucket at once get exactly
// the burst between them.
func TestRateTakeTwoServers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		n := grantedAcross(t, dialect, 60, func(s *store.Store) (bool, error) {
			ok, _, err := s.RateTake(t.Context(), "webhook:7", 0.001, 25, 1)
			return ok, err
		})
		if n != 25 {
			t.Errorf("60 requests through two servers took %d tokens; want the burst, 25", n)
		}
	})
}

// grantedAcross makes n calls of take at once, alternately through two stores (two servers) on
// one fresh database of dialect, and returns how many were granted.
func grantedAcross(t *testing.T, dialect string, n int, take func(s *store.Store) (bool, error)) int64 {
	t.Helper()
	a, b := twoStores(t, dialect)
	var granted atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			ok, err := take(s)
			if err != nil {
				t.Error(err)
			}
			if ok {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	return granted.Load()
}

// TestSignInReserve: a key gets max attempts per window and is then refused until the window
// ends (the wait says when); an attempt given back does not count; a cleared key starts over;
// an ended window starts a new one; pruning forgets ended windows.
func TestSignInReserve(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		reserve := func(key string) (bool, time.Duration) {
			t.Helper()
			ok, wait, err := s.SignInReserve(ctx, key, 3, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok, wait
		}
		for i := range 3 {
			if ok, _ := reserve("k1"); !ok {
				t.Fatalf("attempt %d of 3 refused", i+1)
			}
		}
		if ok, wait := reserve("k1"); ok || wait <= 50*time.Second || wait > time.Minute {
			t.Fatalf("attempt 4: ok %v, wait %v; want refused until the window ends (about 60 s)", ok, wait)
		}
		if ok, _ := reserve("k2"); !ok {
			t.Fatal("another key is refused")
		}
		if err := s.SignInRelease(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := reserve("k1"); !ok {
			t.Fatal("an attempt given back still counts")
		}
		if ok, _ := reserve("k1"); ok {
			t.Fatal("more than 3 attempts counted after one was given back")
		}
		if err := s.SignInClear(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if ok, _ := reserve("k1"); !ok {
				t.Fatalf("attempt %d after a clear refused", i+1)
			}
		}
		// The window ends: a new one begins with this attempt.
		if _, err := s.ExecForTest(ctx, "UPDATE sign_in_attempts SET since = since - ? WHERE key = ?", time.Minute.Nanoseconds(), "k1"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if ok, _ := reserve("k1"); !ok {
				t.Fatalf("attempt %d of a new window refused", i+1)
			}
		}
		if ok, _ := reserve("k1"); ok {
			t.Fatal("a new window allows more than 3")
		}
		if _, err := s.ExecForTest(ctx, "UPDATE sign_in_attempts SET since = since - ? WHERE key = ?", time.Minute.Nanoseconds(), "k2"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.SignInPrune(ctx, time.Minute); err != nil || n != 1 {
			t.Errorf("SignInPrune = %d, %v; want the ended window only", n, err)
		}
	})
}

// TestSignInReserveTwoServers: parallel attempts for one key through two stores (two servers)
// count exactly max between them.
func TestSignInReserveTwoServers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		n := grantedAcross(t, dialect, 60, func(s *store.Store) (bool, error) {
			ok, _, err := s.SignInReserve(t.Context(), "admin", 10, 10*time.Minute)
			return ok, err
		})
		if n != 10 {
			t.Errorf("60 attempts through two servers: %d counted; want 10", n)
		}
	})
}
