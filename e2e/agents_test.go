package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests of `flowd agent` (issue 13) over real processes: a server, agents started as the
// README says, and the agent protocol over real HTTP.

// agentProc is one `flowd agent` process.
type agentProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	Name string
	out  *syncBuffer
	done chan error
	args []string
}

// agentToken creates an agent token named name through the CLI, as a global admin would, and
// returns it.
func (s *server) agentToken(admin, name string, extra ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(admin, append([]string{"agent-token", "create", "--name", name}, extra...)...)
	if code != 0 {
		s.t.Fatalf("flowd agent-token create: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "fat_") {
			return f
		}
	}
	s.t.Fatalf("flowd agent-token create printed no token:\n%s", out)
	return ""
}

// startAgent starts `flowd agent` against s with token, named name, with its own work folder,
// and waits until it registered (its first claim).
func startAgent(t *testing.T, s *server, token, name string, extra ...string) *agentProc {
	t.Helper()
	// Under a public folder: the agent's step users must pass through to their workspaces.
	dir, err := os.MkdirTemp("/var/tmp", "flowd-e2e-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each agent a step uid range of its own, as each server (see stepUIDs).
	args := append([]string{"agent", "--server", s.URL, "--token-file", tokenFile, "--name", name,
		"--work-dir", filepath.Join(dir, "work"), "--step-user", stepUIDs(dir)}, extra...)
	a := &agentProc{t: t, Name: name, args: args}
	a.start()
	return a
}

func (a *agentProc) start() {
	t := a.t
	t.Helper()
	cmd := exec.Command(flowdBin, a.args...)
	cmd.Env = baseEnv(t)
	a.out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cmd, a.done = cmd, make(chan error, 1)
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			_ = cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent %s output:\n%s", a.Name, a.out.String())
		}
	})
	waitFor(t, "agent "+a.Name+" to register", func() bool {
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("agent %s exited: %v\n%s", a.Name, err, a.out.String())
		default:
		}
		return strings.Contains(a.out.String(), "registered")
	})
}

// crash kills the agent with SIGKILL.
func (a *agentProc) crash() {
	_ = a.cmd.Process.Kill()
	<-a.done
}

