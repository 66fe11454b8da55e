package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

func TestJobsClaimStartsFirstStepAndTakesSeveral(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r1 := mustRun(t, s, p.ID, twoStages())
		r2 := mustRun(t, s, p.ID, twoStages())
		mustRun(t, s, p.ID, twoStages())

		cs, err := s.JobsClaim(ctx, store.JobsClaim{Max: 2, StartFirstStep: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 || cs[0].Run.ID != r1.ID || cs[1].Run.ID != r2.ID {
			t.Fatalf("claimed %d jobs: %+v; want the compile jobs of runs %d and %d", len(cs), cs, r1.ID, r2.ID)
		}
		for _, c := range cs {
			if c.Job.Status != run.Running || c.Run.Status != run.Running {
				t.Fatalf("claimed job %s, run %s; want both running", c.Job.Status, c.Run.Status)
			}
			if st := c.Job.Steps; st[0].Status != run.Running || st[0].StartedAt == nil || st[1].Status != run.Queued {
				t.Fatalf("claimed steps = %+v; want the first running, the second queued", st)
			}
		}
		got := mustGet(t, s, r1.ID)
		wantStatuses(t, got, map[string]run.Status{"compile/fetch": run.Running, "compile/make": run.Queued})
		// The claim started it: starting it again is refused.
		if err := s.StepAdvance(ctx, cs[0].Attempt.ID, nil, cs[0].Job.Steps[0].ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("StepAdvance of a started step: %v; want ErrConflict", err)
		}
		// Only one ready job is left (run 3's compile), though 5 are asked for.
		rest, err := s.JobsClaim(ctx, store.JobsClaim{Max: 5})
		if err != nil || len(rest) != 1 || rest[0].Job.Steps[0].Status != run.Queued {
			t.Fatalf("JobsClaim = %+v, %v; want one job, its step queued", rest, err)
		}
		if _, err := s.JobsClaim(ctx, store.JobsClaim{Max: 3}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("JobsClaim with nothing ready: %v; want ErrNotFound", err)
		}
	})
}

func TestJobCompleteInOneWrite(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, []run.Job{job(0, "build", 0, "compile", "fetch", "make", "pack")})
		cs, err := s.JobsClaim(ctx, store.JobsClaim{Max: 1, StartFirstStep: true})
		if err != nil {
			t.Fatal(err)
		}
		c := cs[0]
		fetch, mk, pack := c.Job.Steps[0].ID, c.Job.Steps[1].ID, c.Job.Steps[2].ID
		if err := s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Data: []byte("one\n")}}); err != nil {
			t.Fatal(err)
		}
		zero, one := 0, 1
		if err := s.StepAdvance(ctx, c.Attempt.ID, []store.StepResult{{StepID: fetch, Status: run.Success, ExitCode: &zero}}, mk); err != nil {
			t.Fatal(err)
		}
		wantStatuses(t, mustGet(t, s, r.ID), map[string]run.Status{
			"compile/fetch": run.Success, "compile/make": run.Running, "compile/pack": run.Queued})

		end := store.JobEnd{
			Attempt: c.Attempt.ID,
			JobID:   c.Job.ID,
			Steps:   []store.StepResult{{StepID: mk, Status: run.Failed, ExitCode: &one}, {StepID: pack, Status: run.Skipped}},
			Logs:    []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Data: []byte("two\n")}, {RunID: r.ID, JobID: c.Job.ID, Data: []byte("three\n")}},
			Status:  run.Failed,
			Message: `step "make" failed: exit code 1`,
		}
		// A step of another job, a chunk of another job: refused, nothing written.
		bad := end
		bad.Steps = []store.StepResult{{StepID: 999999, Status: run.Success}}
		if _, err := s.JobComplete(ctx, bad); err == nil {
			t.Fatal("JobComplete with a step of no job succeeded")
		}
		bad = end
		bad.Logs = []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID + 1, Data: []byte("x\n")}}
		if _, err := s.JobComplete(ctx, bad); err == nil {
			t.Fatal("JobComplete with a chunk of another job succeeded")
		}
		if got := mustGet(t, s, r.ID); got.Status != run.Running || got.Jobs[0].Status != run.Running {
			t.Fatalf("after refused JobCompletes run %s job %s; want both running", got.Status, got.Jobs[0].Status)
		}

		st, err := s.JobComplete(ctx, end)
		if err != nil || st != run.Failed {
			t.Fatalf("JobComplete = %s, %v; want failed", st, err)
		}
		got := mustGet(t, s, r.ID)
		if got.Status != run.Failed || got.Message != end.Message || got.FinishedAt == nil {
			t.Fatalf("run = %s %q", got.Status, got.Message)
		}
		wantStatuses(t, got, map[string]run.Status{
			"compile": run.Failed, "compile/fetch": run.Success, "compile/make": run.Failed, "compile/pack": run.Skipped})
		if code := got.Jobs[0].Steps[1].ExitCode; code == nil || *code != 1 {
			t.Fatalf("make's exit code = %v, want 1", code)
		}
		chunks, err := s.LogRead(ctx, r.ID, 0, 10)
		if err != nil || len(chunks) != 3 {
			t.Fatalf("log = %+v, %v", chunks, err)
		}
		for i, want := range []string{"one\n", "two\n", "three\n"} {
			if string(chunks[i].Data) != want || chunks[i].Seq != int64(i+1) {
				t.Fatalf("chunk %d = %d %q, want %d %q", i, chunks[i].Seq, chunks[i].Data, i+1, want)
			}
		}

		// Finishing twice fails, and writes nothing (no extra chunk).
		again := end
		again.Steps = nil
		_, err = s.JobComplete(ctx, again)
		if !errors.Is(err, store.ErrConflict) || !errors.Is(err, store.ErrFenced) {
			t.Fatalf("second JobComplete: %v; want ErrFenced (the attempt finished), a conflict", err)
		}
		if chunks, _ := s.LogRead(ctx, r.ID, 0, 10); len(chunks) != 3 {
			t.Fatalf("a refused JobComplete wrote %d chunks", len(chunks)-3)
		}
		if _, err := s.JobComplete(ctx, store.JobEnd{Attempt: c.Attempt.ID, JobID: 999999, Status: run.Success}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("JobComplete(999999): %v; want ErrNotFound", err)
		}
		if _, err := s.JobComplete(ctx, store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, Status: run.Queued}); err == nil {
			t.Fatal("JobComplete(queued) succeeded")
		}
	})
}

