package webhook

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestLimiterBurstThenRefusal(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0.1, 1, 2, 3, 7, 20, 1000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(rate, 5, 10)
			for i := range 5 {
				if ok, retry := l.Allow("a", t0); !ok || retry != 0 {
					t.Fatalf("call %d = %v, %v; want allowed within the burst", i+1, ok, retry)
				}
			}
			ok, retry := l.Allow("a", t0)
			if ok {
				t.Fatal("call 6 allowed past the burst")
			}
			want := time.Duration(float64(time.Second) / rate)
			if retry < want || retry > want+time.Microsecond {
				t.Errorf("retryAfter = %v, want about %v", retry, want)
			}
			if ok, _ := l.Allow("a", t0.Add(retry-time.Millisecond/10)); ok {
				t.Error("allowed before retryAfter")
			}
			if ok, _ := l.Allow("a", t0.Add(retry)); !ok {
				t.Errorf("refused at retryAfter %v", retry)
			}
		})
	}
}

func TestLimiterRefill(t *testing.T) {
	t.Parallel()
	l := NewLimiter(2, 3, 10) // 2 per second, 3 at once
	steps := []struct {
		at    time.Duration
		ok    bool
		retry time.Duration
	}{
		{0, true, 0},
		{0, true, 0},
		{0, true, 0},
		{0, false, 500 * time.Millisecond},
		{250 * time.Millisecond, false, 250 * time.Millisecond}, // half a token back
		{500 * time.Millisecond, true, 0},
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{time.Hour, true, 0}, // refilled to the burst, not beyond
		{time.Hour, true, 0},
		{time.Hour, true, 0},
		{time.Hour, false, 500 * time.Millisecond},
		{time.Hour - time.Minute, false, 500 * time.Millisecond}, // time going back refills nothing
	}
	for i, s := range steps {
		ok, retry := l.Allow("k", t0.Add(s.at))
		if ok != s.ok || retry != s.retry {
			t.Errorf("step %d at %v = %v, %v; want %v, %v", i, s.at, ok, retry, s.ok, s.retry)
		}
	}
}

func TestLimiterKeysIndependent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 1, 10)
	if ok, _ := l.Allow("a", t0); !ok {
		t.Fatal("a refused")
	}
	if ok, _ := l.Allow("a", t0); ok {
		t.Fatal("a allowed twice")
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("b refused because of a")
	}
}

func TestLimiterEviction(t *testing.T) {
	t.Parallel()
	const maxKeys = 100
	l := NewLimiter(1, 2, maxKeys)
	// Many keys, none ever full again within the test's time: the bound must hold anyway.
	for i := range 10 * maxKeys {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if ok, _ := l.Allow(fmt.Sprint("key", i), now); !ok {
			t.Fatalf("new key %d refused", i)
		}
		if n := len(l.buckets); n > maxKeys {
			t.Fatalf("after %d keys the limiter holds %d buckets, want at most %d", i+1, n, maxKeys)
		}
	}

	// Full buckets go first: "busy" is empty, the others refill while "busy" is used again.
	l = NewLimiter(1, 2, 3)
	l.Allow("busy", t0)
	l.Allow("busy", t0)
	l.Allow("idle1", t0)
	l.Allow("idle2", t0)
	later := t0.Add(10 * time.Second) // idle1 and idle2 are full again; busy too
	l.Allow("busy", later)
	l.Allow("busy", later) // busy empty at later
	l.Allow("new", later)
	if _, ok := l.buckets["busy"]; !ok {
		t.Error("the busy bucket was evicted before full ones")
	}
	if ok, _ := l.Allow("busy", later); ok {
		t.Error("eviction gave the busy key a fresh burst")
	}
	if len(l.buckets) > 3 {
		t.Errorf("%d buckets, want at most 3", len(l.buckets))
	}

	// With no full bucket, the one closest to full goes.
	l = NewLimiter(1, 10, 2)
	for range 9 {
		l.Allow("low", t0)
	}
	l.Allow("high", t0)
	l.Allow("new", t0)
	if _, ok := l.buckets["high"]; ok {
		t.Error("the fullest bucket was kept")
	}
	if _, ok := l.buckets["low"]; !ok {
		t.Error("the emptiest bucket was evicted")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 50, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := range 16 {
		wg.Go(func() {
			for range 100 {
				ok, _ := l.Allow(fmt.Sprint(g%4), t0)
				if ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 4*50 {
		t.Errorf("%d allowed, want %d (4 keys × burst 50)", allowed, 4*50)
	}
}

func TestNewLimiterPanics(t *testing.T) {
	t.Parallel()
	for _, args := range []struct {
		rate         float64
		burst, limit int
	}{{0, 1, 1}, {-1, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLimiter(%v, %d, %d) did not panic", args.rate, args.burst, args.limit)
				}
			}()
			NewLimiter(args.rate, args.burst, args.limit)
		}()
	}
}
