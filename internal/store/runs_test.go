package store_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

func TestRunCreateAndGet(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		for want := int64(1); want <= 3; want++ {
			r := mustRun(t, s, p.ID, twoStages())
			if r.Number != want {
				t.Fatalf("run number = %d, want %d", r.Number, want)
			}
		}
		other := mustPipeline(t, s, "other", 1)
		if r := mustRun(t, s, other.ID, twoStages()); r.Number != 1 {
			t.Fatalf("first run of another pipeline is number %d, want 1", r.Number)
		}

		r := mustRun(t, s, p.ID, twoStages())
		got := mustGet(t, s, r.ID)
		if got.Number != 4 || got.Pipeline != "hello" || got.PipelineID != p.ID || got.Revision != 1 ||
			got.Status != run.Queued || got.Trigger != run.TriggerManual || got.TriggeredBy != "alice" ||
			got.Variables["abc"] != "123" || !bytes.Equal(got.SecretVariables, []byte{1, 2, 3}) ||
			got.Stage != 0 || got.StartedAt != nil || got.FinishedAt != nil || got.CreatedAt.IsZero() {
			t.Fatalf("RunGet = %+v", got)
		}
		if len(got.Jobs) != 3 || got.Jobs[0].Name != "compile" || got.Jobs[1].Name != "unit" || got.Jobs[2].Name != "lint" {
			t.Fatalf("jobs = %+v", got.Jobs)
		}
		j := got.Jobs[0]
		if j.Stage != 0 || j.StageName != "build" || j.Env["J"] != "compile" || len(j.Steps) != 2 ||
			j.Steps[1].Name != "make" || j.Steps[1].Script != "echo make" || j.Steps[1].Status != run.Queued {
			t.Fatalf("job 0 = %+v", j)
		}
		if st := got.Stages(); len(st) != 2 || st[1].Name != "test" || len(st[1].Jobs) != 2 {
			t.Fatalf("Stages() = %+v", st)
		}
		if st, err := s.RunStatus(ctx, r.ID); err != nil || st != run.Queued {
			t.Fatalf("RunStatus = %q, %v", st, err)
		}
		if _, err := s.RunGet(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RunGet(9999): %v, want ErrNotFound", err)
		}
		if _, err := s.RunStatus(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RunStatus(9999): %v, want ErrNotFound", err)
		}
		if _, err := s.RunCreate(ctx, store.RunCreate{PipelineID: 9999, Jobs: twoStages()}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RunCreate(unknown pipeline): %v, want ErrNotFound", err)
		}
		counts, err := s.RunCountsByStatus(ctx)
		if err != nil || counts[run.Queued] != 5 || len(counts) != 1 {
			t.Fatalf("RunCountsByStatus = %v, %v; want 5 queued", counts, err)
		}
	})
}

func TestRunCreateConcurrentNumbers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		const n = 20
		numbers := make(chan int64, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				r, err := s.RunCreate(t.Context(), store.RunCreate{
					PipelineID: p.ID, Trigger: run.TriggerWebhook, TriggeredBy: "alice", Jobs: twoStages(),
				})
				if err != nil {
					t.Errorf("RunCreate: %v", err)
					return
				}
				numbers <- r.Number
			})
		}
		wg.Wait()
		close(numbers)
		seen := map[int64]bool{}
		for num := range numbers {
			if seen[num] {
				t.Errorf("number %d given twice", num)
			}
			seen[num] = true
		}
		for i := int64(1); i <= n; i++ {
			if !seen[i] {
				t.Errorf("number %d missing (got %v)", i, seen)
			}
		}
	})
}

