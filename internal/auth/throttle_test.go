package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// lookupHash is a Verify look-up of a fixed stored hash ("" = no such user).
func lookupHash(hash string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return hash, nil }
}

// testThrottle is NewThrottle with an unknown user's check as cheap as the test's hashes.
func testThrottle(t *testing.T, maxAttempts int) *Throttle {
	th := NewThrottle(maxAttempts, time.Minute)
	th.dummy = mustHash(t, "dummy-password")
	return th
}

func mustHash(t *testing.T, password string) string {
	t.Helper()
	h, err := HashPasswordCost(password, 4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestThrottleWindow(t *testing.T) {
	t.Parallel()
	th := NewThrottle(3, time.Minute)
	now := time.Unix(1000, 0)
	key := ThrottleKey("alice", "10.0.0.1:4321")
	for i := range 3 {
		if w, ok := th.reserve(key, now.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("attempt %d must wait %v", i+1, w)
		}
	}
	if w, ok := th.reserve(key, now.Add(10*time.Second)); ok || w != 50*time.Second {
		t.Fatalf("after 3 attempts: ok %v, wait %v; want refused for 50s (until the window ends)", ok, w)
	}
	if _, ok := th.reserve(ThrottleKey("alice", "10.0.0.2:1"), now); !ok {
		t.Fatal("another address of the same user is blocked")
	}
	if w, ok := th.reserve(key, now.Add(time.Minute)); !ok {
		t.Fatalf("after the window: wait %v", w)
	}
	// An attempt given back (not checked) does not count.
	th.release(key)
	for i := range 3 {
		if _, ok := th.reserve(key, now.Add(time.Minute)); !ok {
			t.Fatalf("attempt %d of the new window refused after one was given back", i+1)
		}
	}
}

// TestThrottleVerify: wrong passwords and unknown users are rejected and counted; a right
// password is accepted and clears the count; the attempts beyond the limit are not checked.
func TestThrottleVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	th := testThrottle(t, 3)
	hash := mustHash(t, "right-password")
	key := ThrottleKey("alice", "10.0.0.1")
	for range 2 {
		if v, _, err := th.Verify(ctx, key, "wrong", lookupHash(hash)); v != Rejected || err != nil {
			t.Fatalf("wrong password → %v %v, want Rejected", v, err)
		}
	}
	if v, _, _ := th.Verify(ctx, key, "right-password", lookupHash(hash)); v != Accepted {
		t.Fatalf("right password after 2 failures → %v, want Accepted", v)
	}
	for i := range 3 { // the count started again
		if v, _, _ := th.Verify(ctx, key, "wrong", lookupHash(hash)); v != Rejected {
			t.Fatalf("wrong password %d after a success → %v, want Rejected", i+1, v)
		}
	}
	looked := false
	v, wait, _ := th.Verify(ctx, key, "right-password", func(context.Context) (string, error) {
		looked = true
		return hash, nil
	})
	if v != Throttled || wait <= 0 || wait > time.Minute || looked {
		t.Fatalf("4th attempt → %v wait %v (looked up: %v); want Throttled within the window, before the look-up", v, wait, looked)
	}
	// Unknown users are rejected and count the same.
	nobody := ThrottleKey("nobody", "10.0.0.1")
	for range 3 {
		if v, _, _ := th.Verify(ctx, nobody, "x", lookupHash("")); v != Rejected {
			t.Fatalf("unknown user → %v, want Rejected", v)
		}
	}
	if v, _, _ := th.Verify(ctx, nobody, "x", lookupHash("")); v != Throttled {
		t.Fatalf("unknown user after 3 attempts → %v, want Throttled", v)
	}
	// A failed look-up is returned and gives the attempt back.
	bob := ThrottleKey("bob", "10.0.0.1")
	boom := errors.New("database down")
	for range 5 {
		if _, _, err := th.Verify(ctx, bob, "x", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
			t.Fatalf("look-up error → %v, want it returned", err)
		}
	}
	if v, _, _ := th.Verify(ctx, bob, "x", lookupHash("")); v != Rejected {
		t.Fatalf("after 5 failed look-ups → %v, want the attempt checked (Rejected)", v)
	}
}

// TestThrottleParallelGuesses: 200 wrong passwords at once for one key: exactly the limit of
// them is checked, the rest are refused without a check.
func TestThrottleParallelGuesses(t *testing.T) {
	t.Parallel()
	th := NewThrottle(10, time.Minute)
	th.CheckWait = time.Minute // no attempt is refused as busy here
	got := guessAtOnce(t, 200, "k", mustHash(t, "right-password"), th)
	if got[Rejected] != 10 || got[Throttled] != 190 {
		t.Fatalf("verdicts %v; want 10 Rejected (checked) and 190 Throttled", got)
	}
}

// guessAtOnce sends n wrong passwords for key at once, spread over throttles (servers), and
// counts the verdicts.
func guessAtOnce(t *testing.T, n int, key, hash string, throttles ...*Throttle) map[Verdict]int {
	t.Helper()
	var mu sync.Mutex
	got := map[Verdict]int{}
	var wg sync.WaitGroup
	for i := range n {
		th := throttles[i%len(throttles)]
		wg.Go(func() {
			v, _, err := th.Verify(context.Background(), key, "wrong", lookupHash(hash))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got[v]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// TestThrottleBusy: with every password check slot taken, an attempt waits CheckWait, is
// refused Busy without being counted, and goes through once a slot is free.
func TestThrottleBusy(t *testing.T) {
	t.Parallel()
	th := testThrottle(t, 1)
	th.CheckWait = 10 * time.Millisecond
	for range cap(th.checks) {
		th.checks <- struct{}{}
	}
	v, wait, err := th.Verify(context.Background(), "k", "x", lookupHash(""))
	if v != Busy || wait != time.Second || err != nil {
		t.Fatalf("every slot taken → %v wait %v %v; want Busy, retry after 1s", v, wait, err)
	}
	<-th.checks
	if v, _, _ := th.Verify(context.Background(), "k", "x", lookupHash("")); v != Rejected {
		t.Fatalf("with a free slot → %v, want Rejected (the busy attempt was not counted)", v)
	}
}

func TestThrottleBoundedKeys(t *testing.T) {
	t.Parallel()
	th := NewThrottle(1, time.Hour)
	th.MaxKeys = 100
	now := time.Unix(0, 0)
	for i := range 1000 {
		th.reserve(fmt.Sprint("user", i), now.Add(time.Duration(i)*time.Second))
	}
	if n := len(th.keys); n > 100 {
		t.Fatalf("%d keys kept, want at most 100", n)
	}
	if _, ok := th.reserve("user999", now.Add(1000*time.Second)); ok {
		t.Fatal("the newest key was evicted")
	}
}

func TestNilThrottleThrottlesNothing(t *testing.T) {
	t.Parallel()
	var th *Throttle
	hash := mustHash(t, "right-password")
	for range 20 {
		if v, _, _ := th.Verify(context.Background(), "k", "wrong", lookupHash(hash)); v != Rejected {
			t.Fatalf("a nil throttle → %v, want Rejected", v)
		}
	}
	if v, _, _ := th.Verify(context.Background(), "k", "right-password", lookupHash(hash)); v != Accepted {
		t.Fatalf("a nil throttle refused a right password: %v", v)
	}
}
