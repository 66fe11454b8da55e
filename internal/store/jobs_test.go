package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

func TestJobClaimOrderAndStageGating(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		wantNoClaim(t, s)
		r1 := mustRun(t, s, p.ID, twoStages())
		r2 := mustRun(t, s, p.ID, twoStages())
		if n, err := s.JobQueueDepth(ctx); err != nil || n != 2 {
			t.Fatalf("JobQueueDepth = %d, %v; want 2 (one ready job per run)", n, err)
		}

		c := mustClaim(t, s)
		if c.Run.ID != r1.ID || c.Job.Name != "compile" || c.Job.Status != run.Running || c.Job.StartedAt == nil {
			t.Fatalf("first claim = run %d job %+v; want run %d compile", c.Run.ID, c.Job, r1.ID)
		}
		if c.Run.Status != run.Running || c.Run.StartedAt == nil || c.Run.Jobs != nil || c.Run.Pipeline != "hello" {
			t.Fatalf("claimed run = %+v", c.Run)
		}
		if len(c.Job.Steps) != 2 || c.Job.Steps[0].Script != "echo fetch" || c.Job.Env["J"] != "compile" {
			t.Fatalf("claimed job steps/env = %+v", c.Job)
		}
		// Stage 1 of run 1 is not ready: the next claim is run 2's compile.
		c2 := mustClaim(t, s)
		if c2.Run.ID != r2.ID || c2.Job.Name != "compile" {
			t.Fatalf("second claim = run %d %s; want run %d compile", c2.Run.ID, c2.Job.Name, r2.ID)
		}
		wantNoClaim(t, s)

		after := mustFinish(t, s, c.Job.ID, run.Success, "")
		if after.Stage != 1 || after.Status != run.Running {
			t.Fatalf("after stage 0, run = stage %d %s; want stage 1 running", after.Stage, after.Status)
		}
		c3, c4 := mustClaim(t, s), mustClaim(t, s)
		if c3.Run.ID != r1.ID || c4.Run.ID != r1.ID || c3.Job.Name != "unit" || c4.Job.Name != "lint" {
			t.Fatalf("stage 1 claims = %d/%s, %d/%s", c3.Run.ID, c3.Job.Name, c4.Run.ID, c4.Job.Name)
		}
		wantNoClaim(t, s)
	})
}

func TestRunSucceedsThroughStages(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		finishAll := func(c store.Claim) run.Run {
			for _, st := range c.Job.Steps {
				if err := s.StepStart(ctx, c.Attempt.ID, st.ID); err != nil {
					t.Fatal(err)
				}
				zero := 0
				if err := s.StepFinish(ctx, c.Attempt.ID, st.ID, run.Success, &zero); err != nil {
					t.Fatal(err)
				}
			}
			return mustFinish(t, s, c.Job.ID, run.Success, "")
		}
		finishAll(mustClaim(t, s))
		unit, lint := mustClaim(t, s), mustClaim(t, s)
		mid := finishAll(unit)
		if mid.Status != run.Running || mid.FinishedAt != nil {
			t.Fatalf("with lint still running, run = %s", mid.Status)
		}
		done := finishAll(lint)
		if done.Status != run.Success || done.FinishedAt == nil || done.ID != r.ID || done.Message != "" {
			t.Fatalf("run after last job = %+v", done)
		}
		wantStatuses(t, done, map[string]run.Status{
			"compile": run.Success, "compile/fetch": run.Success, "compile/make": run.Success,
			"unit": run.Success, "lint": run.Success, "lint/vet": run.Success,
		})
		if ec := done.Jobs[0].Steps[1].ExitCode; ec == nil || *ec != 0 {
			t.Fatalf("exit code = %v, want 0", ec)
		}
		if done.Jobs[0].Steps[1].FinishedAt == nil || done.Jobs[2].FinishedAt == nil {
			t.Fatal("finish times missing")
		}
		counts, _ := s.RunCountsByStatus(ctx)
		if counts[run.Success] != 1 {
			t.Fatalf("RunCountsByStatus = %v", counts)
		}
		wantNoClaim(t, s)
	})
}

func TestRunFailsAndSkipsLaterJobs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		mustRun(t, s, p.ID, twoStages())
		c := mustClaim(t, s)
		first := c.Job.Steps[0].ID
		if err := s.StepStart(ctx, c.Attempt.ID, first); err != nil {
			t.Fatal(err)
		}
		one := 1
		if err := s.StepFinish(ctx, c.Attempt.ID, first, run.Failed, &one); err != nil {
			t.Fatal(err)
		}
		got := mustFinish(t, s, c.Job.ID, run.Failed, "step fetch exited with 1")
		if got.Status != run.Failed || got.Message != "step fetch exited with 1" || got.FinishedAt == nil {
			t.Fatalf("run = %+v", got)
		}
		wantStatuses(t, got, map[string]run.Status{
			"compile": run.Failed, "compile/fetch": run.Failed, "compile/make": run.Skipped,
			"unit": run.Skipped, "unit/go test": run.Skipped, "lint": run.Skipped,
		})
		wantNoClaim(t, s)
	})
}

