package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestNotifyOutbox: a run's end writes its pending row with the status change, whichever path
// ends it (a job's end, the cancel of a queued run); a queued or running run has none; planning
// is once; two claimers at once never take the same notification; a recorded attempt is fenced
// by its number and read back with the run's notifications.
func TestNotifyOutbox(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		done := mustRun(t, s, p.ID, []run.Job{job(0, "build", 0, "j", "a")})
		canceled := mustRun(t, s, p.ID, []run.Job{job(0, "build", 0, "j", "a")})
		queued := mustRun(t, s, p.ID, []run.Job{job(0, "build", 0, "j", "a")})
		c := mustClaim(t, s)
		if c.Job.RunID != done.ID {
			t.Fatalf("claimed run %d, want %d", c.Job.RunID, done.ID)
		}
		if ended, err := s.NotifyEndedRuns(ctx, 10); err != nil || len(ended) != 0 {
			t.Fatalf("ended runs before any end = %+v, %v", ended, err)
		}
		jobless := mustRun(t, s, p.ID, nil) // stored already ended (success at once): an INSERT
		mustFinish(t, s, c.Job.ID, run.Failed, "boom")
		if _, err := s.RunCancel(ctx, canceled.ID, "no"); err != nil {
			t.Fatal(err)
		}
		ended, err := s.NotifyEndedRuns(ctx, 10)
		if err != nil || len(ended) != 3 || ended[0].RunID != jobless.ID || ended[1].RunID != done.ID || ended[2].RunID != canceled.ID {
			t.Fatalf("ended runs = %+v, %v; want runs %d, %d and %d", ended, err, jobless.ID, done.ID, canceled.ID)
		}
		if r := mustGet(t, s, done.ID); !ended[1].EndedAt.Equal(*r.FinishedAt) {
			t.Errorf("ended at %v, run finished at %v", ended[1].EndedAt, r.FinishedAt)
		}
		now := time.Now().UTC().Truncate(time.Second)
		targets := []store.NotifyTarget{{Index: 0, URL: "https://a.example/x", Secret: "K"}, {Index: 1, URL: "http://b.example/y"}}
		for i := range 2 {
			ok, err := s.NotifyPlan(ctx, done.ID, targets, now, now.Add(24*time.Hour))
			if err != nil || ok != (i == 0) {
				t.Fatalf("NotifyPlan #%d = %v, %v", i+1, ok, err)
			}
		}
		for _, id := range []int64{canceled.ID, jobless.ID} {
			if ok, err := s.NotifyPlan(ctx, id, nil, now, now.Add(24*time.Hour)); err != nil || !ok {
				t.Fatalf("NotifyPlan without targets = %v, %v", ok, err)
			}
		}
		if ended, err := s.NotifyEndedRuns(ctx, 10); err != nil || len(ended) != 0 {
			t.Fatalf("ended runs after planning = %+v, %v", ended, err)
		}
		_ = queued // queued: no pending row

		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			claims = map[int64]int{}
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.NotificationsClaim(ctx, now, time.Minute, 10)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, n := range got {
					claims[n.ID]++
					if n.Attempts != 1 || n.RunID != done.ID {
						t.Errorf("claimed %+v", n)
					}
				}
			}()
		}
		wg.Wait()
		if len(claims) != 2 {
			t.Fatalf("claims = %v, want 2 notifications", claims)
		}
		for id, n := range claims {
			if n != 1 {
				t.Errorf("notification %d claimed %d times at once", id, n)
			}
		}
		if got, err := s.NotificationsClaim(ctx, now.Add(30*time.Second), time.Minute, 10); err != nil || len(got) != 0 {
			t.Fatalf("claim under lease = %+v, %v", got, err)
		}
		list, err := s.RunNotifications(ctx, done.ID)
		if err != nil || len(list) != 2 || list[0].NotifyTarget != targets[0] || list[1].NotifyTarget != targets[1] || list[0].Delivery == list[1].Delivery {
			t.Fatalf("RunNotifications = %+v, %v", list, err)
		}
		first, second := list[0], list[1]
		// The first answers 500 and is tried again; a stale record of attempt 2 changes nothing.
		res := store.NotifyResult{Status: store.NotifyPending, Next: now.Add(10 * time.Second),
			Attempt: store.NotifyAttempt{Number: 1, StartedAt: now, Duration: 30 * time.Millisecond, StatusCode: 500, Error: "HTTP 500"}}
		if ok, err := s.NotificationRecord(ctx, first.ID, res); err != nil || !ok {
			t.Fatalf("record attempt 1 = %v, %v", ok, err)
		}
		stale := res
		stale.Attempt.Number = 2
		if ok, err := s.NotificationRecord(ctx, second.ID, stale); err != nil || ok {
			t.Fatalf("record of an attempt not claimed = %v, %v; want false", ok, err)
		}
		if ok, err := s.NotificationRecord(ctx, second.ID, store.NotifyResult{Status: store.NotifyDelivered,
			Attempt: store.NotifyAttempt{Number: 1, StartedAt: now, StatusCode: 204}}); err != nil || !ok {
			t.Fatalf("record delivered = %v, %v", ok, err)
		}
		if got, err := s.NotificationsClaim(ctx, now.Add(5*time.Second), time.Minute, 10); err != nil || len(got) != 0 {
			t.Fatalf("claim before the retry is due = %+v, %v", got, err)
		}
		got, err := s.NotificationsClaim(ctx, now.Add(10*time.Second), time.Minute, 10)
		if err != nil || len(got) != 1 || got[0].ID != first.ID || got[0].Attempts != 2 {
			t.Fatalf("claim of the retry = %+v, %v", got, err)
		}
		list, err = s.RunNotifications(ctx, done.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, b := list[0], list[1]
		if a.Status != store.NotifyPending || a.LastStatusCode != 500 || a.LastError != "HTTP 500" || len(a.History) != 1 ||
			a.History[0].StatusCode != 500 || a.History[0].Duration != 30*time.Millisecond || !a.History[0].StartedAt.Equal(now) {
			t.Errorf("retried notification = %+v", a)
		}
		if b.Status != store.NotifyDelivered || b.FinishedAt == nil || len(b.History) != 1 || b.History[0].StatusCode != 204 {
			t.Errorf("delivered notification = %+v", b)
		}
		if err := s.PipelineDelete(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM notification_attempts"); err != nil || n != 0 {
			t.Errorf("attempts left after the pipeline's deletion: %d, %v", n, err)
		}
	})
}
