package executor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// leakVar is set in the test process; no step may see it.
const leakVar = "FLOWD_EXECUTOR_TEST_LEAK"

func TestMain(m *testing.M) {
	if IsHelperCommand(os.Args) { // the test binary is the steps' shim and launcher
		RunHelperCommand(os.Args)
	}
	os.Setenv(leakVar, "leaked")
	code := m.Run()
	if repoDir != "" {
		os.RemoveAll(repoDir) // the repository the checkout tests copy
	}
	os.Exit(code)
}

// event is one Reporter call.
type event struct {
	Step   int64
	Status run.Status // run.Running for StepStarted
	Code   *int
}

func (e event) String() string {
	if e.Code != nil {
		return fmt.Sprintf("%d:%s:%d", e.Step, e.Status, *e.Code)
	}
	return fmt.Sprintf("%d:%s", e.Step, e.Status)
}

// recorder is a Reporter that keeps its calls and checks their context is alive.
type recorder struct {
	t      *testing.T
	mu     sync.Mutex
	events []string
}

func (r *recorder) StepStarted(ctx context.Context, id int64) error {
	return r.add(ctx, event{Step: id, Status: run.Running})
}

func (r *recorder) StepFinished(ctx context.Context, id int64, st run.Status, code *int) error {
	return r.add(ctx, event{Step: id, Status: st, Code: code})
}

func (r *recorder) add(ctx context.Context, e event) error {
	if ctx.Err() != nil {
		r.t.Errorf("report %v with a done context: %v", e, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e.String())
	return nil
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// syncBuffer is an output that may be read while a step writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newLocal(t *testing.T) *Local {
	return NewLocal(slog.New(slog.NewTextHandler(testLogWriter{t}, nil)), testShim(t), nil)
}

// testShim is the test binary itself, which TestMain turns into the step shim.
func testShim(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// newJob returns a job with a fresh workspace (not yet created) and a minimal environment.
func newJob(t *testing.T, scripts ...string) Job {
	ws := filepath.Join(t.TempDir(), "ws")
	job := Job{RunID: 1, JobID: 2, Workspace: ws, Env: []string{"PATH=/usr/bin:/bin", "WORKSPACE=" + ws}}
	for i, s := range scripts {
		job.Steps = append(job.Steps, Step{ID: int64(i + 1), Name: fmt.Sprintf("s%d", i+1), Script: s})
	}
	return job
}

func runJob(t *testing.T, ctx context.Context, job Job) (Result, string, []string) {
	t.Helper()
	var out syncBuffer
	rep := &recorder{t: t}
	res := newLocal(t).Run(ctx, job, &out, rep)
	t.Logf("result %+v\noutput:\n%s", res, out.String())
	return res, out.String(), rep.get()
}

// stepOutput returns what step name printed, between its header and result lines.
func stepOutput(t *testing.T, out, name string) string {
	t.Helper()
	_, after, ok := strings.Cut(out, fmt.Sprintf(headerFormat, name))
	if !ok {
		t.Fatalf("no header for %s in %q", name, out)
	}
	i := strings.Index(after, "✔ "+name)
	if j := strings.Index(after, "✖ "+name); i < 0 || (j >= 0 && j < i) {
		i = j
	}
	if i < 0 {
		t.Fatalf("no result line for %s in %q", name, out)
	}
	return after[:i]
}

func TestEnvIsExactlyTheJobs(t *testing.T) {
	t.Parallel()
	job := newJob(t, "env -0")
	job.Env = append(job.Env, "GREETING=hello world", "MULTI=a\nb", "EMPTY=")
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("status %s", res.Status)
	}
	got := stepOutput(t, out, "s1")
	if strings.Contains(got, leakVar) {
		t.Errorf("the server's environment reached the step: %q", got)
	}
	var vars []string
	for _, kv := range strings.Split(strings.TrimSuffix(strings.TrimSuffix(got, "\n"), "\x00"), "\x00") {
		if !strings.HasPrefix(kv, "PWD=") { // the shell sets PWD itself
			vars = append(vars, kv)
		}
	}
	want := slices.Clone(job.Env)
	slices.Sort(vars)
	slices.Sort(want)
	if !slices.Equal(vars, want) {
		t.Errorf("environment of the step:\n%q\nwant\n%q", vars, want)
	}
}

func TestHostileValueIsData(t *testing.T) {
	t.Parallel()
	job := newJob(t, `echo "$X"`, "echo $X")
	hostile := `$(touch $WORKSPACE/pwned); touch $WORKSPACE/pwned2 ` + "`touch $WORKSPACE/pwned3`"
	job.Env = append(job.Env, "X="+hostile)
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("status %s", res.Status)
	}
	if got := stepOutput(t, out, "s1"); got != hostile+"\n" {
		t.Errorf("printed %q, want %q", got, hostile+"\n")
	}
	for _, f := range []string{"pwned", "pwned2", "pwned3"} {
		if _, err := os.Stat(filepath.Join(job.Workspace, f)); !os.IsNotExist(err) {
			t.Errorf("%s: the value ran as code (stat: %v)", f, err)
		}
	}
}

