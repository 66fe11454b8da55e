package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowd/flowd/internal/scheduler"
	"github.com/flowd/flowd/internal/store"
)

// expireEvery is how often the logs of runs past the retention are deleted (and once at start).
const expireEvery = time.Hour

// expireLogs deletes the logs of runs that finished more than retention ago (0: never), at
// start and then every expireEvery until ctx is done; each run keeps its record, marked with
// when its log expired.
func expireLogs(ctx context.Context, st *store.Store, retention time.Duration, logger *slog.Logger) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		total := 0
		for ctx.Err() == nil {
			n, err := st.LogExpire(ctx, time.Now().Add(-retention))
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("expire old logs", "err", err)
				}
				break
			}
			if total += n; n == 0 {
				break
			}
		}
		if total > 0 {
			logger.Info("deleted the logs of old runs", "runs", total, "finished_before", time.Now().Add(-retention).UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepWorkspaces removes the job workspaces under root that a crash left behind (see
// scheduler.SweepWorkspaces); a failure is logged, not fatal.
func sweepWorkspaces(ctx context.Context, sched *scheduler.Scheduler, root string, st *store.Store, logger *slog.Logger) {
	n, err := sched.SweepWorkspaces(ctx, root, st)
	if err != nil {
		logger.Warn("remove left-over workspaces", "err", err)
	}
	if n > 0 {
		logger.Info("removed workspaces left by jobs that are no longer running", "count", n, "root", root)
	}
}