// Parallel jobs of one stage completed at once: the run opens its next stage exactly once,
// and ends exactly once.
func TestJobCompleteParallelAdvancesOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		const width = 6
		var jobs []run.Job
		for i := range width {
			jobs = append(jobs, job(0, "a", i, string(rune('a'+i)), "x"))
			jobs = append(jobs, job(1, "b", i, string(rune('A'+i)), "y"))
		}
		r := mustRun(t, s, p.ID, jobs)
		completeAll := func(stage int) []run.Status {
			cs, err := s.JobsClaim(ctx, store.JobsClaim{Max: 2 * width, StartFirstStep: true})
			if err != nil || len(cs) != width {
				t.Fatalf("stage %d: claimed %d, %v; want %d", stage, len(cs), err, width)
			}
			out := make([]run.Status, width)
			var wg sync.WaitGroup
			for i, c := range cs {
				if c.Job.Stage != stage {
					t.Fatalf("claimed a job of stage %d, want %d", c.Job.Stage, stage)
				}
				wg.Go(func() {
					zero := 0
					st, err := s.JobComplete(ctx, store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, Status: run.Success,
						Steps: []store.StepResult{{StepID: c.Job.Steps[0].ID, Status: run.Success, ExitCode: &zero}},
						Logs:  []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Data: []byte(c.Job.Name + "\n")}}})
					if err != nil {
						t.Errorf("JobComplete %s: %v", c.Job.Name, err)
					}
					out[i] = st
				})
			}
			wg.Wait()
			return out
		}
		count := func(sts []run.Status, want run.Status) (n int) {
			for _, st := range sts {
				if st == want {
					n++
				}
			}
			return n
		}
		completeAll(0)
		if got := mustGet(t, s, r.ID); got.Stage != 1 || got.Status != run.Running {
			t.Fatalf("after stage 0: run stage %d %s; want stage 1 running", got.Stage, got.Status)
		}
		sts := completeAll(1)
		if n := count(sts, run.Success); n != 1 {
			t.Fatalf("%d JobCompletes saw the run succeed (%v); want exactly the last one", n, sts)
		}
		got := mustGet(t, s, r.ID)
		if got.Status != run.Success {
			t.Fatalf("run = %s, want success", got.Status)
		}
		for _, j := range got.Jobs {
			if j.Status != run.Success || j.Steps[0].Status != run.Success {
				t.Fatalf("job %s = %s, step %s", j.Name, j.Status, j.Steps[0].Status)
			}
		}
		if chunks, err := s.LogRead(ctx, r.ID, 0, 100); err != nil || len(chunks) != 2*width {
			t.Fatalf("log has %d chunks, %v; want %d", len(chunks), err, 2*width)
		}
		wantNoClaim(t, s)
	})
}
