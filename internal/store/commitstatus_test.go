package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// gitRun creates a queued run at a commit; statusVar is the run's status token variable ("" =
// the run reports no commit status).
func gitRun(t *testing.T, s *store.Store, pipelineID int64, statusVar string) run.Run {
	t.Helper()
	r, err := s.RunCreate(t.Context(), store.RunCreate{
		PipelineID: pipelineID, Trigger: run.TriggerWebhook, TriggeredBy: "alice",
		Git: &run.Git{RepoURL: "https://example.com/acme/app.git", SHA: "0123456789abcdef0123456789abcdef01234567",
			Ref: "refs/heads/main", Branch: "main", Event: "push", StatusTokenVar: statusVar},
		Jobs: []run.Job{job(0, "build", 0, "j", "a")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCommitStatusOutbox: a run at a commit whose git record names a status token gets its
// report row when it is created, and every state change (whatever path makes it) makes the
// newest state pending again with a new version; other runs get none. An attempt's answer is
// fenced by its number; an answer to an older version records what the host accepted but
// leaves the newer state pending; the attempts read back in order.
func TestCommitStatusOutbox(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		reporting := gitRun(t, s, p.ID, "GH_TOKEN")
		silent := gitRun(t, s, p.ID, "")
		plain := mustRun(t, s, p.ID, []run.Job{job(0, "build", 0, "j", "a")})
		for _, id := range []int64{silent.ID, plain.ID} {
			if _, err := s.RunCommitStatus(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("run %d without a status token: report err = %v, want ErrNotFound", id, err)
			}
		}
		c, err := s.RunCommitStatus(ctx, reporting.ID)
		if err != nil || c.State != run.Queued || c.Version != 1 || c.Status != store.ReportPending || c.SentState != "" {
			t.Fatalf("report of a new run = %+v, %v; want queued, version 1, pending", c, err)
		}

		now := time.Now().UTC()
		claimed, err := s.CommitStatusesClaim(ctx, now, time.Minute, time.Hour, 10)
		if err != nil || len(claimed) != 1 || claimed[0].RunID != reporting.ID || claimed[0].Tries != 1 || claimed[0].Attempts != 1 {
			t.Fatalf("claim = %+v, %v; want the reporting run's report, attempt 1", claimed, err)
		}
		if g := claimed[0].GiveUpAt; g == nil || !g.Equal(now.Add(time.Hour).Truncate(time.Microsecond)) && !g.Equal(now.Add(time.Hour)) {
			t.Errorf("give-up time = %v, want %v", g, now.Add(time.Hour))
		}
		if again, err := s.CommitStatusesClaim(ctx, now, time.Minute, time.Hour, 10); err != nil || len(again) != 0 {
			t.Fatalf("a leased report was claimed again: %+v, %v", again, err)
		}

		// The run starts while the queued state is being sent.
		cl := mustClaim(t, s)
		if cl.Job.RunID != reporting.ID {
			t.Fatalf("claimed run %d, want %d", cl.Job.RunID, reporting.ID)
		}
		ok, err := s.CommitStatusRecord(ctx, reporting.ID, store.CommitStatusResult{Version: 1, Status: store.ReportSent,
			Attempt: store.CommitStatusAttempt{Number: 1, State: run.Queued, StartedAt: now, Duration: 30 * time.Millisecond, StatusCode: 201}})
		if err != nil || !ok {
			t.Fatalf("record = %v, %v", ok, err)
		}
		c, _ = s.RunCommitStatus(ctx, reporting.ID)
		if c.State != run.Running || c.Version != 2 || c.Status != store.ReportPending || c.SentState != run.Queued || c.Attempts != 0 {
			t.Fatalf("after the run started during a send: %+v; want running pending (version 2), queued sent", c)
		}

		// Two claimers at once take it once; a stale answer (an older try) changes nothing.
		var wg sync.WaitGroup
		got := make([][]store.CommitStatus, 2)
		for i := range got {
			wg.Go(func() {
				var err error
				got[i], err = s.CommitStatusesClaim(ctx, now, time.Minute, time.Hour, 10)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := len(got[0]) + len(got[1]); n != 1 {
			t.Fatalf("two claimers took the report %d times", n)
		}
		if ok, err := s.CommitStatusRecord(ctx, reporting.ID, store.CommitStatusResult{Version: 2, Status: store.ReportSent,
			Attempt: store.CommitStatusAttempt{Number: 1, State: run.Running, StartedAt: now}}); err != nil || ok {
			t.Fatalf("an answer to try 1 after try 2 was claimed: recorded = %v, %v", ok, err)
		}
		next := now.Add(10 * time.Second)
		if ok, err := s.CommitStatusRecord(ctx, reporting.ID, store.CommitStatusResult{Version: 2, Status: store.ReportPending, Next: next,
			Attempt: store.CommitStatusAttempt{Number: 2, State: run.Running, StartedAt: now, StatusCode: 503, Error: "github answered 503: unavailable"}}); err != nil || !ok {
			t.Fatalf("record a failed try = %v, %v", ok, err)
		}
		if due, _ := s.CommitStatusesClaim(ctx, now, time.Minute, time.Hour, 10); len(due) != 0 {
			t.Fatalf("a report waiting for its retry was claimed early: %+v", due)
		}

		// The run ends: the final state is due at once, whatever the retry time was.
		mustFinish(t, s, cl.Job.ID, run.Success, "")
		due, err := s.CommitStatusesClaim(ctx, now, time.Minute, time.Hour, 10)
		if err != nil || len(due) != 1 || due[0].State != run.Success || due[0].Version != 3 || due[0].Attempts != 1 || due[0].Tries != 3 {
			t.Fatalf("claim after the run ended = %+v, %v; want success, version 3, attempt 1, try 3", due, err)
		}
		if ok, err := s.CommitStatusRecord(ctx, reporting.ID, store.CommitStatusResult{Version: 3, Status: store.ReportSent,
			Attempt: store.CommitStatusAttempt{Number: 3, State: run.Success, StartedAt: now, StatusCode: 201}}); err != nil || !ok {
			t.Fatalf("record = %v, %v", ok, err)
		}
		c, err = s.RunCommitStatus(ctx, reporting.ID)
		if err != nil || c.Status != store.ReportSent || c.SentState != run.Success || c.LastStatusCode != 201 || c.LastError != "" {
			t.Fatalf("final report = %+v, %v", c, err)
		}
		if len(c.History) != 3 || c.History[0].State != run.Queued || c.History[1].StatusCode != 503 ||
			c.History[1].Error == "" || c.History[2].State != run.Success || c.History[0].Duration != 30*time.Millisecond {
			t.Fatalf("history = %+v", c.History)
		}

		// A canceled queued run reports canceled; a deleted run takes its report with it.
		other := gitRun(t, s, p.ID, "GH_TOKEN")
		if _, err := s.RunCancel(ctx, other.ID, "no"); err != nil {
			t.Fatal(err)
		}
		if c, err := s.RunCommitStatus(ctx, other.ID); err != nil || c.State != run.Canceled || c.Version != 2 {
			t.Fatalf("canceled run's report = %+v, %v", c, err)
		}
	})
}
