package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// claimAs claims one job for holder h as runner, with lease ttl.
func claimAs(t *testing.T, s *store.Store, h store.Holder, runner string, ttl time.Duration) store.Claim {
	t.Helper()
	cs, err := s.JobsClaim(t.Context(), store.JobsClaim{Max: 1, Holder: h, Runners: []string{runner}, TTL: ttl})
	if err != nil {
		t.Fatalf("JobsClaim: %v", err)
	}
	return cs[0]
}

// expire ends every live lease now, as if their runners had stopped renewing long ago.
func expire(t *testing.T, s *store.Store) {
	t.Helper()
	if _, err := s.ExecForTest(t.Context(), "UPDATE attempts SET expires_at = ? WHERE state IN ('running', 'canceling')",
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
}

func jobOf(t *testing.T, s *store.Store, runID, jobID int64) run.Job {
	t.Helper()
	for _, j := range mustGet(t, s, runID).Jobs {
		if j.ID == jobID {
			return j
		}
	}
	t.Fatalf("run %d has no job %d", runID, jobID)
	return run.Job{}
}

func TestClaimCreatesAttemptAndLease(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		c := claimAs(t, s, store.Holder{Node: "web-1", Instance: "i1"}, "web-1/3", time.Hour)
		if c.Attempt.ID == 0 || c.Attempt.Number != 1 || len(c.Attempt.Token) != 32 {
			t.Fatalf("attempt = %+v; want number 1 with a 128-bit hex token", c.Attempt)
		}
		j := jobOf(t, s, r.ID, c.Job.ID)
		if j.Attempt != 1 || len(j.Attempts) != 1 {
			t.Fatalf("job attempts = %d %+v", j.Attempt, j.Attempts)
		}
		a := j.Attempts[0]
		if a.Runner != "web-1/3" || a.Node != "web-1" || a.State != run.AttemptRunning || a.FinishedAt != nil {
			t.Fatalf("attempt = %+v", a)
		}
		// The lease is the database's now() + TTL, within the statement's own time.
		if d := a.ExpiresAt.Sub(a.HeartbeatAt); d < time.Hour-time.Second || d > time.Hour+time.Second {
			t.Fatalf("lease = %v after the heartbeat, want 1h", d)
		}
		if st, err := s.AttemptVerify(ctx, c.Attempt.ID, c.Attempt.Token); err != nil || st != run.AttemptRunning {
			t.Fatalf("AttemptVerify(right token) = %s, %v", st, err)
		}
		if _, err := s.AttemptVerify(ctx, c.Attempt.ID, strings.Repeat("0", 32)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AttemptVerify(wrong token) = %v; want ErrNotFound", err)
		}
		// A lease that has not run out is not rescued.
		if got, err := s.AttemptsRescue(ctx); err != nil || len(got) != 0 {
			t.Fatalf("AttemptsRescue = %+v, %v; want nothing", got, err)
		}
		// Ending the job finishes the attempt; renewing it then answers nothing: stop.
		mustFinish(t, s, c.Job.ID, run.Success, "")
		if a := jobOf(t, s, r.ID, c.Job.ID).Attempts[0]; a.State != run.AttemptFinished || a.FinishedAt == nil {
			t.Fatalf("attempt after the job's end = %+v", a)
		}
		if live, err := s.AttemptsRenew(ctx, []int64{c.Attempt.ID}, time.Minute); err != nil || len(live) != 0 {
			t.Fatalf("AttemptsRenew(finished) = %+v, %v; want none", live, err)
		}
	})
}