func TestRunList(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		for i := range 7 {
			trig := run.TriggerManual
			if i%2 == 1 {
				trig = run.TriggerWebhook
			}
			if _, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Trigger: trig, TriggeredBy: "alice", Jobs: twoStages()}); err != nil {
				t.Fatal(err)
			}
		}
		// Run 1 becomes running.
		mustClaim(t, s)
		numbers := func(rs []run.Run) []int64 {
			var out []int64
			for _, r := range rs {
				if r.Jobs != nil {
					t.Errorf("RunList returned jobs for run %d", r.Number)
				}
				out = append(out, r.Number)
			}
			return out
		}
		cases := []struct {
			name   string
			params store.RunListParams
			want   []int64
		}{
			{"all", store.RunListParams{}, []int64{7, 6, 5, 4, 3, 2, 1}},
			{"page 1", store.RunListParams{Limit: 3}, []int64{7, 6, 5}},
			{"page 2", store.RunListParams{Limit: 3, Before: 5}, []int64{4, 3, 2}},
			{"page 3", store.RunListParams{Limit: 3, Before: 2}, []int64{1}},
			{"webhook", store.RunListParams{Trigger: run.TriggerWebhook}, []int64{6, 4, 2}},
			{"running", store.RunListParams{Status: run.Running}, []int64{1}},
			{"queued manual", store.RunListParams{Status: run.Queued, Trigger: run.TriggerManual}, []int64{7, 5, 3}},
			{"limit too big", store.RunListParams{Limit: 5000, Before: 3}, []int64{2, 1}},
		}
		for _, c := range cases {
			rs, err := s.RunList(ctx, p.ID, c.params)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := numbers(rs); !equal(got, c.want) {
				t.Errorf("%s: numbers %v, want %v", c.name, got, c.want)
			}
		}
	})
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRunCancelQueued(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		got, err := s.RunCancel(ctx, r.ID, "canceled by alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != run.Canceled || got.Message != "canceled by alice" || got.FinishedAt == nil || got.CancelRequested {
			t.Fatalf("RunCancel(queued) = %+v", got)
		}
		wantStatuses(t, got, map[string]run.Status{
			"compile": run.Canceled, "compile/fetch": run.Skipped, "unit": run.Canceled, "lint/vet": run.Skipped,
		})
		wantNoClaim(t, s)
		// A finished run stays as it is.
		again, err := s.RunCancel(ctx, r.ID, "other")
		if err != nil || again.Status != run.Canceled || again.Message != "canceled by alice" || !again.FinishedAt.Equal(*got.FinishedAt) {
			t.Fatalf("RunCancel(canceled) = %+v, %v", again, err)
		}
		if _, err := s.RunCancel(ctx, 9999, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RunCancel(9999): %v, want ErrNotFound", err)
		}
	})
}

func TestRunCancelRunning(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		// Two parallel jobs in one stage; one runs when the cancel comes.
		r := mustRun(t, s, p.ID, []run.Job{job(0, "test", 0, "a", "s"), job(0, "test", 1, "b", "s")})
		c := mustClaim(t, s)
		got, err := s.RunCancel(ctx, r.ID, "canceled by bob")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != run.Running || !got.CancelRequested || got.Message != "canceled by bob" || got.FinishedAt != nil {
			t.Fatalf("RunCancel(running) = %+v", got)
		}
		wantNoClaim(t, s) // b stays queued: a cancel-requested run offers no jobs
		if n, err := s.JobQueueDepth(ctx); err != nil || n != 0 {
			t.Fatalf("JobQueueDepth = %d, %v; want 0", n, err)
		}
		if got, _ := s.RunCancel(ctx, r.ID, "second"); got.Message != "canceled by bob" {
			t.Fatalf("second cancel changed the message to %q", got.Message)
		}
		after := mustFinish(t, s, c.Job.ID, run.Canceled, "stopped")
		if after.Status != run.Canceled || after.Message != "canceled by bob" || after.FinishedAt == nil {
			t.Fatalf("after the job's cancel, run = %+v", after)
		}
		wantStatuses(t, after, map[string]run.Status{"a": run.Canceled, "b": run.Skipped, "a/s": run.Skipped, "b/s": run.Skipped})
	})
}

func TestRunCancelBetweenStages(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		c := mustClaim(t, s)
		mustFinish(t, s, c.Job.ID, run.Success, "")
		// Stage 1 is open but nothing of it runs: nothing would ever finish, so cancel now.
		got, err := s.RunCancel(t.Context(), r.ID, "stop")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != run.Canceled || got.FinishedAt == nil || got.Message != "stop" {
			t.Fatalf("RunCancel between stages = %+v", got)
		}
		wantStatuses(t, got, map[string]run.Status{"compile": run.Success, "unit": run.Skipped, "lint": run.Skipped})
		wantNoClaim(t, s)
	})
}
