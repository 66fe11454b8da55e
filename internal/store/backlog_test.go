package store_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// TestRunsQueuedAndEnded: the backlog's counts per pipeline: queued runs, and runs that ended
// within the window with the first end; a run that ended before the window is not counted.
func TestRunsQueuedAndEnded(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		_, q := fixture2(t, s)
		if got, err := s.RunsQueued(ctx); err != nil || len(got) != 0 {
			t.Fatalf("RunsQueued on an empty database = %v, %v", got, err)
		}
		var runs []int64
		for range 4 {
			runs = append(runs, mustRun(t, s, p.ID, twoStages()).ID)
		}
		mustRun(t, s, q.ID, twoStages())
		got, err := s.RunsQueued(ctx)
		if want := map[int64]int64{p.ID: 4, q.ID: 1}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("RunsQueued = %v, %v; want %v", got, err, want)
		}

		before := time.Now().Add(-time.Second)
		for _, id := range runs[:2] {
			if _, err := s.RunCancel(ctx, id, "test"); err != nil {
				t.Fatal(err)
			}
		}
		// One run ended five minutes ago: outside the window.
		if _, err := s.ExecForTest(ctx, "UPDATE runs SET finished_at = ? WHERE id = ?", time.Now().Add(-5*time.Minute), runs[1]); err != nil {
			t.Fatal(err)
		}
		got, err = s.RunsQueued(ctx)
		if want := map[int64]int64{p.ID: 2, q.ID: 1}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("RunsQueued after two cancels = %v, %v; want %v", got, err, want)
		}
		ended, at, err := s.RunsEnded(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := ended[p.ID]
		if len(ended) != 1 || !ok || e.N != 1 || e.First.Before(before) || e.First.After(at) {
			t.Fatalf("RunsEnded = %+v at %v; want 1 run of pipeline %d ended after %v", ended, at, p.ID, before)
		}
	})
}

// TestBacklogPlans: the backlog's counts read an index only (migration 0013), so counting a
// long queue a few times a second costs no table reads.
func TestBacklogPlans(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, "sqlite")
	plans, err := s.BacklogPlansForTest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"COVERING INDEX runs_status", "COVERING INDEX runs_log_kept"} {
		if !strings.Contains(plans[i], want) {
			t.Errorf("plan %d = %q, want it to use %s", i, plans[i], want)
		}
	}
}
