package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips a test that needs steps to run as users of their own (flowd as root), or
// fails it under FLOWD_TEST_REQUIRE_ALL=1 (CI runs as root).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("FLOWD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("this test needs flowd to run as root (steps as users of their own); FLOWD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("this test needs flowd to run as root (steps as users of their own)")
}

// TestStepCannotTakeOverTheServer is the attack of issue 9 over the real binary: a user who
// is a member of nothing creates a pipeline whose steps try to read the admin password from
// the server's environment, the secret key and the database through the workspace's parent
// folders, to make themselves admin in the database, and to read another job's workspace while
// it runs. All of it fails, the server's files are unchanged, and the user stays unprivileged.
func TestStepCannotTakeOverTheServer(t *testing.T) {
	needRoot(t)
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn)
	admin := srv.token("admin", adminPassword)
	if code := srv.api(admin, "POST", "/api/v1/users", map[string]any{"username": "mallory", "password": "mallory-password-1"}, nil); code != 201 {
		t.Fatalf("create mallory: %d", code)
	}
	mallory := srv.token("mallory", "mallory-password-1")
	db := filepath.Join(data, "flowd.db")
	keyBefore, err := os.ReadFile(filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}

	// A victim job of the admin's that keeps a secret in its workspace while it runs.
	secs := 600 + rand.IntN(10000)
	victim := fmt.Sprintf(`name: victim
stages:
  - name: s
    jobs:
      - name: keep
        steps:
          - name: keep
            run: echo victim-file-secret > secret.txt; echo "$FLOWD_WORKSPACE" > /dev/null; sleep %d
`, secs)
	if code := srv.api(admin, "POST", "/api/v1/pipelines", victim, nil); code != 201 {
		t.Fatalf("create victim: %d", code)
	}
	t.Cleanup(func() { killProcesses(fmt.Sprintf("sleep %d", secs)) })
	var vr struct{ Run runView }
	if code := srv.api(admin, "POST", "/api/v1/pipelines/victim/runs", map[string]any{}, &vr); code != 201 {
		t.Fatalf("start victim: %d", code)
	}
	waitFor(t, "the victim's step to start", func() bool { return processAlive(fmt.Sprintf("sleep %d", secs)) })

	attack := `name: attack
stages:
  - name: s
    jobs:
      - name: take
        steps:
          - name: whoami
            run: echo "uid=$(id -u)"
          - name: environ
            run: |
              cat /proc/$PPID/environ 2>&1 | tr '\0' '\n' || true
              for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done | grep FLOWD_ADMIN_PASSWORD || echo "no environ readable"
          - name: key
            run: |
              cat "$FLOWD_WORKSPACE/../../secret.key" || true
              cat ` + filepath.Join(data, "secret.key") + ` || true
          - name: database
            run: |
              echo "UPDATE users SET admin = 1;" >> ` + db + ` || true
              head -c 16 ` + db + ` || true
              ls ` + data + ` || true
          - name: neighbour
            run: |
              for f in "$FLOWD_WORKSPACE"/../*/secret.txt; do cat "$f" || true; done
              ls "$FLOWD_WORKSPACE/.." || true
`
	if code := srv.api(mallory, "POST", "/api/v1/pipelines", attack, nil); code != 201 {
		t.Fatalf("mallory creates a pipeline: %d", code)
	}
	var ar struct{ Run runView }
	if code := srv.api(mallory, "POST", "/api/v1/pipelines/attack/runs", map[string]any{}, &ar); code != 201 {
		t.Fatalf("start attack: %d", code)
	}
	waitFor(t, "the attack to end", func() bool {
		st := srv.run(mallory, ar.Run.ID).Status
		return st == "success" || st == "failed"
	})
	log := srv.log(mallory, ar.Run.ID)
	t.Logf("attack log:\n%s", log)
	if r := srv.run(mallory, ar.Run.ID); r.Status != "success" {
		t.Fatalf("the attack run is %s; its steps should have run and failed to do harm", r.Status)
	}
	for _, leak := range []string{adminPassword, string(keyBefore), "SQLite format", "victim-file-secret"} {
		if strings.Contains(log, leak) {
			t.Errorf("a step reached what it must not: %q is in its log", leak)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if line == "flowd.db" || line == "secret.key" || line == "2-2" || line == "1-1" {
			t.Errorf("a step listed a folder it must not: %q is a line of its log", line)
		}
	}
	if strings.Contains(log, "uid=0") {
		t.Error("the step ran as root")
	}
	if !strings.Contains(log, "Permission denied") {
		t.Error("the log shows no refusal; did the steps run at all?")
	}

	var me struct {
		Admin bool `json:"admin"`
	}
	if code := srv.api(mallory, "GET", "/api/v1/user", nil, &me); code != 200 || me.Admin {
		t.Errorf("mallory after the attack: %d admin=%v, want an unprivileged user", code, me.Admin)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(data, "secret.key")); string(keyAfter) != string(keyBefore) {
		t.Error("the secret key changed")
	}
	if b, err := os.ReadFile(db); err != nil || strings.Contains(string(b), "UPDATE users SET admin = 1;") {
		t.Errorf("the database file was written by a step (or cannot be read: %v)", err)
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data folder's mode is %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if code := srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", vr.Run.ID), nil, nil); code != 200 && code != 202 {
		t.Errorf("cancel the victim: %d", code)
	}
}

