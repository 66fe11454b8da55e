package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
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

// counting wraps the fake executor and records how many jobs ran at once.
type counting struct {
	executor.Fake
	mu       sync.Mutex
	now, max int
	ran      []int64
}

func (c *counting) Run(ctx context.Context, job executor.Job, out io.Writer, rep executor.Reporter) executor.Result {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.ran = append(c.ran, job.JobID)
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
	st := storetest.Open(t, dialect)
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{st: st, exec: &counting{}, box: box}
	f.logs = logs.NewAppender(st, logger)
	f.sched = New(Config{Store: st, Executor: f.exec, Logs: f.logs, Box: box, Slots: slots,
		Workspace: t.TempDir(), Logger: logger, Poll: 20 * time.Millisecond})
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
	s.track(42, 1, cancel)
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

func TestRecoverFailsInterruptedRuns(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, dialect string) {
		st := storetest.Open(t, dialect)
		ctx := context.Background()
		hash, _ := auth.HashPasswordCost("password1", 4)
		u, _ := st.UserCreate(ctx, "bob", hash, false)
		p, _ := st.PipelineCreate(ctx, "q", "name: q\n", nil, u.ID)
		running, _ := st.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Trigger: run.TriggerManual, TriggeredBy: "bob", Jobs: []run.Job{job(0, "a", "echo")}})
		if _, err := st.JobClaim(ctx); err != nil {
			t.Fatal(err)
		}
		queued, _ := st.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Trigger: run.TriggerManual, TriggeredBy: "bob", Jobs: []run.Job{job(0, "a", "echo")}})
		s := New(Config{Store: st})
		if err := s.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.RunStatus(ctx, running.ID); got != run.Failed {
			t.Errorf("interrupted run is %s, want failed", got)
		}
		if got, _ := st.RunStatus(ctx, queued.ID); got != run.Queued {
			t.Errorf("queued run is %s, want still queued", got)
		}
	})
}

func TestEnvironmentIsExact(t *testing.T) {
	t.Setenv("FLOWD_SECRET_KEY_TEST_LEAK", "x") // must not reach a step
	r := run.Run{ID: 7, Number: 3, Pipeline: "hello", Trigger: run.TriggerWebhook, TriggeredBy: "alice",
		Variables: map[string]string{"abc": "456", "GREETING": "from-run"}}
	j := run.Job{Name: "say", StageName: "build", Env: map[string]string{"GREETING": "hi", "ONLY_JOB": "1"}}
	env := Environment(r, j, map[string]string{"API_KEY": "k"}, "/ws")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	want := map[string]string{"abc": "456", "GREETING": "from-run", "ONLY_JOB": "1", "API_KEY": "k",
		"FLOWD_RUN_ID": "7", "FLOWD_RUN_NUMBER": "3", "FLOWD_PIPELINE": "hello", "FLOWD_TRIGGER": "webhook",
		"FLOWD_TRIGGERED_BY": "alice", "FLOWD_WORKSPACE": "/ws", "FLOWD_JOB": "say", "FLOWD_STAGE": "build"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && k != "PATH" && k != "HOME" {
			t.Errorf("unexpected variable %s in a step's environment", k)
		}
	}
}
