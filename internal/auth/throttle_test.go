package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	t.Parallel()
	th := NewThrottle(3, time.Minute)
	now := time.Unix(1000, 0)
	key := ThrottleKey("alice", "10.0.0.1")
	for i := range 3 {
		if w := th.Wait(key, now); w != 0 {
			t.Fatalf("attempt %d must wait %v", i+1, w)
		}
		th.Failed(key, now.Add(time.Duration(i)*time.Second))
	}
	if w := th.Wait(key, now.Add(10*time.Second)); w != 50*time.Second {
		t.Fatalf("after 3 failures: wait %v, want 50s (until the window ends)", w)
	}
	if w := th.Wait(ThrottleKey("alice", "10.0.0.2"), now); w != 0 {
		t.Fatal("another address of the same user is blocked")
	}
	if w := th.Wait(key, now.Add(time.Minute)); w != 0 {
		t.Fatalf("after the window: wait %v", w)
	}
	// A right password clears the failures.
	th.Failed(key, now.Add(2*time.Minute))
	th.Failed(key, now.Add(2*time.Minute))
	th.Succeeded(key)
	th.Failed(key, now.Add(2*time.Minute))
	if w := th.Wait(key, now.Add(2*time.Minute)); w != 0 {
		t.Fatal("failures before a success still count")
	}
}

func TestThrottleBoundedKeys(t *testing.T) {
	t.Parallel()
	th := NewThrottle(1, time.Hour)
	th.MaxKeys = 100
	now := time.Unix(0, 0)
	for i := range 1000 {
		th.Failed(fmt.Sprint("user", i), now.Add(time.Duration(i)*time.Second))
	}
	if n := len(th.keys); n > 100 {
		t.Fatalf("%d keys kept, want at most 100", n)
	}
	if w := th.Wait("user999", now.Add(1000*time.Second)); w == 0 {
		t.Fatal("the newest key was evicted")
	}
}

func TestNilThrottleThrottlesNothing(t *testing.T) {
	t.Parallel()
	var th *Throttle
	th.Failed("k", time.Now())
	th.Succeeded("k")
	if w := th.Wait("k", time.Now()); w != 0 {
		t.Fatalf("a nil throttle made a caller wait %v", w)
	}
}
