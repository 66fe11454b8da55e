package trigger

import (
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
)

// TestQueueOver: when a queue is over its bounds, and the Retry-After it gives: the time the
// recent rate takes to get back under the bound, from 1 s to 60 s (60 s when nothing ended).
func TestQueueOver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		q    Queue
		over bool
		wait time.Duration
	}{
		{"no bounds", Queue{Queued: 1e6, Rate: 1}, false, 0},
		{"under the runs bound", Queue{Queued: 9, MaxRuns: 10}, false, 0},
		{"at the runs bound, nothing ended", Queue{Queued: 10, MaxRuns: 10}, true, 60 * time.Second},
		{"at the runs bound, 2 runs/s", Queue{Queued: 10, MaxRuns: 10, Rate: 2}, true, time.Second},
		{"30 runs over at 2 runs/s", Queue{Queued: 39, MaxRuns: 10, Rate: 2}, true, 15 * time.Second},
		{"far over: capped", Queue{Queued: 100000, MaxRuns: 10, Rate: 2}, true, 60 * time.Second},
		{"seconds bound, nothing ended: unknown, not over", Queue{Queued: 1e6, MaxSeconds: 1}, false, 0},
		{"under the seconds bound", Queue{Queued: 19, Rate: 2, MaxSeconds: 10}, false, 0},
		{"at the seconds bound", Queue{Queued: 20, Rate: 2, MaxSeconds: 10}, true, time.Second},
		{"12.5 s over the seconds bound", Queue{Queued: 45, Rate: 2, MaxSeconds: 10}, true, 13 * time.Second},
		{"both: the longer wait", Queue{Queued: 45, Rate: 2, MaxSeconds: 10, MaxRuns: 40}, true, 13 * time.Second},
	}
	for _, tt := range tests {
		over, wait := tt.q.Over()
		if over != tt.over || wait != tt.wait {
			t.Errorf("%s: Over() = %v, %v; want %v, %v", tt.name, over, wait, tt.over, tt.wait)
		}
	}
}

// TestRate: runs ended per second over the span since the first of them, at least a second and
// at most the window.
func TestRate(t *testing.T) {
	t.Parallel()
	at := time.Now()
	for _, tt := range []struct {
		e    store.Ended
		want float64
	}{
		{store.Ended{}, 0},
		{store.Ended{N: 1, First: at}, 1},                                 // one just now: a second's span
		{store.Ended{N: 30, First: at.Add(-10 * time.Second)}, 3},         // 30 over 10 s
		{store.Ended{N: 120, First: at.Add(-5 * time.Minute)}, 2},         // capped at the window
		{store.Ended{N: 1, First: at.Add(-50 * time.Second)}, 1.0 / 50.0}, // one run in 50 s
	} {
		if got := rate(tt.e, at); got != tt.want {
			t.Errorf("rate(%d since %v) = %v, want %v", tt.e.N, at.Sub(tt.e.First), got, tt.want)
		}
	}
}

// TestCount: counts in messages have thousands separated.
func TestCount(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 4213: "4,213", 1234567: "1,234,567", -4213: "-4,213"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
