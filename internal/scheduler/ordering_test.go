package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
)

// A follower that starts before a run ends returns once the run is terminal, and by then it
// has every line of every job: lines committed while the job ran (before the sleep) and the
// last ones, which the job's end writes.
func TestFollowerSeesEveryLineBeforeRunEnds(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		var (
			wg   sync.WaitGroup
			runs []run.Run
		)
		for i := range 6 {
			var jobs []run.Job
			for k := range 2 {
				var scripts []string
				for n := range 5 {
					scripts = append(scripts, fmt.Sprintf("echo r%d-j%d-early%d", i, k, n))
				}
				if i%2 == 0 {
					scripts = append(scripts, "sleep 150ms") // the early lines are committed on their own
				}
				for n := range 5 {
					scripts = append(scripts, fmt.Sprintf("echo r%d-j%d-late%d", i, k, n))
				}
				jobs = append(jobs, job(0, fmt.Sprintf("j%d", k), scripts...))
			}
			r := f.create(t, nil, jobs...)
			runs = append(runs, r)
			for range 3 {
				wg.Go(func() {
					var b strings.Builder
					if err := logs.Stream(context.Background(), f.st, f.logs.Changed, r.ID, true, &b, nil); err != nil {
						t.Errorf("follow run %d: %v", r.ID, err)
						return
					}
					got := b.String()
					for k := range 2 {
						for n := range 5 {
							for _, w := range []string{"early", "late"} {
								line := fmt.Sprintf("echo r%d-j%d-%s%d\n", i, k, w, n)
								if !strings.Contains(got, line) {
									t.Errorf("follower of run %d ended without %q:\n%s", r.ID, line, got)
								}
							}
						}
					}
				})
			}
		}
		wg.Wait()
		for _, r := range runs {
			if got := f.wait(t, r.ID, terminal); got.Status != run.Success {
				t.Fatalf("run %d %s", r.ID, got.Status)
			}
		}
	})
}

// Step statuses show while the job runs: the second step is running and the first recorded
// as succeeded although the job has not ended.
func TestStepStatusesVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 1)
		r := f.create(t, nil, job(0, "j", "echo one", "sleep 10m", "echo three"))
		f.wait(t, r.ID, func(r run.Run) bool {
			st := r.Jobs[0].Steps
			return st[0].Status == run.Success && st[1].Status == run.Running && st[2].Status == run.Queued
		})
		f.sched.Cancel(r.ID)
		got := f.wait(t, r.ID, terminal)
		st := got.Jobs[0].Steps
		if got.Status != run.Canceled || st[0].Status != run.Success || st[1].Status != run.Canceled || st[2].Status != run.Skipped {
			t.Fatalf("after cancel: run %s, steps %s %s %s", got.Status, st[0].Status, st[1].Status, st[2].Status)
		}
	})
}
