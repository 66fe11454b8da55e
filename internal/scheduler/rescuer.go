package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowd/flowd/internal/store"
)

// RescueStore is what the Rescuer needs of the store.
type RescueStore interface {
	LeaderElect(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	LeaderResign(ctx context.Context, name, holder string) error
	AttemptsRescue(ctx context.Context) ([]store.Rescued, error)
	AttemptsRescueInstance(ctx context.Context, h store.Holder) ([]store.Rescued, error)
}

// RescueObserver counts rescues (the metrics package implements it).
type RescueObserver interface {
	Rescued(n int)
	AttemptsLost(n int)
}

// leaderDuty is the name of the rescuer's lease in the leaders table.
const leaderDuty = "rescuer"

// Rescuer moves job attempts whose runner is gone to lost and settles their jobs (failed with
// runner_lost, canceled, or queued again as the next attempt; see store.AttemptsRescue). Of all
// the servers on one database only the leader sweeps: each Rescuer tries every Interval to
// take or keep the leader's lease (3 intervals long, database time), and sweeps while it holds
// it. Build it with NewRescuer, call RescuePrevious once at start, then Run.
type Rescuer struct {
	Store   RescueStore
	Holder  store.Holder
	TTL     time.Duration // the attempts' lease; the sweep interval follows from it
	Metrics RescueObserver
	Logger  *slog.Logger
	// Rescued is called with each run a rescue changed (log followers wake; the scheduler
	// wakes for a retried job). It must not block.
	Rescued func(runID int64)
	// AllInstances makes RescuePrevious take every attempt of another instance, whatever its
	// node: for SQLite, which serves one server only.
	AllInstances bool
}

// Interval is how often the rescuer sweeps: a quarter of the lease, between 1 s and 5 s, so an
// expired attempt is rescued within TTL + Interval of its runner's last renewal.
func (r *Rescuer) Interval() time.Duration {
	return min(max(r.TTL/4, time.Second), 5*time.Second)
}

// RescuePrevious rescues at once the attempts this node's previous instance held: a server
// that restarts after a crash takes back its jobs without waiting for their leases to run out.
func (r *Rescuer) RescuePrevious(ctx context.Context) error {
	h := r.Holder
	if r.AllInstances {
		h.Node = ""
	}
	for {
		done, err := r.Store.AttemptsRescueInstance(ctx, h)
		r.report(done)
		if err != nil || len(done) < store.RescueBatch {
			return err
		}
	}
}

// Run sweeps while this node leads, until ctx is done; then it gives up the lease.
func (r *Rescuer) Run(ctx context.Context) {
	iv := r.Interval()
	t := time.NewTicker(iv)
	defer t.Stop()
	leading := false
	for {
		lead, err := r.Store.LeaderElect(ctx, leaderDuty, r.Holder.Instance, 3*iv)
		switch {
		case err != nil && ctx.Err() == nil:
			r.Logger.Warn("rescuer: elect leader", "err", err)
		case lead != leading:
			leading = lead
			r.Logger.Info("rescuer: leadership changed", "leader", lead)
		}
		if lead {
			done, err := r.Store.AttemptsRescue(ctx)
			if err != nil && ctx.Err() == nil {
				r.Logger.Warn("rescuer: sweep", "err", err)
			}
			r.report(done)
		}
		select {
		case <-ctx.Done():
			if leading {
				cctx, cancel := finalCtx()
				if err := r.Store.LeaderResign(cctx, leaderDuty, r.Holder.Instance); err != nil {
					r.Logger.Warn("rescuer: resign", "err", err)
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

func (r *Rescuer) report(done []store.Rescued) {
	if len(done) == 0 {
		return
	}
	for _, d := range done {
		r.Logger.Warn("rescued a job whose runner was lost", "run", d.RunID, "job", d.JobID, "attempt", d.Attempt,
			"runner", d.Runner, "outcome", d.Outcome, "message", d.Message)
		if r.Rescued != nil {
			r.Rescued(d.RunID)
		}
	}
	if r.Metrics != nil {
		r.Metrics.Rescued(len(done))
		r.Metrics.AttemptsLost(len(done))
	}
}
