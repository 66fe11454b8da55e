package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/dockertest"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store/storetest"
	dockerclient "github.com/moby/moby/client"
)

// A job printing thousands of lines through an agent ends in a stored log byte for byte the
// job's output (the server checked its SHA-256 at finish).
func TestAgentJobLogIsByteIdentical(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			srv := startServerWith(t, func(cfg *config.Config) { cfg.Database = storetest.DSN(t, dialect) })
			c := srv.admin()
			startAgent(t, agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1"))
			pipeline(t, c, "lines", lineScript(20000, 5000, "0"))
			id := startRun(t, c, "lines")
			checkLines(t, succeeded(t, c, id, 60*time.Second), 20000)
		})
	}
}

// A server stopped and started again while the job prints loses no byte of its log: the
// agent keeps it in its buffer and resends from the length the server has.
func TestAgentLogSurvivesServerRestart(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) { testLogSurvivesServerRestart(t, dialect) })
	}
}

func testLogSurvivesServerRestart(t *testing.T, dialect string) {
	srv := startServerWith(t, func(cfg *config.Config) { cfg.Database = storetest.DSN(t, dialect) })
	c := srv.admin()
	startAgent(t, agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1"))
	pipeline(t, c, "restart", lineScript(3000, 100, "0.1"))
	id := startRun(t, c, "restart")
	waitLog(t, c, id, "line 200 ")
	srv.stop()
	time.Sleep(2 * time.Second) // the job prints on meanwhile
	srv.start()
	c = srv.admin()
	checkLines(t, succeeded(t, c, id, 60*time.Second), 3000)
}

// Between the agent and the server, a proxy drops answers, sends requests twice and replays
// old log calls late: the stored log is still byte for byte the job's output.
func TestAgentLogThroughFaultyProxy(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	p := startProxy(t, srv.URL)
	startAgent(t, agentConfig(t, p.URL, srv.agentToken("t1"), "agent-1"))
	pipeline(t, c, "faulty", lineScript(40000, 500, "0.02"))
	id := startRun(t, c, "faulty")
	checkLines(t, succeeded(t, c, id, 90*time.Second), 40000)
	if p.dropped.Load() == 0 || p.doubled.Load() == 0 || p.replays.Load() == 0 {
		t.Fatalf("the proxy did not misbehave enough: %d dropped, %d doubled, %d replayed", p.dropped.Load(), p.doubled.Load(), p.replays.Load())
	}
	t.Logf("proxy: %d answers dropped, %d requests doubled, %d replayed late", p.dropped.Load(), p.doubled.Load(), p.replays.Load())
}

// A log changed on its way to the server is found out at finish (its SHA-256 is not the
// agent's): the server drops it, the agent sends it all again, and the stored log is the job's.
func TestAgentLogMismatchIsSentAgain(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	p := startProxy(t, srv.URL)
	p.corrupt = true
	a := startAgent(t, agentConfig(t, p.URL, srv.agentToken("t1"), "agent-1"))
	pipeline(t, c, "mismatch", lineScript(5000, 5000, "0"))
	id := startRun(t, c, "mismatch")
	checkLines(t, succeeded(t, c, id, 60*time.Second), 5000)
	if p.corrupted.Load() != 1 || !strings.Contains(a.out.String(), "SHA-256 differs") {
		t.Fatalf("the proxy changed %d log calls (want 1); the agent's log:\n%s", p.corrupted.Load(), a.out.String())
	}
}

// A run canceled on the server reaches the agent's job through its heartbeat within 2 s:
// the step gets SIGTERM and the job ends canceled.
func TestAgentCancelThroughHeartbeat(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	startAgent(t, agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1"))
	pipeline(t, c, "cancel", `trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.05; done`)
	id := startRun(t, c, "cancel")
	waitLog(t, c, id, "started")
	start := time.Now()
	srv.api("POST", "/api/v1/runs/"+strconv.FormatInt(id, 10)+"/cancel", nil, nil)
	waitRun(t, c, id, 10*time.Second, func(r *client.Run) bool { return strings.Contains(runLog(t, c, id), "got TERM") })
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("the step got SIGTERM %v after the cancel (want within 2 s)", d)
	}
	r := waitRun(t, c, id, 20*time.Second, ended)
	if r.Status != run.Canceled || jobStatus(r) != run.Canceled {
		t.Fatalf("run %s, job %s; want canceled\n%s", r.Status, jobStatus(r), runLog(t, c, id))
	}
	if log := runLog(t, c, id); !strings.Contains(log, "canceled by request\n") {
		t.Fatalf("the log does not say the job was canceled:\n%s", log)
	}
}

// SIGTERM drains an agent process: it takes no new job, lets the running one finish (its end
// recorded) and exits 0. A second signal cancels the running job, which is finished as
// canceled, and the agent exits.
func TestAgentDrainsOnSIGTERM(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	token := srv.agentToken("t1")
	pipeline(t, c, "slow", `echo started; sleep 3; echo done`)

	t.Run("drain", func(t *testing.T) {
		cmd, out := agentProcess(t, agentConfig(t, srv.URL, token, "agent-drain"))
		id := startRun(t, c, "slow")
		waitLog(t, c, id, "started")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		next := startRun(t, c, "slow") // queued after the drain began: not for this agent
		err := waitProcess(t, cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("the drained agent exited with %v\n%s", err, out.String())
		}
		r := waitRun(t, c, id, 5*time.Second, ended)
		if r.Status != run.Success || !strings.Contains(runLog(t, c, id), "done\n") {
			t.Fatalf("the running job ended %s after the drain:\n%s", r.Status, runLog(t, c, id))
		}
		if r, _ := c.RunGet(t.Context(), next); r.Status != run.Queued {
			t.Fatalf("a run queued during the drain is %s, want queued (taken by a draining agent?)", r.Status)
		}
		if _, err := c.RunCancel(t.Context(), next); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("second signal", func(t *testing.T) {
		cmd, out := agentProcess(t, agentConfig(t, srv.URL, token, "agent-kill"))
		pipeline(t, c, "slower", `echo started; sleep 30; echo done`)
		id := startRun(t, c, "slower")
		waitLog(t, c, id, "started")
		cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := waitProcess(t, cmd, 30*time.Second); err != nil {
			t.Fatalf("the agent exited with %v after a second signal\n%s", err, out.String())
		}
		r := waitRun(t, c, id, 5*time.Second, ended)
		if r.Status != run.Canceled {
			t.Fatalf("the job ended %s after the agent was stopped, want canceled:\n%s", r.Status, runLog(t, c, id))
		}
		if log := runLog(t, c, id); !strings.Contains(log, errAgentStopped.Error()) || strings.Contains(log, "done\n") {
			t.Fatalf("the log of the stopped job:\n%s", log)
		}
	})
}

// agentProcess starts the test binary as an agent process (see TestMain).
func agentProcess(t *testing.T, cfg Config) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), agentProcessEnv+"="+string(js))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("agent process output:\n%s", out.String())
		}
	})
	return cmd, out
}