func TestLostAttemptIsFencedAndJobFails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		other := mustRun(t, s, p.ID, twoStages())
		c := claimAs(t, s, store.Holder{Node: "web-1", Instance: "i1"}, "web-1/1", time.Hour)
		live := claimAs(t, s, store.Holder{Node: "web-2", Instance: "i2"}, "web-2/1", time.Hour)
		if live.Run.ID != other.ID {
			t.Fatalf("second claim took run %d, want %d", live.Run.ID, other.ID)
		}
		if err := s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Attempt: c.Attempt.ID, Data: []byte("before\n")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecForTest(ctx, "UPDATE attempts SET expires_at = ? WHERE id = ?", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), c.Attempt.ID); err != nil {
			t.Fatal(err)
		}
		got, err := s.AttemptsRescue(ctx)
		if err != nil || len(got) != 1 || got[0].JobID != c.Job.ID || got[0].Outcome != run.Failed {
			t.Fatalf("AttemptsRescue = %+v, %v; want job %d failed", got, err, c.Job.ID)
		}
		after := mustGet(t, s, r.ID)
		j := jobOf(t, s, r.ID, c.Job.ID)
		if after.Status != run.Failed || j.Status != run.Failed || !strings.HasPrefix(j.Message, "runner_lost: attempt 1's runner web-1/1 stopped renewing its lease") {
			t.Fatalf("run %s, job %s %q; want both failed with runner_lost", after.Status, j.Status, j.Message)
		}
		if a := j.Attempts[0]; a.State != run.AttemptLost || !strings.HasPrefix(a.Reason, "runner_lost") {
			t.Fatalf("attempt = %+v; want lost", a)
		}
		logs, err := s.LogRead(ctx, r.ID, 0, 10)
		if err != nil || len(logs) != 2 || !strings.Contains(string(logs[1].Data), "last heartbeat") {
			t.Fatalf("log = %+v, %v; want the rescue's line naming the last heartbeat", logs, err)
		}

		// The stale runner's writes are refused, whatever they are; the live job's are not.
		stale := c.Attempt.ID
		if err := s.StepAdvance(ctx, stale, nil, c.Job.Steps[1].ID); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("StepAdvance by a lost attempt: %v; want ErrFenced", err)
		}
		_, err = s.JobComplete(ctx, store.JobEnd{Attempt: stale, JobID: c.Job.ID, Status: run.Success})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("JobComplete by a lost attempt: %v; want ErrFenced", err)
		}
		err = s.LogAppend(ctx, []run.LogChunk{
			{RunID: r.ID, JobID: c.Job.ID, Attempt: stale, Data: []byte("late\n")},
			{RunID: other.ID, JobID: live.Job.ID, Attempt: live.Attempt.ID, Data: []byte("live\n")},
		})
		var fe *store.FencedError
		if !errors.As(err, &fe) || !fe.Fenced(stale) || fe.Fenced(live.Attempt.ID) {
			t.Fatalf("LogAppend(stale + live) = %v; want the stale attempt refused alone", err)
		}
		if logs, _ := s.LogRead(ctx, r.ID, 0, 10); len(logs) != 2 {
			t.Fatalf("the lost attempt's late line was stored: %+v", logs)
		}
		if logs, _ := s.LogRead(ctx, other.ID, 0, 10); len(logs) != 1 || string(logs[0].Data) != "live\n" {
			t.Fatalf("the live attempt's line = %+v", logs)
		}
		if st := mustGet(t, s, r.ID); st.Status != run.Failed {
			t.Fatalf("a stale write changed the finished run: %s", st.Status)
		}
	})
}

func TestLostAttemptIsRetried(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		j := job(0, "build", 0, "compile", "fetch", "make")
		j.RetryLost = 1
		r := mustRun(t, s, p.ID, []run.Job{j})
		c1 := claimAs(t, s, store.Holder{Node: "a", Instance: "ia"}, "a/1", time.Hour)
		if err := s.StepAdvance(ctx, c1.Attempt.ID, nil, c1.Job.Steps[0].ID); err != nil {
			t.Fatal(err)
		}
		expire(t, s)
		got, err := s.AttemptsRescue(ctx)
		if err != nil || len(got) != 1 || got[0].Outcome != run.Queued {
			t.Fatalf("AttemptsRescue = %+v, %v; want the job queued again", got, err)
		}
		if job := jobOf(t, s, r.ID, c1.Job.ID); job.Status != run.Queued || job.Steps[0].Status != run.Queued || job.Steps[0].StartedAt != nil {
			t.Fatalf("retried job = %+v", job)
		}
		c2 := claimAs(t, s, store.Holder{Node: "b", Instance: "ib"}, "b/2", time.Hour)
		if c2.Job.ID != c1.Job.ID || c2.Attempt.Number != 2 {
			t.Fatalf("second claim = job %d attempt %d; want job %d attempt 2", c2.Job.ID, c2.Attempt.Number, c1.Job.ID)
		}
		// Attempt 1 can no longer touch the job attempt 2 runs.
		if err := s.StepAdvance(ctx, c1.Attempt.ID, nil, c1.Job.Steps[0].ID); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("attempt 1 after the retry: %v; want ErrFenced", err)
		}
		// The second loss is past max: the job fails, and the run shows both attempts.
		expire(t, s)
		if got, err := s.AttemptsRescue(ctx); err != nil || len(got) != 1 || got[0].Outcome != run.Failed {
			t.Fatalf("second AttemptsRescue = %+v, %v; want failed", got, err)
		}
		job := jobOf(t, s, r.ID, c1.Job.ID)
		if job.Status != run.Failed || job.Attempt != 2 || len(job.Attempts) != 2 || job.Attempts[0].Runner != "a/1" ||
			job.Attempts[1].Runner != "b/2" || job.Attempts[1].State != run.AttemptLost {
			t.Fatalf("job after two losses = %+v", job)
		}
	})
}