func TestStdoutStderrOrder(t *testing.T) {
	t.Parallel()
	job := newJob(t, "echo a; echo b >&2; echo c; echo d >&2")
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("status %s", res.Status)
	}
	if got := stepOutput(t, out, "s1"); got != "a\nb\nc\nd\n" {
		t.Errorf("output %q, want a b c d in order", got)
	}
}

func TestWorkspaceIsCwdAndCreated(t *testing.T) {
	t.Parallel()
	job := newJob(t, "pwd -P", "echo hi > file")
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("status %s", res.Status)
	}
	want, err := filepath.EvalSymlinks(job.Workspace)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepOutput(t, out, "s1"); got != want+"\n" {
		t.Errorf("cwd %q, want %q", got, want)
	}
	fi, err := os.Stat(job.Workspace)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("workspace mode %v, want 0700", fi.Mode().Perm())
	}
	if b, err := os.ReadFile(filepath.Join(job.Workspace, "file")); err != nil || string(b) != "hi\n" {
		t.Errorf("file in workspace: %q, %v", b, err)
	}
}

func TestFailedStepSkipsTheRest(t *testing.T) {
	t.Parallel()
	job := newJob(t, "echo one", "echo two; exit 3; echo unreachable", "echo never", "echo never2")
	res, out, events := runJob(t, context.Background(), job)
	if res.Status != run.Failed || !strings.Contains(res.Message, "exit code 3") || !strings.Contains(res.Message, "s2") {
		t.Errorf("result %+v, want failed with s2's exit code 3", res)
	}
	want := []string{"1:running", "1:success:0", "2:running", "2:failed:3", "3:skipped", "4:skipped"}
	if !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	for _, s := range []string{"✔ s1 (", "✖ s2: exit code 3", "○ s3: skipped", "○ s4: skipped"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if strings.Contains(out, "never") || strings.Contains(out, "unreachable") {
		t.Errorf("a skipped command ran: %q", out)
	}
}

func TestShellErrexit(t *testing.T) {
	t.Parallel()
	job := newJob(t, "false; echo after")
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Failed || strings.Contains(out, "after\n") {
		t.Errorf("-e not in effect: %+v %q", res, out)
	}
}

func TestOutputWithoutNewline(t *testing.T) {
	t.Parallel()
	job := newJob(t, "printf abc")
	_, out, _ := runJob(t, context.Background(), job)
	if !regexp.MustCompile(`(?m)^abc\n✔ s1 \(`).MatchString(out) {
		t.Errorf("result line not on a line of its own: %q", out)
	}
}

func TestCannotStart(t *testing.T) {
	t.Parallel()
	job := newJob(t, "echo a", "echo b")
	l := newLocal(t)
	l.Shell = []string{"/nonexistent/sh", "-c"}
	var out syncBuffer
	rep := &recorder{t: t}
	res := l.Run(context.Background(), job, &out, rep)
	if res.Status != run.Failed || !strings.Contains(res.Message, "cannot start /nonexistent/sh") {
		t.Errorf("result %+v", res)
	}
	want := []string{"1:running", "1:failed", "2:skipped"}
	if got := rep.get(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// groupAlive lists the live (not zombie) processes of process group pgid.
func groupAlive(t *testing.T, pgid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var alive []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces, so cut after the last ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if fields[2] == strconv.Itoa(pgid) {
			alive = append(alive, e.Name()+" "+s[:strings.LastIndexByte(s, ')')+1])
		}
	}
	return alive
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var pgidRe = regexp.MustCompile(`pgid=(\d+)`)

// startAndStop runs job, waits until its step printed "pgid=<pgid>", calls stop, and checks
// that Run returns within 2s and that nothing of the step's process group survives.
func startAndStop(t *testing.T, job Job, stop func()) (Result, string, []string) {
	t.Helper()
	var out syncBuffer
	rep := &recorder{t: t}
	done := make(chan Result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- newLocal(t).Run(ctx, job, &out, rep) }()

	var pgid int
	waitFor(t, 10*time.Second, "the step to print its pgid", func() bool {
		m := pgidRe.FindStringSubmatch(out.String())
		if m != nil {
			pgid, _ = strconv.Atoi(m[1])
		}
		return m != nil
	})
	// Wait for the step's children too, so the test proves they are killed.
	waitFor(t, 10*time.Second, "the step's processes", func() bool { return len(groupAlive(t, pgid)) >= 2 })
	t.Logf("group %d: %q", pgid, groupAlive(t, pgid))

	begin := time.Now()
	if stop == nil {
		cancel()
	} else {
		stop()
	}
	var res Result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return after the job was stopped; output %q", out.String())
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Run returned %v after the stop, want < 2s", d)
	}
	// SIGKILL is sent before Run returns; give the kernel the rest of the 2s to reap.
	deadline := begin.Add(2 * time.Second)
	for len(groupAlive(t, pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive := groupAlive(t, pgid); len(alive) > 0 {
		t.Errorf("processes of the step survived: %q", alive)
	}
	t.Logf("result %+v\noutput:\n%s", res, out.String())
	return res, out.String(), rep.get()
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for name, script := range map[string]string{
		"sleep":            "echo pgid=$(cut -d' ' -f5 /proc/$$/stat); sleep 600 & sleep 600",
		"grandchildren":    `echo pgid=$(cut -d' ' -f5 /proc/$$/stat); sh -c 'sleep 600 & sleep 600; wait'`,
		"ignores SIGTERM":  `echo pgid=$(cut -d' ' -f5 /proc/$$/stat); trap '' TERM; sh -c 'sleep 600 & sleep 600; wait'`,
		"child holds pipe": `echo pgid=$(cut -d' ' -f5 /proc/$$/stat); (trap '' TERM; sleep 600) & sleep 600`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			job := newJob(t, script, "echo never")
			res, out, events := startAndStop(t, job, nil)
			if res.Status != run.Canceled {
				t.Errorf("result %+v, want canceled", res)
			}
			want := []string{"1:running", "1:canceled", "2:skipped"}
			if !slices.Equal(events, want) {
				t.Errorf("events %v, want %v", events, want)
			}
			if !strings.Contains(out, "✖ s1: canceled\n") || strings.Contains(out, "never\n") {
				t.Errorf("output %q", out)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	job := newJob(t, "echo pgid=$(cut -d' ' -f5 /proc/$$/stat); sleep 600 & sleep 600", "echo never")
	// Long enough for the step to start and print its group on a loaded machine (a race
	// build's shim took over 300 ms there), short enough to end within startAndStop's 2 s.
	job.Timeout = time.Second
	res, out, events := startAndStop(t, job, func() {})
	if res.Status != run.Failed || res.Message != "job timed out after 1s" {
		t.Errorf("result %+v, want failed: job timed out after 1s", res)
	}
	want := []string{"1:running", "1:failed", "2:skipped"}
	if !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if !strings.Contains(out, "✖ s1: timed out after 1s\n") {
		t.Errorf("output %q", out)
	}
}

func TestCanceledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("server shutting down"))
	res, out, events := runJob(t, ctx, newJob(t, "echo a", "echo b"))
	if res.Status != run.Canceled || res.Message != "job canceled: server shutting down" {
		t.Errorf("result %+v", res)
	}
	if want := []string{"1:skipped", "2:skipped"}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if strings.Contains(out, "▶") {
		t.Errorf("a step started: %q", out)
	}
}

// A background child that keeps the output pipe open neither hangs the step nor survives it.
func TestBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	job := newJob(t, "echo pgid=$(cut -d' ' -f5 /proc/$$/stat); sleep 600 &", "echo next")
	begin := time.Now()
	res, out, _ := runJob(t, context.Background(), job)
	if res.Status != run.Success || !strings.Contains(out, "next\n") {
		t.Errorf("result %+v output %q", res, out)
	}
	if d := time.Since(begin); d > 20*time.Second { // a bound against hanging on the child (600 s), not a speed test
		t.Errorf("job took %v", d)
	}
	m := pgidRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no pgid")
	}
	pgid, _ := strconv.Atoi(m[1])
	waitFor(t, 2*time.Second, "the background child to die", func() bool { return len(groupAlive(t, pgid)) == 0 })
}

func TestCleanupIdempotent(t *testing.T) {
	t.Parallel()
	job := newJob(t, "mkdir -p a/b && echo x > a/b/c && chmod 500 a a/b")
	if res, _, _ := runJob(t, context.Background(), job); res.Status != run.Success {
		t.Fatalf("status %s", res.Status)
	}
	l := newLocal(t)
	for i := range 2 {
		if err := l.Cleanup(context.Background(), job); err != nil {
			t.Errorf("cleanup %d: %v", i, err)
		}
	}
	if _, err := os.Stat(job.Workspace); !os.IsNotExist(err) {
		t.Errorf("workspace still there: %v", err)
	}
}