// waitProcess waits for cmd to exit and returns its error.
func waitProcess(t *testing.T, cmd *exec.Cmd, within time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("the agent process did not exit within %v", within)
		return nil
	}
}

// A job on an agent gets the claim's environment with the agent's workspace, has its
// secrets masked in its log, and its workspace is removed when it ends; workspaces a killed
// agent left are removed at start.
func TestAgentJobEnvironmentAndWorkspace(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1")
	left := filepath.Join(cfg.WorkDir, "workspaces", "99-99")
	for _, dir := range []string{left, left + executor.HomeSuffix} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "junk"), []byte("left by a killed agent"), 0o600)
	}
	os.Chmod(cfg.WorkDir, 0o711)
	startAgent(t, cfg)
	yaml := `name: env
variables:
  API_KEY:
    secret: true
    default: "s3cr3t-value-123"
stages:
  - name: build
    jobs:
      - name: work
        steps:
          - name: work
            run: 'echo "key=$API_KEY"; echo "ws=$FLOWD_WORKSPACE"; echo "pwd=$(pwd)"; echo "run=$FLOWD_RUN_ID"'
`
	if _, err := c.PipelineCreate(t.Context(), []byte(yaml)); err != nil {
		t.Fatal(err)
	}
	id := startRun(t, c, "env")
	r := waitRun(t, c, id, 30*time.Second, ended)
	log := runLog(t, c, id)
	if r.Status != run.Success {
		t.Fatalf("run %s:\n%s", r.Status, log)
	}
	if strings.Contains(log, "s3cr3t-value-123") || !strings.Contains(log, "key=***\n") {
		t.Errorf("the secret is not masked:\n%s", log)
	}
	ws := filepath.Join(cfg.WorkDir, "workspaces", strconv.FormatInt(id, 10)+"-"+strconv.FormatInt(r.Stages[0].Jobs[0].ID, 10))
	for _, want := range []string{"ws=" + ws + "\n", "pwd=" + ws + "\n", "run=" + strconv.FormatInt(id, 10) + "\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	waitNoWorkspace(t, cfg.WorkDir)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("the workspace a killed agent left is still there: %v", err)
	}
}

