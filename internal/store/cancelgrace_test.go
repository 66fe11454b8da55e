package store_test

import (
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestJobCancelGrace: a job's cancel_grace is stored with it and read back by RunGet and the
// claim; a job without one reads 0 (the runner's own).
func TestJobCancelGrace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		slow := job(0, "build", 0, "slow", "a")
		slow.CancelGrace = 30 * time.Second
		plain := job(0, "build", 1, "plain", "a")
		r := mustRun(t, s, p.ID, []run.Job{slow, plain})
		if got := mustGet(t, s, r.ID).Jobs; got[0].CancelGrace != 30*time.Second || got[1].CancelGrace != 0 {
			t.Errorf("RunGet: cancel graces %v and %v, want 30s and 0", got[0].CancelGrace, got[1].CancelGrace)
		}
		cs, err := s.JobsClaim(t.Context(), store.JobsClaim{Max: 2, Holder: store.Holder{Node: "n", Instance: "i"}})
		if err != nil || len(cs) != 2 {
			t.Fatalf("JobsClaim: %d claims, %v", len(cs), err)
		}
		for _, c := range cs {
			want := map[string]time.Duration{"slow": 30 * time.Second, "plain": 0}[c.Job.Name]
			if c.Job.CancelGrace != want {
				t.Errorf("claim of %s: cancel grace %v, want %v", c.Job.Name, c.Job.CancelGrace, want)
			}
		}
	})
}