func TestCancelReachesAttemptAndLostCancelingEndsCanceled(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		c := claimAs(t, s, store.Holder{Node: "a", Instance: "ia"}, "a/1", time.Hour)
		if _, err := s.RunCancel(ctx, r.ID, "canceled by alice"); err != nil {
			t.Fatal(err)
		}
		live, err := s.AttemptStates(ctx, []int64{c.Attempt.ID})
		if err != nil || len(live) != 1 || live[0].State != run.AttemptCanceling {
			t.Fatalf("AttemptStates = %+v, %v; want canceling", live, err)
		}
		if live, err := s.AttemptsRenew(ctx, []int64{c.Attempt.ID}, time.Hour); err != nil || len(live) != 1 || live[0].State != run.AttemptCanceling {
			t.Fatalf("AttemptsRenew = %+v, %v; want canceling", live, err)
		}
		expire(t, s)
		if got, err := s.AttemptsRescue(ctx); err != nil || len(got) != 1 || got[0].Outcome != run.Canceled {
			t.Fatalf("AttemptsRescue = %+v, %v; want canceled", got, err)
		}
		if got := mustGet(t, s, r.ID); got.Status != run.Canceled || got.Message != "canceled by alice" {
			t.Fatalf("run = %s %q; want canceled by alice", got.Status, got.Message)
		}
	})
}

func TestRescueInstance(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r1 := mustRun(t, s, p.ID, twoStages())
		r2 := mustRun(t, s, p.ID, twoStages())
		old := claimAs(t, s, store.Holder{Node: "a", Instance: "old"}, "a/1", time.Hour)
		keep := claimAs(t, s, store.Holder{Node: "b", Instance: "other"}, "b/1", time.Hour)
		got, err := s.AttemptsRescueInstance(ctx, store.Holder{Node: "a", Instance: "new"})
		if err != nil || len(got) != 1 || got[0].JobID != old.Job.ID || !strings.Contains(got[0].Message, "its server was restarted") {
			t.Fatalf("AttemptsRescueInstance = %+v, %v; want node a's old attempt", got, err)
		}
		if st := mustGet(t, s, r1.ID).Status; st != run.Failed {
			t.Fatalf("run of the restarted node = %s, want failed", st)
		}
		if st := jobOf(t, s, r2.ID, keep.Job.ID).Status; st != run.Running {
			t.Fatalf("another node's job = %s, want running", st)
		}
		// Node "" (SQLite: one server) takes every other instance's attempts.
		if got, err := s.AttemptsRescueInstance(ctx, store.Holder{Instance: "new"}); err != nil || len(got) != 1 || got[0].JobID != keep.Job.ID {
			t.Fatalf("AttemptsRescueInstance(any node) = %+v, %v", got, err)
		}
	})
}

func TestLeaderElect(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		elect := func(holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := s.LeaderElect(ctx, "rescuer", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !elect("a", time.Hour) || elect("b", time.Hour) || !elect("a", time.Hour) {
			t.Fatal("a did not take and keep the lease, or b took a's")
		}
		if err := s.LeaderResign(ctx, "rescuer", "a"); err != nil {
			t.Fatal(err)
		}
		if !elect("b", time.Microsecond) {
			t.Fatal("b did not take the lease a resigned")
		}
		time.Sleep(5 * time.Millisecond) // b's lease of 1µs has run out by the database's clock
		if !elect("a", time.Hour) {
			t.Fatal("a did not take b's expired lease")
		}
	})
}

// TestClaimsFromTwoStores claims from two separately opened stores on one database at once:
// every job is claimed exactly once, each with one attempt.
func TestClaimsFromTwoStores(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.DSN(t, dialect)
			a, b := openAt(t, dsn), openAt(t, dsn)
			_, p := fixture(t, a)
			const runs = 40
			for range runs {
				mustRun(t, a, p.ID, []run.Job{job(0, "s", 0, "one", "x"), job(0, "s", 1, "two", "y")})
			}
			var (
				mu   sync.Mutex
				seen = map[int64]int{}
				wg   sync.WaitGroup
			)
			for i, s := range []*store.Store{a, b, a, b} {
				wg.Go(func() {
					h := store.Holder{Node: "n" + string(rune('a'+i)), Instance: "i"}
					for {
						cs, err := s.JobsClaim(context.Background(), store.JobsClaim{Max: 3, Holder: h, TTL: time.Hour})
						if errors.Is(err, store.ErrNotFound) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, c := range cs {
							seen[c.Job.ID]++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) != 2*runs {
				t.Fatalf("claimed %d jobs, want %d", len(seen), 2*runs)
			}
			for id, n := range seen {
				if n != 1 {
					t.Fatalf("job %d claimed %d times", id, n)
				}
			}
			if n, err := a.CountForTest(context.Background(), "SELECT COUNT(*) FROM attempts"); err != nil || n != 2*runs {
				t.Fatalf("attempts = %d, %v; want %d", n, err, 2*runs)
			}
		})
	}
}
