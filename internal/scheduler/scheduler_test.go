package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// counting wraps the fake executor and records how many jobs ran at once, and each job.
type counting struct {
	executor.Fake
	mu       sync.Mutex
	now, max int
	ran      []int64
	jobs     []executor.Job
}

func (c *counting) Run(ctx context.Context, job executor.Job, out io.Writer, rep executor.Reporter) executor.Result {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.ran = append(c.ran, job.JobID)
	c.jobs = append(c.jobs, job)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}()
	return c.Fake.Run(ctx, job, out, rep)
}

type fixture struct {
	st    *store.Store
	exec  *counting
	logs  *logs.Appender
	box   *secret.Box
	sched *Scheduler
	pipe  store.Pipeline
	stop  func()
}

func newFixture(t *testing.T, dialect string, slots int) *fixture {
	t.Helper()
	return newFixtureWorkspace(t, dialect, slots, t.TempDir(), nil)
}

// newFixtureWorkspace is newFixture with the workspace root given and, when exec is not nil,
// the jobs run by exec (a real executor) instead of the fake.
func newFixtureWorkspace(t *testing.T, dialect string, slots int, root string, exec executor.Executor) *fixture {
	t.Helper()
	return newFixtureConfig(t, dialect, slots, root, exec, nil)
}

// newFixtureConfig is newFixtureWorkspace with edit, when not nil, changing the scheduler's
// Config before it starts.
func newFixtureConfig(t *testing.T, dialect string, slots int, root string, exec executor.Executor, edit func(*Config)) *fixture {
	t.Helper()
	st := storetest.Open(t, dialect)
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{st: st, exec: &counting{}, box: box}
	f.logs = logs.NewAppender(st, logger)
	var e executor.Executor = f.exec
	if exec != nil {
		e = exec
	}
	cfg := Config{Store: st, Executor: e, Logs: f.logs, Box: box, Slots: slots,
		Workspace: root, Logger: logger, Poll: 20 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	f.sched = New(cfg)
	ctx := context.Background()
	hash, _ := auth.HashPasswordCost("password1", 4)
	u, err := st.UserCreate(ctx, "alice", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	if f.pipe, err = st.PipelineCreate(ctx, "p", "name: p\n", nil, u.ID); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	logsCtx, stopLogs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = f.logs.Run(logsCtx) }()
	go func() { defer wg.Done(); _ = f.sched.Run(runCtx) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			// the scheduler first, then the log appender, as the app does
			for f.sched.busy() {
				time.Sleep(10 * time.Millisecond)
			}
			stopLogs()
			wg.Wait()
		})
	}
	t.Cleanup(f.stop)
	return f
}

// busy reports whether any job is tracked as running.
func (s *Scheduler) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running) > 0
}

// job builds a job of stage with one step per script.
func job(stage int, name string, scripts ...string) run.Job {
	j := run.Job{Stage: stage, StageName: "s" + string(rune('0'+stage)), Name: name, Timeout: time.Minute}
	for i, sc := range scripts {
		j.Steps = append(j.Steps, run.Step{Index: i, Name: sc, Script: sc})
	}
	return j
}

func (f *fixture) create(t *testing.T, secrets map[string]string, jobs ...run.Job) run.Run {
	t.Helper()
	return f.createWith(t, secrets, nil, jobs...)
}

// createWith is create with edit applied to the RunCreate before it is stored.
func (f *fixture) createWith(t *testing.T, secrets map[string]string, edit func(*store.RunCreate), jobs ...run.Job) run.Run {
	t.Helper()
	for i := range jobs {
		jobs[i].Index = i
	}
	rc := store.RunCreate{PipelineID: f.pipe.ID, Trigger: run.TriggerManual, TriggeredBy: "alice",
		Variables: map[string]string{"abc": "123"}, Jobs: jobs}
	if secrets != nil {
		b, _ := json.Marshal(secrets)
		sealed, err := f.box.Seal(b)
		if err != nil {
			t.Fatal(err)
		}
		rc.SecretVariables = sealed
	}
	if edit != nil {
		edit(&rc)
	}
	r, err := f.st.RunCreate(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	f.sched.Wake()
	return r
}

func (f *fixture) wait(t *testing.T, id int64, cond func(run.Run) bool) run.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := f.st.RunGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d stuck at %s: %+v", id, r.Status, r.Jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) log(t *testing.T, id int64) string {
	t.Helper()
	var b strings.Builder
	if err := logs.Stream(context.Background(), f.st, nil, id, false, &b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func terminal(r run.Run) bool { return r.Status.Terminal() }

func forEach(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestSlotsBoundParallelJobs(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 2)
		var jobs []run.Job
		for i := range 6 {
			jobs = append(jobs, job(0, "j"+string(rune('a'+i)), "sleep 100ms"))
		}
		r := f.wait(t, f.create(t, nil, jobs...).ID, terminal)
		if r.Status != run.Success {
			t.Fatalf("run %s", r.Status)
		}
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		if f.exec.max != 2 || len(f.exec.ran) != 6 {
			t.Fatalf("ran %d jobs, at most %d at once; want 6, at most 2", len(f.exec.ran), f.exec.max)
		}
	})
}