// An agent whose token the server refuses stops at once, saying so.
func TestAgentRefusedTokenStops(t *testing.T) {
	srv := startServer(t)
	cfg := agentConfig(t, srv.URL, "fat_"+strings.Repeat("0", 64), "agent-1")
	a := startAgent(t, cfg)
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "refused the agent token") {
			t.Fatalf("Run returned %v", err)
		}
		if strings.Contains(a.out.String(), cfg.Token) {
			t.Fatalf("the agent logged its token:\n%s", a.out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an agent with a refused token did not stop")
	}
}

// An agent stopped (SIGSTOP) past its attempt's lease finds the attempt lost when it goes on:
// it kills the job's processes and sends nothing more of it.
func TestAgentLostAttemptIsKilled(t *testing.T) {
	srv := startServerWith(t, func(cfg *config.Config) { cfg.LeaseTTL = 2 * time.Second })
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-lost")
	cmd, out := agentProcess(t, cfg)
	pipeline(t, c, "lost", `i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done`)
	id := startRun(t, c, "lost")
	waitLog(t, c, id, "tick 5\n")
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, c, id, 20*time.Second, ended)
	if r.Status != run.Failed {
		t.Fatalf("the run of a stopped agent ended %s, want failed (runner_lost)", r.Status)
	}
	before := runLog(t, c, id)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "no longer live") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not notice its attempt was lost:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitNoWorkspace(t, cfg.WorkDir) // it goes once the job's processes are dead
	time.Sleep(500 * time.Millisecond)
	if after := runLog(t, c, id); after != before {
		t.Fatalf("the lost attempt's log grew after the job was rescued:\nbefore %q\nafter  %q", before[max(0, len(before)-200):], after[max(0, len(after)-200):])
	}
	if strings.Contains(out.String(), "job finished") {
		t.Fatalf("the agent finished a lost job:\n%s", out.String())
	}
}

// workspaces lists the job workspaces (and HOMEs) in an agent's work folder, without the
// executor's folders kept for the next jobs.
func workspaces(workDir string) []string {
	entries, _ := os.ReadDir(filepath.Join(workDir, "workspaces"))
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// A token revoked while its agent runs a job: the agent's next call is refused, it kills the
// job and stops with an error saying so; the server canceled the job's attempt.
func TestAgentRevokedTokenKillsItsJobs(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("doomed"), "agent-1")
	a := startAgent(t, cfg)
	pipeline(t, c, "revoked", `echo started; sleep 60; echo done`)
	id := startRun(t, c, "revoked")
	waitLog(t, c, id, "started")
	srv.api("DELETE", "/api/v1/agent-tokens/doomed", nil, nil)
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "refused the agent token") {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("an agent whose token was revoked did not stop")
	}
	r := waitRun(t, c, id, 10*time.Second, ended)
	if r.Status == run.Success || strings.Contains(runLog(t, c, id), "done\n") {
		t.Fatalf("the job of a revoked agent ended %s:\n%s", r.Status, runLog(t, c, id))
	}
	waitNoWorkspace(t, cfg.WorkDir)
}