func TestParallelJobFailureWaitsForItsStage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		mustRun(t, s, p.ID, []run.Job{job(0, "t", 0, "a", "s"), job(0, "t", 1, "b", "s"), job(1, "deploy", 0, "c", "s")})
		a, b := mustClaim(t, s), mustClaim(t, s)
		mid := mustFinish(t, s, a.Job.ID, run.Failed, "")
		if mid.Status != run.Running {
			t.Fatalf("with b running, run = %s, want running", mid.Status)
		}
		end := mustFinish(t, s, b.Job.ID, run.Success, "")
		if end.Status != run.Failed || end.Message != "job t/a failed" {
			t.Fatalf("run = %s %q; want failed, job t/a failed", end.Status, end.Message)
		}
		wantStatuses(t, end, map[string]run.Status{"a": run.Failed, "b": run.Success, "c": run.Skipped})
	})
}

func TestConcurrentClaimsNeverShareAJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		const runs, perRun = 8, 3
		for range runs {
			var jobs []run.Job
			for i := range perRun {
				jobs = append(jobs, job(0, "s", i, string(rune('a'+i)), "x"))
			}
			mustRun(t, s, p.ID, jobs)
		}
		var (
			mu      sync.Mutex
			claimed = map[int64]int{}
			total   atomic.Int64
			wg      sync.WaitGroup
		)
		for w := range 2 {
			wg.Go(func() {
				// A claimer may find every ready row locked by the other one for a moment
				// (SKIP LOCKED), so ErrNotFound only ends it once every job is taken.
				for attempts := 0; total.Load() < runs*perRun && attempts < 10000; attempts++ {
					c, err := s.JobClaim(t.Context())
					if errors.Is(err, store.ErrNotFound) {
						continue
					}
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
					total.Add(1)
					mu.Lock()
					claimed[c.Job.ID]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != runs*perRun {
			t.Fatalf("claimed %d distinct jobs, want %d", len(claimed), runs*perRun)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("job %d claimed %d times", id, n)
			}
		}
		wantNoClaim(t, s)
	})
}

func TestGuardedTransitions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, []run.Job{job(0, "s", 0, "a", "one"), job(0, "s", 1, "b", "two")})
		queuedJob := r.Jobs[1]
		c := mustClaim(t, s)
		mustFinish(t, s, c.Job.ID, run.Success, "")

		// The attempt that ended the job is finished: it can end nothing again.
		_, err := s.JobFinish(ctx, c.Attempt.ID, c.Job.ID, run.Failed, "again")
		if !errors.Is(err, store.ErrFenced) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second JobFinish: %v; want ErrFenced (a conflict)", err)
		}
		if _, err := s.JobFinish(ctx, c.Attempt.ID, queuedJob.ID, run.Success, ""); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("JobFinish of a queued job: %v; want ErrConflict", err)
		}
		if _, err := s.JobFinish(ctx, c.Attempt.ID, 9999, run.Success, ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("JobFinish(9999): %v; want ErrNotFound", err)
		}
		if _, err := s.JobFinish(ctx, c.Attempt.ID, c.Job.ID, run.Queued, ""); err == nil {
			t.Fatal("JobFinish(queued) succeeded")
		}
		got := mustGet(t, s, r.ID)
		wantStatuses(t, got, map[string]run.Status{"a": run.Success, "b": run.Queued})
		if got.Status != run.Running {
			t.Fatalf("run = %s, want running", got.Status)
		}

		step := got.Jobs[1].Steps[0].ID
		// The finished job's attempt may write nothing more, to its own steps or another job's.
		if err := s.StepStart(ctx, c.Attempt.ID, c.Job.Steps[0].ID); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("StepStart by a finished attempt: %v; want ErrFenced", err)
		}
		c2 := mustClaim(t, s)
		if err := s.StepStart(ctx, c.Attempt.ID, step); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("StepStart of another job's step by a finished attempt: %v; want ErrFenced", err)
		}
		if err := s.StepFinish(ctx, c2.Attempt.ID, step, run.Success, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("StepFinish(success) of a queued step: %v; want ErrConflict", err)
		}
		if err := s.StepStart(ctx, c2.Attempt.ID, step); err != nil {
			t.Fatal(err)
		}
		if err := s.StepStart(ctx, c2.Attempt.ID, step); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second StepStart: %v; want ErrConflict", err)
		}
		if err := s.StepFinish(ctx, c2.Attempt.ID, step, run.Canceled, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.StepFinish(ctx, c2.Attempt.ID, step, run.Success, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("StepFinish after canceled: %v; want ErrConflict", err)
		}
		if err := s.StepStart(ctx, c2.Attempt.ID, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("StepStart(9999): %v; want ErrNotFound", err)
		}
		if err := s.StepFinish(ctx, c2.Attempt.ID, step, run.Running, nil); err == nil {
			t.Fatal("StepFinish(running) succeeded")
		}
		got = mustGet(t, s, r.ID)
		if st := got.Jobs[1].Steps[0]; st.Status != run.Canceled || st.ExitCode != nil {
			t.Fatalf("step = %+v, want canceled without exit code", st)
		}
	})
}