// TestNoSlotsClaimNothing: a scheduler of 0 slots (flowd serve --executors 0) leaves every job
// queued for agents, however often it is woken.
func TestNoSlotsClaimNothing(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 0)
		r := f.create(t, nil, job(0, "a", "true"))
		for range 5 {
			f.sched.Wake()
			time.Sleep(40 * time.Millisecond) // two polls of the fixture's scheduler each
		}
		got, err := f.st.RunGet(t.Context(), r.ID)
		if err != nil || got.Status != run.Queued || got.Jobs[0].Status != run.Queued {
			t.Fatalf("run after 200 ms = %s %+v, %v; want it queued", got.Status, got.Jobs, err)
		}
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		if len(f.exec.ran) != 0 {
			t.Fatalf("ran %d jobs; want none", len(f.exec.ran))
		}
	})
}

func TestFailureSkipsLaterStages(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.create(t, nil, job(0, "build", "echo one", "false", "echo never"), job(1, "test", "echo test"))
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Failed {
			t.Fatalf("run %s, want failed", r.Status)
		}
		if got := r.Jobs[1].Status; got != run.Skipped {
			t.Errorf("later stage's job is %s, want skipped", got)
		}
		steps := r.Jobs[0].Steps
		if steps[0].Status != run.Success || steps[1].Status != run.Failed || steps[2].Status != run.Skipped {
			t.Errorf("steps: %s %s %s", steps[0].Status, steps[1].Status, steps[2].Status)
		}
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		if slices.Contains(f.exec.ran, r.Jobs[1].ID) {
			t.Error("the job of the later stage ran")
		}
	})
}

func TestStagesRunInOrder(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.create(t, nil, job(0, "build", "sleep 50ms"), job(1, "a", "echo a"), job(1, "b", "echo b"))
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Success {
			t.Fatalf("run %s", r.Status)
		}
		for _, j := range r.Jobs[1:] {
			if j.StartedAt.Before(*r.Jobs[0].FinishedAt) {
				t.Errorf("job %s started before the first stage finished", j.Name)
			}
		}
	})
}

func TestCancelStopsRunningJob(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.create(t, nil, job(0, "wait", "sleep 10m"), job(1, "after", "echo after"))
		f.wait(t, r.ID, func(r run.Run) bool { return r.Jobs[0].Steps[0].Status == run.Running })
		if _, err := f.st.RunCancel(context.Background(), r.ID, "canceled by alice"); err != nil {
			t.Fatal(err)
		}
		f.sched.Cancel(r.ID)
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Canceled || r.Message != "canceled by alice" {
			t.Fatalf("run %s %q, want canceled by alice", r.Status, r.Message)
		}
		if r.Jobs[1].Status != run.Skipped && r.Jobs[1].Status != run.Canceled {
			t.Errorf("later job %s", r.Jobs[1].Status)
		}
	})
}

func TestCancelBeforeTrackIsRemembered(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.Cancel(42)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s.track(store.Claim{Run: run.Run{ID: 42}, Job: run.Job{ID: 1}, Attempt: store.AttemptRef{ID: 9}}, cancel)
	if ctx.Err() == nil || context.Cause(ctx) != errCanceledByUser {
		t.Fatal("a job tracked after its run's cancel was not canceled")
	}
}

