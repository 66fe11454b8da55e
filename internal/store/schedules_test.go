package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestScheduleFireOnce: a fire time makes one run however many callers try at once (the run
// and its fire are one transaction; the others get ErrFireTaken and create nothing); a refused
// fire is recorded once; the list and the run's fire read them back.
func TestScheduleFireOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
		fire := store.Fire{PipelineID: p.ID, Key: "name:nightly", Title: "nightly", At: at}
		var (
			wg             sync.WaitGroup
			mu             sync.Mutex
			created, taken int
			made           run.Run
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := fire
				r, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Revision: p.Revision, Trigger: run.TriggerCron, TriggeredBy: "alice",
					Jobs: []run.Job{job(0, "build", 0, "j", "a")}, Fire: &f})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
					made = r
				case errors.Is(err, store.ErrFireTaken):
					taken++
				default:
					t.Errorf("RunCreate: %v", err)
				}
			}()
		}
		wg.Wait()
		if created != 1 || taken != 7 {
			t.Fatalf("8 tries of one fire time: %d runs, %d taken; want 1 and 7", created, taken)
		}
		if n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM runs WHERE pipeline_id = ?", p.ID); err != nil || n != 1 {
			t.Errorf("runs stored = %d, %v; want 1", n, err)
		}
		got, err := s.ScheduleFireOfRun(ctx, made.ID)
		if err != nil || got.Key != fire.Key || !got.At.Equal(at) || got.Outcome != store.FireStarted || got.RunNumber != made.Number || got.Title != "nightly" {
			t.Errorf("ScheduleFireOfRun = %+v, %v", got, err)
		}
		if ok, err := s.ScheduleFireExists(ctx, fire); err != nil || !ok {
			t.Errorf("ScheduleFireExists = %v, %v", ok, err)
		}

		// A refused fire: recorded once, no run.
		later := store.Fire{PipelineID: p.ID, Key: "name:nightly", Title: "nightly", At: at.Add(24 * time.Hour)}
		if ok, err := s.ScheduleFireExists(ctx, later); err != nil || ok {
			t.Errorf("ScheduleFireExists(later) = %v, %v; want false", ok, err)
		}
		for i, want := range []bool{true, false} {
			ok, err := s.ScheduleFireRecord(ctx, later, store.FireRefused, "the schedule's owner bob is disabled")
			if err != nil || ok != want {
				t.Errorf("ScheduleFireRecord #%d = %v, %v; want %v", i, ok, err, want)
			}
		}
		list, err := s.ScheduleFireList(ctx, p.ID, 10)
		if err != nil || len(list) != 2 || list[0].Outcome != store.FireRefused || list[0].RunID != 0 || list[0].Message == "" ||
			list[1].RunID != made.ID {
			t.Errorf("ScheduleFireList = %+v, %v", list, err)
		}
		if _, err := s.ScheduleFireOfRun(ctx, made.ID+1000); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ScheduleFireOfRun(unknown) = %v; want ErrNotFound", err)
		}
	})
}
