// Package e2e drives the real flowd binary over real HTTP, on SQLite and on PostgreSQL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store/storetest"
)

// flowdBin is the binary under test, built once by TestMain.
var flowdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	flowdBin = filepath.Join(dir, "flowd")
	build := exec.Command("go", "build", "-race", "-o", flowdBin, "../cmd/flowd")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build flowd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminPassword = "admin-password-e2e"

// dialects are the databases every end-to-end test runs on.
var dialects = []string{"sqlite", "postgres"}

// server is one `flowd serve` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string
	Data string
	DSN  string
	out  *syncBuffer
	done chan error
}

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

// newDatabase returns a data folder and a fresh database DSN for dialect.
func newDatabase(t *testing.T, dialect string) (data, dsn string) {
	t.Helper()
	data = t.TempDir()
	if dialect == "sqlite" {
		return data, "sqlite:" + filepath.Join(data, "flowd.db")
	}
	return data, storetest.DSN(t, dialect)
}

// trackSources reads every source file the binary under test is built from, once, while tests
// run: go test caches a package's result until a file its tests opened changes, and the binary
// is built by a separate `go build` whose reads the cache does not see. Without this, a change
// to the server could be tested with a cached pass.
var trackSources = sync.OnceValue(func() error {
	return filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "testdata" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".sql", ".html", ".js", ".css", ".mod", ".sum":
			_, err = os.ReadFile(path)
		}
		return err
	})
})

// startServer starts flowd serve on a free port and waits until it listens.
func startServer(t *testing.T, data, dsn string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, data, dsn, nil, args...)
}

// startServerEnv is startServer with env added to (and overriding) the server's environment.
func startServerEnv(t *testing.T, data, dsn string, env []string, args ...string) *server {
	t.Helper()
	if err := trackSources(); err != nil {
		t.Fatalf("read the sources: %v", err)
	}
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--database", dsn, "--step-user", stepUIDs(data)}, args...)
	cmd := exec.Command(flowdBin, all...)
	cmd.Env = append(append(baseEnv(t), "FLOWD_ADMIN_PASSWORD="+adminPassword), env...)
	s := launch(t, cmd)
	s.Data, s.DSN = data, dsn
	return s
}

// launch starts cmd, a `flowd serve`, and waits until it listens.
func launch(t *testing.T, cmd *exec.Cmd) *server {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.out
	// A test binary that dies (a timeout's panic) takes its servers with it, so none is left
	// running and holding its step uid range's lock.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.out, line)
			if _, after, ok := strings.Cut(line, "listening on "); ok {
				select {
				case urlCh <- strings.TrimSpace(after):
				default:
				}
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("flowd output:\n%s", s.out.String())
		}
	})
	select {
	case s.URL = <-urlCh:
	case err := <-s.done:
		t.Fatalf("flowd exited before listening: %v\n%s", err, s.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("flowd did not start listening:\n%s", s.out.String())
	}
	return s
}

// stepUIDs gives each data folder a uid range of its own (the same one when a server restarts
// on it), so that servers running at once never share step users.
func stepUIDs(data string) string {
	if os.Geteuid() != 0 {
		return "auto" // steps run as this user: only pipelines a global admin saved run
	}
	stepUIDsMu.Lock()
	defer stepUIDsMu.Unlock()
	r, ok := stepUIDsOf[data]
	if !ok {
		// Spread by process too: the lock of a range is machine-wide, and two test processes
		// (two packages' or two checkouts' e2e runs) may run at once.
		first := 1900000000 + 1600*(os.Getpid()%10000) + 16*len(stepUIDsOf)
		r = fmt.Sprintf("%d-%d", first, first+15)
		stepUIDsOf[data] = r
	}
	return r
}

var (
	stepUIDsMu sync.Mutex
	stepUIDsOf = map[string]string{}
)

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM, "SIGTERM")
}

// interrupt stops the server as Ctrl-C does and waits for a clean exit.
func (s *server) interrupt() {
	s.t.Helper()
	s.signal(os.Interrupt, "Ctrl-C")
}

func (s *server) signal(sig os.Signal, name string) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("flowd did not exit cleanly on %s: %v\n%s", name, err, s.out.String())
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("flowd did not stop on %s:\n%s", name, s.out.String())
	}
}

// crash kills the server with SIGKILL, as a power cut would.
func (s *server) crash() {
	s.t.Helper()
	_ = s.cmd.Process.Kill()
	<-s.done
}

func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
}

// token signs in as user and returns an API token.
func (s *server) token(user, password string) string {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 || out.Token == "" {
		s.t.Fatalf("POST /api/v1/tokens as %s: %d %v", user, resp.StatusCode, err)
	}
	return out.Token
}

// cli runs the flowd binary as a client of s with token.
func (s *server) cli(token string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return s.cliIn(token, "", args...)
}

func (s *server) cliIn(token, stdin string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowdBin, args...)
	cmd.Env = append(baseEnv(s.t), "FLOWD_SERVER="+s.URL, "FLOWD_TOKEN="+token)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			s.t.Fatalf("flowd %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// api sends a JSON (or raw) request and decodes a JSON answer into out (when not nil).
func (s *server) api(token, method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		ctype = "application/yaml"
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// runView is the part of a run the tests read.
type runView struct {
	ID          int64             `json:"id"`
	Number      int64             `json:"number"`
	Status      string            `json:"status"`
	Trigger     string            `json:"trigger"`
	TriggeredBy string            `json:"triggered_by"`
	Variables   map[string]string `json:"variables"`
	Message     string            `json:"message"`
	Stages      []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Jobs   []struct {
			Name      string     `json:"name"`
			Status    string     `json:"status"`
			StartedAt *time.Time `json:"started_at"`
			Steps     []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"steps"`
		} `json:"jobs"`
	} `json:"stages"`
}

func (s *server) run(token string, id int64) runView {
	s.t.Helper()
	var r runView
	if code := s.api(token, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &r); code != 200 {
		s.t.Fatalf("GET run %d: %d", id, code)
	}
	return r
}

func (s *server) log(token string, id int64) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/log", s.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processAlive reports whether a process whose command line contains marker exists.
func processAlive(marker string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			return true
		}
	}
	return false
}

// killProcesses kills every process whose command line contains marker (test clean-up).
func killProcesses(marker string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			continue
		}
		var pid int
		fmt.Sscan(e.Name(), &pid)
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// runShell runs a command line as a user would paste it into a shell.
func runShell(t *testing.T, line string) (string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = baseEnv(t)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