// agentsNamed lists the agent rows of the nodes API named name.
func (s *server) agentRows(admin, name string) int {
	s.t.Helper()
	var out struct {
		Nodes []struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"nodes"`
	}
	if code := s.api(admin, "GET", "/api/v1/nodes", nil, &out); code != 200 {
		s.t.Fatalf("GET /api/v1/nodes: %d", code)
	}
	n := 0
	for _, x := range out.Nodes {
		if x.Kind == "agent" && x.Name == name {
			n++
		}
	}
	return n
}

// TestAgentSeedStory: a server that runs no job itself (--executors 0) and one agent started
// as the README says: the variable webhook `{"abc":"456"}` prints 456 in a job that ran on the
// agent, and the run's answer names the agent.
func TestAgentSeedStory(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn, "--executors", "0")
			admin := srv.token("admin", adminPassword)
			token := srv.agentToken(admin, "build-1")
			startAgent(t, srv, token, "build-1", "--capacity", "2")
			hook := srv.enableHook(admin, `name: hello
variables:
  abc: "123"
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: hello
            run: echo "abc=$abc on $(hostname)"
`, "hello", "")
			status, a, _ := post(t, hook, `{"abc":"456"}`)
			if status != 202 || a.Run == nil {
				t.Fatalf("webhook: %d %+v", status, a)
			}
			r, log := srv.endedRun(admin, a.Run.ID)
			if r.Status != "success" || !strings.Contains(log, "abc=456 on ") {
				t.Fatalf("run %s %q\n%s", r.Status, r.Message, log)
			}
			ra := srv.runAttempts(admin, a.Run.ID)
			if att, ok := ra.job().current(); !ok || att.Node != "build-1" || !strings.HasPrefix(att.Runner, "build-1/") {
				t.Errorf("the job's attempt: %s, want it run by agent build-1", ra)
			}
		})
	}
}

// TestAgentKilled: kill -9 of an agent mid-job fails the job as runner_lost within the lease
// and one sweep; the agent started again keeps one row.
func TestAgentKilled(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "0", "--lease-ttl", shortLease)
	admin := srv.token("admin", adminPassword)
	token := srv.agentToken(admin, "a1")
	agent := startAgent(t, srv, token, "a1")
	srv.createPipeline(admin, oneJob("slow", 0, "echo started; sleep 600"))
	id := srv.startRun(admin, "slow")
	waitFor(t, "the step to start", func() bool { return strings.Contains(srv.log(admin, id), "started\n") })
	agent.crash()
	took := waitWithin(t, "the job to fail as runner_lost", rescueLimit, func() bool { return terminal(srv.gitRun(admin, id).Status) })
	r, log := srv.endedRun(admin, id)
	t.Logf("killed agent: the run ended %s after %v", r.Status, took.Round(10*time.Millisecond))
	if r.Status != "failed" || !strings.Contains(log, "runner_lost") {
		t.Errorf("run %s %q, want failed with runner_lost\n%s", r.Status, r.Message, log)
	}
	agent.start()
	agent.crash()
	agent.start()
	if n := srv.agentRows(admin, "a1"); n != 1 {
		t.Errorf("agent a1 has %d rows after three starts, want 1", n)
	}
	// And the agent still runs jobs.
	srv.createPipeline(admin, oneJob("quick", 0, "echo quick-done"))
	if r, log := srv.endedRun(admin, srv.startRun(admin, "quick")); r.Status != "success" || !strings.Contains(log, "quick-done") {
		t.Errorf("after the restarts: run %s\n%s", r.Status, log)
	}
}

// TestAgentCancelGrace: cancel reaches a job on an agent; its step traps SIGTERM and has a
// background child: the child gets SIGTERM, then everything is killed after the job's
// cancel_grace; the run is canceled and no process of the step is left.
func TestAgentCancelGrace(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "0")
	admin := srv.token("admin", adminPassword)
	startAgent(t, srv, srv.agentToken(admin, "c1"), "c1")
	marker := fmt.Sprintf("agent-cancel-%d", time.Now().UnixNano())
	t.Cleanup(func() { killProcesses(marker) })
	// Both the step's shell and its background child catch SIGTERM, say so and go on: only the
	// SIGKILL after the job's cancel_grace (3 s, not the agent's default 10 s) ends them.
	srv.createPipeline(admin, `name: trap
stages:
  - name: work
    jobs:
      - name: work
        cancel_grace: 3s
        steps:
          - name: work
            run: |
              sh -c 'trap "echo child got TERM" TERM; while :; do sleep 0.1 || true; done' `+marker+` &
              trap 'echo parent got TERM' TERM
              echo started
              while :; do sleep 0.1 || true; done
`)
	id := srv.startRun(admin, "trap")
	waitFor(t, "the step to start", func() bool { return strings.Contains(srv.log(admin, id), "started\n") })
	begin := time.Now()
	if code := srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), nil, nil); code != 200 && code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	r, log := srv.endedRun(admin, id)
	took := time.Since(begin)
	t.Logf("canceled after %v", took.Round(10*time.Millisecond))
	if r.Status != "canceled" || !strings.Contains(log, "child got TERM") || !strings.Contains(log, "parent got TERM") {
		t.Errorf("run %s %q, want canceled with both TERM lines\n%s", r.Status, r.Message, log)
	}
	if took < 2500*time.Millisecond || took > 9*time.Second {
		t.Errorf("the job ended %v after the cancel: its processes were not given the job's 3 s grace", took)
	}
	waitFor(t, "the step's processes to be gone", func() bool { return !processAlive(marker) })
}

// TestAgentRevoked: revoking an agent's token stops its next call with 401 and cancels its
// running attempt; the agent exits saying so.
func TestAgentRevoked(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "0")
	admin := srv.token("admin", adminPassword)
	agent := startAgent(t, srv, srv.agentToken(admin, "r1"), "r1")
	srv.createPipeline(admin, oneJob("slow", 0, "echo started; sleep 600"))
	id := srv.startRun(admin, "slow")
	waitFor(t, "the step to start", func() bool { return strings.Contains(srv.log(admin, id), "started\n") })
	if out, errOut, code := srv.cli(admin, "agent-token", "revoke", "r1"); code != 0 {
		t.Fatalf("flowd agent-token revoke: exit %d\n%s%s", code, out, errOut)
	}
	r, _ := srv.endedRun(admin, id)
	if r.Status != "canceled" {
		t.Errorf("the revoked agent's run is %s %q, want canceled", r.Status, r.Message)
	}
	select {
	case err := <-agent.done:
		agent.done <- err
		if err == nil {
			t.Error("the agent exited 0 after its token was revoked")
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the agent did not exit after its token was revoked:\n%s", agent.out.String())
	}
	if out := agent.out.String(); !strings.Contains(out, "revoked") && !strings.Contains(out, "401") {
		t.Errorf("the agent did not say its token was refused:\n%s", agent.out.String())
	}
}

// pause stops the agent with SIGSTOP (a machine that hangs, a network cut off); resume
// continues it.
func (a *agentProc) pause() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agentProc) resume() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		a.t.Fatal(err)
	}
}

// TestAgentPartition: an agent stopped (SIGSTOP) past its lease while it runs a job that asks
// for a retry: the job runs again on the other agent. When the stopped agent continues, its
// calls are refused (409), it kills attempt 1's processes, and attempt 2's log holds nothing of
// attempt 1 after the rescue.
func TestAgentPartition(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "0", "--lease-ttl", shortLease)
	admin := srv.token("admin", adminPassword)
	token := srv.agentToken(admin, "pool")
	first := startAgent(t, srv, token, "p1")
	marker := fmt.Sprintf("agent-partition-%d", time.Now().UnixNano())
	t.Cleanup(func() { killProcesses(marker) })
	dir, err := os.MkdirTemp("/var/tmp", "flowd-e2e-partition-") // the step users of both agents make the mark
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv.createPipeline(admin, oneJob("tick", 1, fmt.Sprintf(`
if mkdir %s 2>/dev/null; then
  exec sh -c 'i=0; while :; do i=$((i+1)); echo "attempt-one-tick-$i"; sleep 0.05; done' %s
fi
echo "attempt two ran"`, filepath.Join(dir, "first"), marker)))
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	id := srv.startRun(admin, "tick")
	waitFor(t, "attempt 1 to tick", func() bool { return strings.Contains(srv.log(admin, id), "attempt-one-tick-3") })
	first.pause()
	startAgent(t, srv, token, "p2")
	took := waitWithin(t, "attempt 2 to run on p2", rescueLimit, func() bool { return terminal(srv.gitRun(admin, id).Status) })
	r, log := srv.endedRun(admin, id)
	t.Logf("p1 stopped: the run ended %s after %v", r.Status, took.Round(10*time.Millisecond))
	if r.Status != "success" || !strings.Contains(log, "attempt two ran") {
		t.Fatalf("run %s %q, want success by attempt 2\n%s", r.Status, r.Message, log)
	}
	ra := srv.runAttempts(admin, id)
	if j := ra.job(); len(j.Attempts) != 2 || j.Attempts[0].State != "lost" || j.Attempts[1].Node != "p2" {
		t.Errorf("attempts: %s, want attempt 1 lost and attempt 2 on p2", ra)
	}
	first.resume()
	waitFor(t, "p1 to kill attempt 1's processes", func() bool { return !processAlive(marker) })
	time.Sleep(2 * time.Second) // p1's late calls, refused
	after := srv.log(admin, id)
	rescue := strings.Index(after, "runner_lost")
	if rescue < 0 {
		t.Fatalf("no runner_lost line in the log:\n%s", after)
	}
	if strings.Contains(after[rescue:], "attempt-one-tick-") {
		t.Errorf("lines of attempt 1 were stored after the rescue:\n%s", after)
	}
	if after != log {
		t.Errorf("the log changed after the run ended:\nbefore:\n%s\nafter:\n%s", log, after)
	}
}

// TestAgentServerRestart: the server is stopped and started again while an agent's job prints;
// the job finishes on the agent, and its result and every line of its log are stored.
func TestAgentServerRestart(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	args := []string{"--executors", "0"}
	srv := startServer(t, data, dsn, args...)
	admin := srv.token("admin", adminPassword)
	startAgent(t, srv, srv.agentToken(admin, "s1"), "s1")
	srv.createPipeline(admin, oneJob("count", 0, `for i in $(seq 1 100); do echo "line $i"; sleep 0.05; done`))
	id := srv.startRun(admin, "count")
	waitFor(t, "the job to print", func() bool { return strings.Contains(srv.log(admin, id), "line 5\n") })
	srv.crash()
	// The agent's calls fail meanwhile and are retried; the server comes back where it calls.
	time.Sleep(time.Second)
	srv2 := startServer(t, data, dsn, append(args, "--addr", strings.TrimPrefix(srv.URL, "http://"))...)
	r, log := srv2.endedRun(admin, id)
	if r.Status != "success" {
		t.Fatalf("run %s %q after the server's restart\n%s", r.Status, r.Message, log)
	}
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if !strings.Contains(log, want.String()) {
		t.Errorf("the log lacks lines or has them twice:\n%s", log)
	}
}

// TestUIAgents: on the Nodes page a global admin creates an agent token (shown once), an agent
// started with it is listed with its labels, Pause and Resume change it, and Revoke stops it.
func TestUIAgents(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "0")
	requireUI(t, srv)
	admin := srv.token("admin", adminPassword)

	b := newBrowser(t, srv.URL)
	b.signIn("admin", adminPassword)
	b.open("/admin/nodes")
	b.waitJS("the agent token list", `document.querySelector('#agent-token-list td') !== null && !document.querySelector('#agent-token-list').innerText.includes('Loading')`)
	b.fill(`#agent-token-add input[name=name]`, "ui-agent")
	b.fill(`#agent-token-add input[name=labels]`, "os=linux")
	b.click(`#agent-token-add button[type=submit]`)
	b.waitJS("the new token", `document.querySelector('#agent-token-value') !== null`)
	token := b.str(`document.querySelector('#agent-token-value').value`)
	if !strings.HasPrefix(token, "fat_") || len(token) != 68 {
		t.Fatalf("the page showed %q as the new agent token", token)
	}
	b.waitJS("the token's row", `document.querySelector('#agent-token-list tr[data-agent-token="ui-agent"]') !== null`)
	if row := b.str(`document.querySelector('#agent-token-list tr[data-agent-token="ui-agent"]').innerText`); !containsAll(row, "ui-agent", "os=linux", "Revoke") {
		t.Errorf("the token's row reads %q", row)
	}

	agent := startAgent(t, srv, token, "ui-agent-1", "--labels", "os=linux")
	b.open("/admin/nodes")
	b.waitJS("the agent's row", `document.querySelector('#node-list tr[data-node="ui-agent-1"]') !== null`)
	if row := b.str(`document.querySelector('#node-list tr[data-node="ui-agent-1"]').innerText`); !containsAll(row, "agent", "os=linux", "capacity", "live", "Pause") {
		t.Errorf("the agent's row reads %q", row)
	}
	b.click(`#node-list tr[data-node="ui-agent-1"] button[data-action=pause]`)
	b.waitJS("the agent paused", `document.querySelector('#node-list tr[data-node="ui-agent-1"] button[data-action=resume]') !== null`)
	var agents struct {
		Agents []struct {
			Name   string `json:"name"`
			Paused bool   `json:"paused"`
		} `json:"agents"`
	}
	if code := srv.api(admin, "GET", "/api/v1/agents", nil, &agents); code != 200 || len(agents.Agents) != 1 || !agents.Agents[0].Paused {
		t.Errorf("after Pause: %d %+v, want ui-agent-1 paused", code, agents)
	}
	b.click(`#node-list tr[data-node="ui-agent-1"] button[data-action=resume]`)
	b.waitJS("the agent resumed", `document.querySelector('#node-list tr[data-node="ui-agent-1"] button[data-action=pause]') !== null`)

	b.acceptConfirms()
	b.click(`#agent-token-list tr[data-agent-token="ui-agent"] button`)
	b.waitJS("the token revoked", `document.querySelector('#agent-token-list tr[data-agent-token="ui-agent"]').innerText.includes('revoked')`)
	select {
	case err := <-agent.done:
		agent.done <- err
	case <-time.After(20 * time.Second): // less than a claim's 30 s wait: the waiting claim is answered at once
		t.Errorf("the agent did not stop after its token was revoked in the page:\n%s", agent.out.String())
	}
}

// switchProxy is a load balancer in front of a cluster: it forwards every request to the server
// it points at now.
type switchProxy struct {
	mu     sync.Mutex
	target *url.URL
}

func (p *switchProxy) point(raw string) {
	u, _ := url.Parse(raw)
	p.mu.Lock()
	p.target = u
	p.mu.Unlock()
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}

// TestAgentServerTakeover: two servers on one PostgreSQL behind a load balancer; the one the
// agent's calls reach is killed mid-job and the balancer sends them to the other: the job
// finishes on the agent, with its result and every line of its log stored.
func TestAgentServerTakeover(t *testing.T) {
	t.Parallel()
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
	c := startCluster(t, nodeSpec{Name: "lb-a" + suffix, Args: []string{"--executors", "0"}},
		nodeSpec{Name: "lb-b" + suffix, Args: []string{"--executors", "0"}})
	a, b := c.Nodes[0], c.Nodes[1]
	lb := &switchProxy{}
	lb.point(a.URL)
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	entry := &server{t: t, URL: front.URL}
	startAgent(t, entry, a.agentToken(c.Admin, "lb"), "lb-agent"+suffix)
	a.createPipeline(c.Admin, oneJob("count", 0, `for i in $(seq 1 100); do echo "line $i"; sleep 0.05; done`))
	id, err := startRun(a.URL, c.Admin, "count")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to print", func() bool { return strings.Contains(a.log(c.Admin, id), "line 5\n") })
	a.crash()
	lb.point(b.URL)
	r, log := b.endedRun(c.Admin, id)
	if r.Status != "success" {
		t.Fatalf("run %s %q after the takeover\n%s", r.Status, r.Message, log)
	}
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if !strings.Contains(log, want.String()) {
		t.Errorf("the log lacks lines or has them twice:\n%s", log)
	}
}
