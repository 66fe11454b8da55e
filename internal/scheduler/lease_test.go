package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestCancelFromAnotherServerReachesJob cancels a run through the store alone, as the API of
// another server does: nothing calls this scheduler's Cancel, yet the job stops (its attempt
// reads canceling at the next look) and the run ends canceled.
func TestCancelFromAnotherServerReachesJob(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixtureConfig(t, dialect, 2, t.TempDir(), nil, func(c *Config) { c.CancelPoll = 50 * time.Millisecond })
		r := f.create(t, nil, job(0, "wait", "sleep 10m"))
		f.wait(t, r.ID, func(r run.Run) bool { return r.Jobs[0].Steps[0].Status == run.Running })
		if _, err := f.st.RunCancel(context.Background(), r.ID, "canceled by bob on another server"); err != nil {
			t.Fatal(err)
		}
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Canceled || r.Message != "canceled by bob on another server" {
			t.Fatalf("run %s %q; want canceled by bob", r.Status, r.Message)
		}
		if a := r.Jobs[0].Attempts; len(a) != 1 || a[0].State != run.AttemptFinished {
			t.Fatalf("attempts = %+v; want one, finished", a)
		}
	})
}

// TestLostAttemptIsStoppedAndFenced: the rescuer takes the attempt of a running job (as the
// leader on another server does once the lease ran out, here forced); the scheduler's next
// renewal finds it lost and stops the job, and nothing it writes afterwards reaches the run.
func TestLostAttemptIsStoppedAndFenced(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixtureConfig(t, dialect, 2, t.TempDir(), nil, func(c *Config) { c.TTL = 600 * time.Millisecond })
		r := f.create(t, nil, job(0, "wait", "echo before", "sleep 10m", "echo after"))
		f.wait(t, r.ID, func(r run.Run) bool { return r.Jobs[0].Steps[1].Status == run.Running })
		ctx := context.Background()
		// Shorten the lease to a microsecond, then sweep (the scheduler may renew in between:
		// then try again).
		var got []store.Rescued
		for try := 0; len(got) == 0; try++ {
			if try == 50 {
				t.Fatal("the attempt was never rescued")
			}
			if _, err := f.st.AttemptsRenew(ctx, f.sched.held(), time.Microsecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			var err error
			if got, err = f.st.AttemptsRescue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != 1 || got[0].Outcome != run.Failed {
			t.Fatalf("AttemptsRescue = %+v", got)
		}
		// The job's processes are stopped: the executor returns, the slot is free again.
		deadline := time.Now().Add(20 * time.Second)
		for len(f.sched.held()) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the lost job still runs")
			}
			time.Sleep(20 * time.Millisecond)
		}
		r = f.wait(t, r.ID, terminal)
		j := r.Jobs[0]
		if r.Status != run.Failed || !strings.HasPrefix(j.Message, "runner_lost:") || j.Steps[2].Status == run.Success {
			t.Fatalf("run %s, job %q, steps %+v; want failed by the rescue, untouched after", r.Status, j.Message, j.Steps)
		}
		log := f.log(t, r.ID)
		if strings.Contains(log, "after") || strings.Contains(log, errLost.Error()) {
			t.Fatalf("the lost attempt wrote after its rescue:\n%s", log)
		}
		if a := j.Attempts; len(a) != 1 || a[0].State != run.AttemptLost {
			t.Fatalf("attempts = %+v; want one, lost", a)
		}
	})
}
