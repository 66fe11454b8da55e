package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/app"
	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
)

// The tests run a real flowd server in this process (internal/app, SQLite) and the agent
// against it, in this process or as a process of its own (the test binary; see TestMain).

const adminPassword = "admin-password-agent-tests"

// agentProcessEnv makes the test binary an agent process (runAgentProcess).
const agentProcessEnv = "FLOWD_AGENT_TEST_PROCESS"

func TestMain(m *testing.M) {
	if executor.IsHelperCommand(os.Args) { // the test binary is the steps' shim
		executor.RunHelperCommand(os.Args)
	}
	if os.Getenv(agentProcessEnv) != "" {
		os.Exit(runAgentProcess())
	}
	retryBase, retryMax = 100*time.Millisecond, time.Second
	os.Exit(m.Run())
}

// runAgentProcess runs an agent as `flowd agent` does (signals included), configured by a
// JSON Config in FLOWD_AGENT_TEST_PROCESS.
func runAgentProcess() int {
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(agentProcessEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	retryBase, retryMax = 100*time.Millisecond, time.Second
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	drain, kill, stop := Signals(context.Background(), logger)
	defer stop()
	if err := Run(drain, kill, cfg, logger); err != nil {
		logger.Error("flowd agent stopped", "err", err)
		return 1
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var uidRanges atomic.Int64

// stepUIDs is a uid range of its own for each server and agent of this test process (their
// locks are machine-wide, and other packages' tests run at once), or "none" when not root.
func stepUIDs() string {
	if os.Geteuid() != 0 {
		return "none"
	}
	first := 1700000000 + 1600*(os.Getpid()%10000) + 16*int(uidRanges.Add(1))
	return fmt.Sprintf("%d-%d", first, first+15)
}

// publicDir is a new folder step users can pass through (t.TempDir's parents are private).
func publicDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testServer is a flowd server run in this process.
type testServer struct {
	t      *testing.T
	cfg    config.Config
	URL    string
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
	token  string // the admin's API token, once admin was called
}

// startServer starts a server on a fresh SQLite database.
func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, func(*config.Config) {})
}

// startServerWith starts a server on a fresh SQLite database, its settings changed by set.
func startServerWith(t *testing.T, set func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Workspaces = filepath.Join(publicDir(t, "flowd-agent-test-ws-"), "ws")
	cfg.StepUser = stepUIDs()
	cfg.Executors = 0 // jobs go to agents
	cfg.AdminPassword = adminPassword
	cfg.ShutdownGrace = 5 * time.Second
	set(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, cfg: cfg, out: &syncBuffer{}}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.out.String())
		}
	})
	return s
}

// start runs the server until stop, on the address of its last run if it had one.
func (s *testServer) start() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s.cancel, s.done = cancel, make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(s.out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := s.cfg
	go func() {
		err := app.Run(ctx, cfg, logger, pw)
		pw.Close()
		s.done <- err
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(s.out, sc.Text())
			if _, after, ok := strings.Cut(sc.Text(), "listening on "); ok {
				select {
				case urls <- strings.TrimSpace(after):
				default:
				}
			}
		}
	}()
	select {
	case u := <-urls:
		s.URL = u
		s.cfg.Addr = strings.TrimPrefix(u, "http://") // a restart listens on the same port
	case err := <-s.done:
		s.t.Fatalf("the server stopped before listening: %v\n%s", err, s.out.String())
	case <-time.After(30 * time.Second):
		s.t.Fatalf("the server did not listen:\n%s", s.out.String())
	}
}

// stop stops the server and waits for it.
func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("server: %v", err)
	}
	s.cancel = nil
}

// admin is an API client of the server signed in as admin.
func (s *testServer) admin() *client.Client {
	s.t.Helper()
	tok, err := client.New(s.URL, "", nil).Login(context.Background(), "admin", adminPassword, "agent-tests")
	if err != nil {
		s.t.Fatal(err)
	}
	s.token = tok.Token
	return client.New(s.URL, tok.Token, nil)
}

// agentToken creates an agent token through the API.
func (s *testServer) agentToken(name string) string {
	s.t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	s.api(http.MethodPost, "/api/v1/agent-tokens", map[string]any{"name": name}, &out)
	if !strings.HasPrefix(out.Token, "fat_") {
		s.t.Fatalf("agent token %q", out.Token)
	}
	return out.Token
}