// TestNothingOutlivesItsJob starts processes that detach from the step in the usual ways; once
// the job ends none is left, and none is left when the server is killed while a job runs.
func TestNothingOutlivesItsJob(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "1")
	tok := srv.token("admin", adminPassword)
	base := 3000000 + rand.IntN(600000)*10
	sleeps := make([]string, 6)
	for i := range sleeps {
		sleeps[i] = fmt.Sprintf("sleep %d", base+i)
		t.Cleanup(func() { killProcesses(sleeps[i]) })
	}
	yaml := fmt.Sprintf(`name: escape
stages:
  - name: s
    jobs:
      - name: detach
        steps:
          - name: detach
            run: |
              (setsid sh -c '%s' &)
              setsid -f %s
              setsid %s &
              nohup %s >/dev/null 2>&1 &
              sleep 0.5
`, sleeps[0], sleeps[1], sleeps[2], sleeps[3])
	if code := srv.api(tok, "POST", "/api/v1/pipelines", yaml, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var r struct{ Run runView }
	if code := srv.api(tok, "POST", "/api/v1/pipelines/escape/runs", map[string]any{}, &r); code != 201 {
		t.Fatalf("run: %d", code)
	}
	waitFor(t, "the run to end", func() bool { return srv.run(tok, r.Run.ID).Status == "success" })
	for _, s := range sleeps[:4] {
		waitFor(t, s+" to be gone after its job ended", func() bool { return !processAlive(s) })
	}

	// A job running when the server is killed: its detached processes die with the server.
	crashYAML := fmt.Sprintf(`name: crash
stages:
  - name: s
    jobs:
      - name: detach
        steps:
          - name: detach
            run: setsid -f %s; %s
`, sleeps[4], sleeps[5])
	if code := srv.api(tok, "POST", "/api/v1/pipelines", crashYAML, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code := srv.api(tok, "POST", "/api/v1/pipelines/crash/runs", map[string]any{}, &r); code != 201 {
		t.Fatalf("run: %d", code)
	}
	waitFor(t, "the job's processes to start", func() bool { return processAlive(sleeps[4]) && processAlive(sleeps[5]) })
	srv.crash()
	begin := time.Now()
	for _, s := range sleeps[4:] {
		waitFor(t, s+" to be gone after the server was killed", func() bool { return !processAlive(s) })
	}
	t.Logf("the killed server's steps were gone %v after the kill", time.Since(begin))
	srv = startServer(t, data, dsn, "--executors", "1")
	if r := srv.run(tok, r.Run.ID); r.Status != "failed" {
		t.Errorf("the interrupted run is %s, want failed", r.Status)
	}
	for _, s := range sleeps {
		if processAlive(s) {
			t.Errorf("%s is alive after the restart", s)
		}
	}
}

// TestTrustedPipelinesOnly runs a server that cannot give steps users of their own
// (--step-user none): only pipelines a global admin created or marked trusted are saved and run.
func TestTrustedPipelinesOnly(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--step-user", "none", "--executors", "1")
	admin := srv.token("admin", adminPassword)
	if code := srv.api(admin, "POST", "/api/v1/users", map[string]any{"username": "dana", "password": "dana-password-1"}, nil); code != 201 {
		t.Fatalf("create dana: %d", code)
	}
	dana := srv.token("dana", "dana-password-1")

	var e struct {
		Error struct{ Code, Message string }
	}
	if code := srv.api(dana, "POST", "/api/v1/pipelines", slowPipeline("mine", 1), &e); code != 403 || e.Error.Code != "untrusted_pipeline" {
		t.Fatalf("a user's pipeline on a server without step users: %d %+v, want 403 untrusted_pipeline", code, e)
	}
	if !strings.Contains(e.Error.Message, "flowd pipeline trust mine") {
		t.Errorf("the refusal does not say what to do: %q", e.Error.Message)
	}

	secs := 600 + rand.IntN(10000)
	t.Cleanup(func() { killProcesses(fmt.Sprintf("sleep %d", secs)) })
	var p struct {
		Trusted   bool   `json:"trusted"`
		TrustedBy string `json:"trusted_by"`
	}
	if code := srv.api(admin, "POST", "/api/v1/pipelines", slowPipeline("slow", secs), &p); code != 201 || !p.Trusted || p.TrustedBy != "admin" {
		t.Fatalf("a global admin's pipeline: %d %+v, want trusted by admin", code, p)
	}
	if code := srv.api(admin, "PUT", "/api/v1/pipelines/slow/members/dana", map[string]any{"role": "admin"}, nil); code != 200 {
		t.Fatalf("make dana admin of slow: %d", code)
	}
	if code := srv.api(dana, "PUT", "/api/v1/pipelines/slow", slowPipeline("slow", 1), &e); code != 403 || e.Error.Code != "untrusted_pipeline" {
		t.Errorf("a pipeline admin's change to a trusted pipeline: %d %+v, want 403 untrusted_pipeline", code, e)
	}
	if code := srv.api(dana, "POST", "/api/v1/pipelines/slow/untrust", nil, &e); code != 403 {
		t.Errorf("a pipeline admin untrusts: %d, want 403 (global admins only)", code)
	}

	// A run queued while trusted, whose pipeline is untrusted before it starts, fails.
	if _, errOut, code := srv.cli(admin, "pipeline", "apply", "-f", "../examples/hello.yaml"); code != 0 {
		t.Fatalf("apply hello: %s", errOut)
	}
	var busy, queued struct{ Run runView }
	srv.api(admin, "POST", "/api/v1/pipelines/slow/runs", map[string]any{}, &busy)
	waitFor(t, "the slow step to start", func() bool { return processAlive(fmt.Sprintf("sleep %d", secs)) })
	srv.api(admin, "POST", "/api/v1/pipelines/hello/runs", map[string]any{}, &queued)
	out, errOut, code := srv.cli(admin, "pipeline", "untrust", "hello")
	if code != 0 || !strings.Contains(out, "no longer trusted") {
		t.Fatalf("flowd pipeline untrust: exit %d\n%s%s", code, out, errOut)
	}
	srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", busy.Run.ID), nil, nil)
	waitFor(t, "the queued run to end", func() bool { return srv.run(admin, queued.Run.ID).Status == "failed" })
	if log := srv.log(admin, queued.Run.ID); !strings.Contains(log, "not trusted") {
		t.Errorf("the refused job's log does not say why:\n%s", log)
	}

	// Untrusted: manual runs and webhook deliveries are refused before anything is queued.
	if code := srv.api(admin, "POST", "/api/v1/pipelines/hello/runs", map[string]any{}, &e); code != 403 || e.Error.Code != "untrusted_pipeline" {
		t.Errorf("a manual run of an untrusted pipeline: %d %+v", code, e)
	}
	var hook struct {
		URL string `json:"url"`
	}
	if code := srv.api(admin, "POST", "/api/v1/pipelines/hello/triggers/webhook/enable", map[string]any{}, &hook); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	if out, _ := runShell(t, "curl -s -o /dev/null -w '%{http_code}' -X POST --data '{}' '"+hook.URL+"'"); out != "403" {
		t.Errorf("a webhook of an untrusted pipeline answered %s, want 403", out)
	}

	// Trusted again, by the CLI: it runs.
	if out, errOut, code := srv.cli(admin, "pipeline", "trust", "hello"); code != 0 || !strings.Contains(out, "trusted") {
		t.Fatalf("flowd pipeline trust: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := srv.cli(admin, "run", "hello", "--follow"); code != 0 {
		t.Errorf("a run of the trusted pipeline: exit %d\n%s%s", code, out, errOut)
	}
}

// TestRestartKillsStepsOfAKilledServer kills the server and its step's shim with SIGKILL (the
// shim would otherwise end the step when the server dies), so the step's shell and `sleep` run
// on, re-parented to init; the server started again on the same data folder kills them before
// it listens, from the record of the step's process group.
func TestRestartKillsStepsOfAKilledServer(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	args := []string{"--step-user", "none", "--executors", "1"}
	srv, marker := startSlowStep(t, data, dsn, 3, args...)
	// The shim's and the shell's arguments hold the script, hence the marker too.
	isSleep := func(c string) bool { return c == marker }
	isShim := func(c string) bool { return strings.Contains(c, marker) && strings.Contains(c, "__step-shim") }
	ofStep := func(c string) bool { return strings.Contains(c, marker) }
	waitFor(t, "the step's sleep", func() bool { return len(pidsWhere(isSleep)) > 0 })
	shims := pidsWhere(isShim)
	if len(shims) != 1 {
		t.Fatalf("%d step shims run %q, want 1", len(shims), marker)
	}

	// Stopped first, so the server cannot end the step when its shim dies.
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every thread of the server to stop", func() bool { return stopped(srv.cmd.Process.Pid) })
	if err := syscall.Kill(shims[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.crash()
	waitFor(t, "the shim to be gone", func() bool { return len(pidsWhere(isShim)) == 0 })
	if len(pidsWhere(isSleep)) == 0 {
		t.Fatalf("%s did not outlive the killed server and shim: nothing left to test", marker)
	}

	startServer(t, data, dsn, args...)
	if pids := pidsWhere(ofStep); len(pids) > 0 {
		t.Errorf("processes of the killed server's step still run after the restart: %v", pids)
	}
	if entries, err := os.ReadDir(filepath.Join(data, "steps")); err != nil || len(entries) > 0 {
		t.Errorf("step records after the restart: %v (%v), want none", entries, err)
	}
}

// pidsWhere lists the processes whose command line (its arguments joined by spaces) matches.
func pidsWhere(match func(cmdline string) bool) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && len(b) > 0 && match(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopped tells whether every thread of process pid is stopped (SIGSTOP takes effect in each
// thread when it next runs).
func stopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if err != nil || i < 0 || i+2 >= len(s) || s[i+2] != 'T' {
			return false
		}
	}
	return true
}

// TestRestartKillsStepsOfAKilledLauncher is TestRestartKillsStepsOfAKilledServer for jobs run
// as step users, whose steps start through the server's step launcher: the server is stopped
// (so it cannot end the step when the launcher dies), the launcher killed with SIGKILL (it
// would otherwise end the steps when the server dies), then the server; the step's processes
// run on, and the server started again kills them before it listens.
func TestRestartKillsStepsOfAKilledLauncher(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	args := []string{"--executors", "1"}
	srv, marker := startSlowStep(t, data, dsn, 7, args...)
	isSleep := func(c string) bool { return c == marker }
	waitFor(t, "the step's sleep", func() bool { return len(pidsWhere(isSleep)) > 0 })
	server := srv.cmd.Process.Pid
	launchers := pidsWhere(func(c string) bool { return strings.HasSuffix(c, " __step-launcher") })
	launchers = slices.DeleteFunc(launchers, func(pid int) bool { return parentOf(pid) != server })
	if len(launchers) != 1 {
		t.Fatalf("%d step launchers of the server, want 1", len(launchers))
	}
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every thread of the server to stop", func() bool { return stopped(server) })
	if err := syscall.Kill(launchers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.crash()
	time.Sleep(300 * time.Millisecond)
	if len(pidsWhere(isSleep)) == 0 {
		t.Fatalf("%s did not outlive the killed server and launcher: nothing left to test", marker)
	}

	startServer(t, data, dsn, args...)
	if pids := pidsWhere(isSleep); len(pids) > 0 {
		t.Errorf("processes of the killed server's step still run after the restart: %v", pids)
	}
}

// startSlowStep starts a server on data and dsn with args, and a run of a pipeline whose step
// sleeps; it returns the server and the sleep's command line ("sleep N", N unique to the test,
// ending in digit), whose processes the test's cleanup kills.
func startSlowStep(t *testing.T, data, dsn string, digit int, args ...string) (*server, string) {
	t.Helper()
	srv := startServer(t, data, dsn, args...)
	admin := srv.token("admin", adminPassword)
	secs := 600 + rand.IntN(100000)*10 + digit
	marker := fmt.Sprintf("sleep %d", secs)
	t.Cleanup(func() { killProcesses(marker) })
	if code := srv.api(admin, "POST", "/api/v1/pipelines", slowPipeline("slow", secs), nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code := srv.api(admin, "POST", "/api/v1/pipelines/slow/runs", map[string]any{}, nil); code != 201 {
		t.Fatalf("run: %d", code)
	}
	return srv, marker
}

// parentOf is the parent pid of process pid (0 when it is gone).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if err != nil || i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