// waitNoWorkspace waits until no job workspace is left in the agent's work folder.
func waitNoWorkspace(t *testing.T, workDir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := workspaces(workDir)
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspaces left after the job: %v", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A job with an image runs on the agent in a Docker container, as on a server, and its
// container is gone when it ends.
func TestAgentRunsContainerJobs(t *testing.T) {
	dc := dockertest.Client(t)
	srv := startServer(t)
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-docker")
	startAgent(t, cfg)
	yaml := `name: boxed
stages:
  - name: build
    jobs:
      - name: work
        image: ` + dockertest.Image + `
        steps:
          - name: work
            run: 'echo "in $(cat /etc/hostname | wc -c) ws=$FLOWD_WORKSPACE pwd=$(pwd)"; ls /bin/busybox'
`
	if _, err := c.PipelineCreate(t.Context(), []byte(yaml)); err != nil {
		t.Fatal(err)
	}
	id := startRun(t, c, "boxed")
	log := succeeded(t, c, id, 60*time.Second)
	for _, want := range []string{"ws=/workspace pwd=/workspace\n", "/bin/busybox\n", "⬢ container " + dockertest.Image + " ready in"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := dc.ContainerList(t.Context(), dockerclient.ContainerListOptions{All: true,
			Filters: make(dockerclient.Filters).Add("label", executor.LabelNode+"="+cfg.Name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job's container is left: %d containers of node %s", len(list.Items), cfg.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An agent killed (kill -9) mid-job and started again on its work folder: the job is settled
// at once (failed as runner_lost), and the step left running and the workspace are gone.
func TestAgentKilledAndRestarted(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-crash")
	cmd, _ := agentProcess(t, cfg)
	pipeline(t, c, "crash", `echo started; sleep 3007123; echo done`)
	id := startRun(t, c, "crash")
	waitLog(t, c, id, "started")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	start := time.Now()
	agentProcess(t, cfg)
	r := waitRun(t, c, id, 20*time.Second, ended)
	if r.Status != run.Failed || !strings.Contains(r.Stages[0].Jobs[0].Message, "runner_lost") {
		t.Fatalf("the job of a killed agent ended %s (%q)", r.Status, r.Stages[0].Jobs[0].Message)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the job was settled %v after the agent started again, not at its register", d)
	}
	waitNoWorkspace(t, cfg.WorkDir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "sleep 3007123").Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed agent's step is still running: pids %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An agent runs its capacity of jobs at once, no more, one after another for as long as there
// are jobs; drained then, it stops at once.
func TestAgentRunsManyJobsWithinItsCapacity(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	a := startAgent(t, agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1")) // capacity 2
	pipeline(t, c, "many", `sleep 0.4; echo ok`)
	var ids []int64
	for range 7 {
		ids = append(ids, startRun(t, c, "many"))
	}
	type span struct{ from, to time.Time }
	var spans []span
	for _, id := range ids {
		succeeded(t, c, id, 60*time.Second)
		r, err := c.RunGet(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		j := r.Stages[0].Jobs[0]
		spans = append(spans, span{*j.StartedAt, *j.FinishedAt})
	}
	most := 0
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if !o.from.After(s.from) && o.to.After(s.from) {
				n++
			}
		}
		most = max(most, n)
	}
	if most != 2 {
		t.Errorf("at most %d jobs ran at once on an agent of capacity 2", most)
	}
	a.drain()
	select {
	case err := <-a.done:
		a.done <- err
		if err != nil {
			t.Fatalf("the drained agent returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle agent did not stop when drained")
	}
}

// While the server is away, a job that prints more than the agent's --log-buffer is held
// back (its output waits) rather than filling the disk or losing bytes; once the server is
// back the whole log arrives, byte for byte.
func TestAgentLogBufferBoundWhileServerAway(t *testing.T) {
	srv := startServer(t)
	c := srv.admin()
	cfg := agentConfig(t, srv.URL, srv.agentToken("t1"), "agent-1")
	cfg.LogBuffer = 1 << 20
	startAgent(t, cfg)
	const lines = 150000 // about 8 MiB
	pipeline(t, c, "away", "sleep 1; "+lineScript(lines, lines, "0"))
	id := startRun(t, c, "away")
	waitLog(t, c, id, "▶ work\n")
	srv.stop()
	time.Sleep(3 * time.Second) // the job prints meanwhile, until the bound holds it back
	files, _ := filepath.Glob(filepath.Join(cfg.WorkDir, "logs", "*.log"))
	if len(files) != 1 {
		t.Fatalf("log buffers: %v", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log buffer after 3 s with the server away: %d bytes", fi.Size())
	if fi.Size() > 6<<20 {
		t.Errorf("with the server away the buffer grew to %d bytes (bound 1 MiB, and one batch past it)", fi.Size())
	}
	srv.start()
	c = srv.admin()
	checkLines(t, succeeded(t, c, id, 90*time.Second), lines)
}