// api makes one JSON call of the REST API as the admin.
func (s *testServer) api(method, path string, in, out any) {
	s.t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %s %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// pipeline saves a one-job pipeline whose step runs script.
func pipeline(t *testing.T, c *client.Client, name, script string) {
	t.Helper()
	yaml := fmt.Sprintf("name: %s\nstages:\n  - name: build\n    jobs:\n      - name: work\n        steps:\n          - name: work\n            run: %q\n", name, script)
	if _, err := c.PipelineCreate(context.Background(), []byte(yaml)); err != nil {
		t.Fatal(err)
	}
}

// startRun starts a run of pipeline.
func startRun(t *testing.T, c *client.Client, name string) int64 {
	t.Helper()
	r, _, err := c.RunCreate(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// waitRun waits until the run's status satisfies ok, and returns the run.
func waitRun(t *testing.T, c *client.Client, id int64, within time.Duration, ok func(*client.Run) bool) *client.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := c.RunGet(context.Background(), id)
		if err == nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: not as expected within %v: %+v (%v)", id, within, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ended(r *client.Run) bool { return r.Status.Terminal() }

// succeeded waits for the run to end, fails the test unless it succeeded, and returns its log.
func succeeded(t *testing.T, c *client.Client, id int64, within time.Duration) string {
	t.Helper()
	r := waitRun(t, c, id, within, ended)
	log := runLog(t, c, id)
	if r.Status != run.Success {
		t.Fatalf("run %s: %+v\n%s", r.Status, r.Stages, log)
	}
	return log
}

// waitLog waits until the run's log holds s.
func waitLog(t *testing.T, c *client.Client, id int64, s string) {
	t.Helper()
	waitRun(t, c, id, 30*time.Second, func(*client.Run) bool { return strings.Contains(runLog(t, c, id), s) })
}

func jobStatus(r *client.Run) run.Status {
	if len(r.Stages) == 0 || len(r.Stages[0].Jobs) == 0 {
		return ""
	}
	return r.Stages[0].Jobs[0].Status
}

// runLog is the stored log of a run.
func runLog(t *testing.T, c *client.Client, id int64) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Log(context.Background(), id, false, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// testAgent is an agent run in this process.
type testAgent struct {
	cfg         Config
	out         *syncBuffer
	drain, kill context.CancelFunc
	done        chan error
}

// agentConfig is the Config of an agent of s with token.
func agentConfig(t *testing.T, server, token, name string) Config {
	return Config{Server: server, Token: token, Name: name, Capacity: 2, StepUser: stepUIDs(),
		WorkDir: filepath.Join(publicDir(t, "flowd-agent-test-"), "work"), Version: "test"}
}

// startAgent runs an agent in this process until the test ends.
func startAgent(t *testing.T, cfg Config) *testAgent {
	t.Helper()
	a := &testAgent{cfg: cfg, out: &syncBuffer{}, done: make(chan error, 1)}
	drain, stopDrain := context.WithCancel(context.Background())
	kill, stopKill := context.WithCancel(context.Background())
	a.drain, a.kill = stopDrain, stopKill
	logger := slog.New(slog.NewTextHandler(a.out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { a.done <- Run(drain, kill, cfg, logger) }()
	t.Cleanup(func() {
		stopDrain()
		stopKill()
		select {
		case <-a.done:
		case <-time.After(60 * time.Second):
			t.Errorf("the agent did not stop")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", a.out.String())
		}
	})
	return a
}

// lineScript prints n numbered lines, pausing every batch lines for pause seconds.
func lineScript(n, batch int, pause string) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i of the job, with some text to make it longer"; i=$((i+1)); if [ $((i %% %d)) -eq 0 ]; then sleep %s; fi; done`, n, batch, pause)
}

// checkLines checks that log holds the job's first line, then exactly lines 0..n-1 of
// lineScript once each in order, then the step's result line.
func checkLines(t *testing.T, log string, n int) {
	t.Helper()
	var want strings.Builder
	want.WriteString("── build / work ──\n▶ work\n")
	for i := range n {
		fmt.Fprintf(&want, "line %d of the job, with some text to make it longer\n", i)
	}
	if !strings.HasPrefix(log, want.String()) {
		got := log
		i := firstDiff([]byte(got), []byte(want.String()))
		lo := max(0, i-80)
		t.Fatalf("the stored log (%d bytes) differs from the job's output at byte %d:\n got …%q\nwant …%q", len(log), i,
			got[lo:min(len(got), i+80)], want.String()[lo:min(want.Len(), i+80)])
	}
	rest := strings.TrimPrefix(log, want.String())
	if !strings.HasPrefix(rest, "✔ work (") || strings.Count(rest, "\n") != 1 {
		t.Fatalf("after the job's output the log holds %q", rest)
	}
}

// faultyProxy sits between an agent and a server and misbehaves on the log and finish calls:
// it drops the answer of every 3rd and of the first finish (the server did the call; the agent
// sees the connection break), sends every 4th twice, and before every 5th sends an older log
// call again.
type faultyProxy struct {
	target string
	srv    *http.Server
	URL    string

	mu       sync.Mutex
	n        int
	stale    *http.Request
	staleB   []byte
	finishes int
	// corrupt, when set, changes one byte of the first log call it sees (the server stores
	// what is not the agent's log: its finish finds the checksum wrong); corrupted counts it.
	corrupt   bool
	corrupted atomic.Int64
	dropped   atomic.Int64
	doubled   atomic.Int64
	replays   atomic.Int64
}

func startProxy(t *testing.T, target string) *faultyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{target: target, URL: "http://" + ln.Addr().String()}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// forward sends r with body to the target and returns the answer.
func (p *faultyProxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	faulty := strings.HasSuffix(r.URL.Path, "/log") || strings.HasSuffix(r.URL.Path, "/finish")
	var n int
	var stale *http.Request
	var staleBody []byte
	if faulty {
		p.mu.Lock()
		p.n++
		n = p.n
		stale, staleBody = p.stale, p.staleB
		if strings.HasSuffix(r.URL.Path, "/log") {
			p.stale, p.staleB = r.Clone(context.Background()), body
		}
		p.mu.Unlock()
	}
	if p.corrupt && strings.HasSuffix(r.URL.Path, "/log") && len(body) > 100 && p.corrupted.CompareAndSwap(0, 1) {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0x20
	}
	if p.corrupt {
		faulty = false // nothing else
	}
	if faulty && n%5 == 0 && stale != nil {
		p.replays.Add(1)
		p.forward(stale, staleBody) // an old request arrives late
	}
	if faulty && n%4 == 0 {
		p.doubled.Add(1)
		p.forward(r, body)
	}
	resp, data, err := p.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	finish := strings.HasSuffix(r.URL.Path, "/finish") && !p.corrupt
	if finish {
		p.mu.Lock()
		p.finishes++
		finish = p.finishes == 1
		p.mu.Unlock()
	}
	if faulty && n%3 == 0 || finish { // and the first finish's answer
		p.dropped.Add(1)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close() // the server did it; the answer is lost
			return
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(data)
}