func TestShutdownCancelsAndRecords(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.create(t, nil, job(0, "wait", "sleep 10m"))
		f.wait(t, r.ID, func(r run.Run) bool { return r.Jobs[0].Steps[0].Status == run.Running })
		f.stop()
		r, err := f.st.RunGet(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != run.Canceled || !strings.Contains(r.Message, "shut down") {
			t.Fatalf("after shutdown the run is %s %q", r.Status, r.Message)
		}
		if log := f.log(t, r.ID); !strings.Contains(log, "shut down") {
			t.Errorf("log does not say why:\n%s", log)
		}
	})
}

func TestSecretsMaskedInLog(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.create(t, map[string]string{"API_KEY": "hunter2-secret"}, job(0, "say", "echo hunter2-secret"))
		r = f.wait(t, r.ID, terminal)
		log := f.log(t, r.ID)
		if strings.Contains(log, "hunter2") || !strings.Contains(log, "echo ***") {
			t.Fatalf("secret not masked:\n%s", log)
		}
	})
}

func TestGitRunChecksOut(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		const sha = "89abcdef0123456789abcdef0123456789abcdef"
		git := &run.Git{RepoURL: "https://git.example.com/acme/app.git", SHA: sha, Ref: "refs/heads/main",
			Branch: "main", Event: "push", Provider: "gitlab", Message: "add it", Author: "Ada", CredentialsVar: "GIT_TOKEN"}
		r := f.createWith(t, map[string]string{"GIT_TOKEN": "glpat-s3cr3t-value"}, func(rc *store.RunCreate) {
			rc.Trigger, rc.Git = run.TriggerPush, git
		}, job(0, "build", "echo built", "echo glpat-s3cr3t-value"))
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Success {
			t.Fatalf("run %s %q", r.Status, r.Message)
		}
		log := f.log(t, r.ID)
		if !strings.Contains(log, "checkout "+sha+"\n") || strings.Index(log, "checkout "+sha) > strings.Index(log, "echo built") {
			t.Errorf("log has no checkout line before the steps:\n%s", log)
		}
		if strings.Contains(log, "s3cr3t") {
			t.Errorf("the clone token reached the log:\n%s", log)
		}
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		if len(f.exec.jobs) != 1 {
			t.Fatalf("executor ran %d jobs, want 1", len(f.exec.jobs))
		}
		j := f.exec.jobs[0]
		want := executor.Checkout{URL: git.RepoURL, SHA: sha, Ref: "refs/heads/main", Username: "oauth2", Password: "glpat-s3cr3t-value"}
		if j.Checkout == nil || *j.Checkout != want {
			t.Errorf("Checkout = %+v, want %+v", j.Checkout, want)
		}
		for _, kv := range []string{"FLOWD_COMMIT_SHA=" + sha, "FLOWD_BRANCH=main", "FLOWD_EVENT=push",
			"FLOWD_REPO_URL=" + git.RepoURL, "FLOWD_TRIGGER=push"} {
			if !slices.Contains(j.Env, kv) {
				t.Errorf("environment lacks %s: %v", kv, j.Env)
			}
		}
	})
}

func TestGitRunMissingCredentialsFails(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		r := f.createWith(t, nil, func(rc *store.RunCreate) {
			rc.Git = &run.Git{RepoURL: "https://h/a.git", SHA: "0123456789abcdef0123456789abcdef01234567", CredentialsVar: "GIT_TOKEN"}
		}, job(0, "build", "echo never"))
		r = f.wait(t, r.ID, terminal)
		if r.Status != run.Failed || !strings.Contains(r.Message, "GIT_TOKEN") {
			t.Fatalf("run %s %q, want failed naming GIT_TOKEN", r.Status, r.Message)
		}
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		if len(f.exec.ran) != 0 {
			t.Error("the job ran without its credentials")
		}
	})
}

// A superseded running run is stopped by Scheduler.Cancel like a canceled one, and ends with
// the message naming the run that superseded it.
func TestCancelStopsSupersededRun(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		group := func(rc *store.RunCreate) { rc.ConcurrencyGroup = "deploy" }
		old := f.createWith(t, nil, group, job(0, "wait", "sleep 10m"))
		f.wait(t, old.ID, func(r run.Run) bool { return r.Jobs[0].Steps[0].Status == run.Running })
		newer := f.createWith(t, nil, group, job(0, "quick", "echo hi"))
		ids, err := f.st.RunSupersede(context.Background(), newer.ID)
		if err != nil || len(ids) != 1 || ids[0] != old.ID {
			t.Fatalf("RunSupersede = %v, %v", ids, err)
		}
		for _, id := range ids {
			f.sched.Cancel(id)
		}
		o := f.wait(t, old.ID, terminal)
		if want := fmt.Sprintf("superseded by run #%d", newer.Number); o.Status != run.Canceled || o.Message != want {
			t.Fatalf("old run %s %q, want canceled %q", o.Status, o.Message, want)
		}
		if n := f.wait(t, newer.ID, terminal); n.Status != run.Success {
			t.Fatalf("newer run %s", n.Status)
		}
	})
}

