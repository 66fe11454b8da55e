package trigger_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// endedCounter is the real store, counting its RunsEnded reads.
type endedCounter struct {
	*store.Store
	reads atomic.Int32
}

func (c *endedCounter) RunsEnded(ctx context.Context, window time.Duration) (map[int64]store.Ended, time.Time, error) {
	c.reads.Add(1)
	return c.Store.RunsEnded(ctx, window)
}

// TestBacklogRateWhileNoneEnded: while no run is known to have ended, the seconds bound cannot
// refuse, so the backlog reads the rate of ended runs with every count of the queue (not only
// every rateEvery counts): a burst at an idle server meets the bound one count after its first
// run ends. Once a rate is known, it is read again only every rateEvery counts.
func TestBacklogRateWhileNoneEnded(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		p := setup(t, st, box)
		svc := &trigger.Service{Store: st, Box: box}
		var runs []run.Run
		for range 3 {
			r, _, err := svc.Start(ctx, p, run.TriggerManual, "alice", nil)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, r)
		}
		c := &endedCounter{Store: st}
		b := &trigger.Backlog{Store: c, MaxSeconds: 1, Every: 50 * time.Millisecond}
		check := func() trigger.Queue {
			time.Sleep(55 * time.Millisecond) // the counts are older than Every
			server, _ := b.Check(ctx, p.ID, nil)
			return server
		}
		for i := range 3 {
			if q := check(); q.Rate != 0 {
				t.Fatalf("count %d: rate %v with no run ended", i, q.Rate)
			}
		}
		if n := c.reads.Load(); n != 3 {
			t.Errorf("%d reads of the ended runs in 3 counts with none ended, want 3", n)
		}
		if _, err := st.RunCancel(ctx, runs[0].ID, "test"); err != nil {
			t.Fatal(err)
		}
		q := check()
		if q.Rate == 0 {
			t.Fatal("the count after a run ended does not know the rate")
		}
		if over, _ := q.Over(); !over {
			t.Errorf("2 queued runs at %v/s are not over a bound of 1 s of work", q.Rate)
		}
		before := c.reads.Load()
		check()
		check()
		if n := c.reads.Load() - before; n != 0 {
			t.Errorf("%d more reads of the ended runs right after the rate was read, want none until rateEvery counts", n)
		}
	})
}
