package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store/storetest"
)

// TestThrottleShared: two servers' throttles with their counts in one database (Shared) hold
// one limit between them: attempts through either count for both, a right password through
// one clears the count for both, an attempt whose look-up failed is given back, and parallel
// guesses through both get exactly the limit checked.
func TestThrottleShared(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := storetest.DSN(t, dialect)
			server := func() *Throttle {
				th := testThrottle(t, 3)
				th.Shared = storetest.OpenAt(t, dsn)
				th.SharedSalt = []byte("the same on every server")
				th.CheckWait = time.Minute // no attempt is refused as busy here
				return th
			}
			a, b := server(), server()
			hash := mustHash(t, "right-password")
			key := ThrottleKey("alice", "10.0.0.1:1234")
			verify := func(th *Throttle, password string) Verdict {
				t.Helper()
				v, _, err := th.Verify(ctx, key, password, lookupHash(hash))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			for i, th := range []*Throttle{a, b, a} {
				if v := verify(th, "wrong"); v != Rejected {
					t.Fatalf("wrong password %d → %v, want Rejected", i+1, v)
				}
			}
			if v, wait, _ := b.Verify(ctx, key, "right-password", lookupHash(hash)); v != Throttled || wait <= 50*time.Second || wait > time.Minute {
				t.Fatalf("4th attempt, through the other server → %v, wait %v; want Throttled for the rest of the window", v, wait)
			}
			if err := a.Shared.SignInClear(ctx, a.sharedKey(key)); err != nil {
				t.Fatal(err)
			}
			if v := verify(a, "wrong"); v != Rejected {
				t.Fatalf("after the count was cleared → %v", v)
			}
			if v := verify(b, "right-password"); v != Accepted {
				t.Fatalf("right password → %v, want Accepted", v)
			}
			for i, th := range []*Throttle{b, a, b} {
				if v := verify(th, "wrong"); v != Rejected {
					t.Fatalf("wrong password %d after a success on the other server → %v, want Rejected (the count started again)", i+1, v)
				}
			}
			boom := errors.New("database down")
			other := ThrottleKey("bob", "10.0.0.1")
			for range 5 {
				if _, _, err := a.Verify(ctx, other, "x", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
					t.Fatalf("look-up error → %v, want it returned", err)
				}
			}
			if v, _, _ := b.Verify(ctx, other, "x", lookupHash("")); v != Rejected {
				t.Fatalf("after 5 failed look-ups → %v, want the attempt checked (Rejected)", v)
			}

			got := guessAtOnce(t, 60, ThrottleKey("carol", "10.0.0.9"), hash, a, b)
			if got[Rejected] != 3 || got[Throttled] != 57 {
				t.Errorf("60 parallel guesses through two servers: %v; want 3 checked (Rejected) and 57 Throttled", got)
			}
		})
	}
}