// With max_running 1, a second run of the group waits for the first to end.
func TestMaxRunningWaits(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, 4)
		group := func(rc *store.RunCreate) { rc.ConcurrencyGroup, rc.MaxRunning = "deploy", 1 }
		first := f.createWith(t, nil, group, job(0, "a", "sleep 200ms"))
		second := f.createWith(t, nil, group, job(0, "b", "echo b"))
		a := f.wait(t, first.ID, terminal)
		b := f.wait(t, second.ID, terminal)
		if a.Status != run.Success || b.Status != run.Success {
			t.Fatalf("runs %s, %s", a.Status, b.Status)
		}
		if b.StartedAt.Before(*a.FinishedAt) {
			t.Errorf("second run started at %v, before the first ended at %v", b.StartedAt, a.FinishedAt)
		}
	})
}

// TestWorkspacesLeaveNothingBehind runs jobs with the local executor and checks that each job
// had a folder of its own under the workspace root while it ran and that the root is empty
// once the runs have ended.
func TestWorkspacesLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f := newFixtureWorkspace(t, "sqlite", 2, root, executor.NewLocal(nil, testShim(t), nil))
	var ids []int64
	for range 3 {
		r := f.create(t, nil, job(0, "a", `pwd > "$FLOWD_WORKSPACE/x" && cat x`), job(0, "b", `pwd`), job(1, "c", `pwd`))
		ids = append(ids, r.ID)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		r := f.wait(t, id, terminal)
		if r.Status != run.Success {
			t.Fatalf("run %d %s:\n%s", id, r.Status, f.log(t, id))
		}
		for _, line := range strings.Split(f.log(t, id), "\n") {
			if strings.HasPrefix(line, root) {
				seen[line] = true
			}
		}
	}
	if len(seen) != 9 {
		t.Errorf("%d distinct workspaces printed, want 9 (one per job): %v", len(seen), slices.Sorted(maps.Keys(seen)))
	}
	f.stop() // every job's cleanup has run
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the workspace root: %s", e.Name())
	}
}

// slowCleanup is the fake executor, whose Cleanup of the first job it cleans hangs until free
// is closed.
type slowCleanup struct {
	executor.Fake
	free    chan struct{}
	waiting chan struct{} // closed when that Cleanup waits

	mu    sync.Mutex
	first int64
}

func (e *slowCleanup) Cleanup(ctx context.Context, job executor.Job) error {
	e.mu.Lock()
	if e.first == 0 {
		e.first = job.JobID
		close(e.waiting)
	}
	first := e.first == job.JobID
	e.mu.Unlock()
	if first {
		<-e.free // not ctx: a removal that hangs past its bounded context
	}
	return e.Fake.Cleanup(ctx, job)
}

// TestCleanupDoesNotHoldUpRuns: with one slot, a job whose workspace removal hangs holds
// neither the slot nor the place of the next job recording its end, so a run's next stage runs
// and the run ends meanwhile.
func TestCleanupDoesNotHoldUpRuns(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		exec := &slowCleanup{free: make(chan struct{}), waiting: make(chan struct{})}
		f := newFixtureWorkspace(t, dialect, 1, t.TempDir(), exec)
		t.Cleanup(func() { close(exec.free) }) // before the fixture stops
		r := f.create(t, nil, job(0, "build", "echo build"), job(1, "test", "echo test"))
		<-exec.waiting
		got := f.wait(t, r.ID, terminal)
		if got.Status != run.Success {
			t.Fatalf("run %s, want success", got.Status)
		}
		if exec.Cleaned(got.Jobs[0].ID) != 0 {
			t.Fatal("the first job's cleanup returned before the run ended: the test proves nothing")
		}
	})
}
