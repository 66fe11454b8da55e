package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/store/storetest"
)

// syncBuffer is an io.Writer the test reads while Run writes.
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

// startServer runs flowd serve (Run) with --executors 0 on dsn until the test ends (or stop)
// and returns its URL.
func startServer(t *testing.T, dsn, name string) (url string, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Database, cfg.NodeName = "127.0.0.1:0", t.TempDir(), dsn, name
	cfg.Workspaces = t.TempDir()
	cfg.Executors, cfg.StepUser, cfg.AdminPassword = 0, "none", "admin-password-1"
	cfg.SecretKey = strings.Repeat("ab", 32)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, storetest.Logger(t), out) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, url, ok := strings.Cut(out.String(), "flowd is listening on "); ok {
			return strings.TrimSpace(strings.SplitN(url, "\n", 2)[0]), stop
		}
		select {
		case err := <-done:
			t.Fatalf("server %s stopped: %v\n%s", name, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("server %s did not listen within 30 s:\n%s", name, out.String())
	return "", nil
}

// call makes a JSON call and decodes the answer into out (when not nil); it returns the status.
func call(t *testing.T, method, url, bearer string, basic []string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	if s, ok := in.(string); ok {
		body = strings.NewReader(s)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case basic != nil:
		req.SetBasicAuth(basic[0], basic[1])
	case bearer != "":
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if _, ok := in.(string); ok {
		req.Header.Set("Content-Type", "application/yaml")
	} else if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNoContent {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// TestAgentClaimWokenAcrossServers: two servers with --executors 0 on one PostgreSQL database;
// a claim waiting on server b is answered within a second of a run queued on server a (the
// scheduler's wake-up travels as a NOTIFY and wakes b's waiting claims), and neither server
// runs the job itself.
func TestAgentClaimWokenAcrossServers(t *testing.T) {
	t.Parallel()
	dsn := storetest.DSN(t, "postgres")
	a, _ := startServer(t, dsn, "server-a")
	b, stopB := startServer(t, dsn, "server-b")

	var login struct {
		Token string `json:"token"`
	}
	if code := call(t, "POST", a+"/api/v1/tokens", "", []string{"admin", "admin-password-1"}, map[string]string{"name": "t"}, &login); code != http.StatusCreated {
		t.Fatalf("sign in: %d", code)
	}
	pipe := "name: hello\nstages:\n  - name: build\n    jobs:\n      - name: say\n        steps:\n          - name: echo\n            run: echo hi\n"
	if code := call(t, "POST", a+"/api/v1/pipelines", login.Token, nil, pipe, nil); code != http.StatusCreated {
		t.Fatalf("create pipeline: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := call(t, "POST", a+"/api/v1/agent-tokens", login.Token, nil, map[string]any{"name": "build-1"}, &tok); code != http.StatusCreated {
		t.Fatalf("create agent token: %d", code)
	}
	var reg struct {
		Agent struct {
			ID int64 `json:"id"`
		} `json:"agent"`
	}
	if code := call(t, "POST", b+"/api/agent/v1/register", tok.Token, nil, map[string]any{"name": "build-1",
		"instance": strings.Repeat("c", 32), "capacity": 1}, &reg); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	type claimed struct {
		Jobs []struct {
			RunID int64 `json:"run_id"`
		} `json:"jobs"`
	}
	// Each server's Listen connects and then tells its subscribers to look again; a first
	// claim that waits briefly lets both connect before the timed one.
	time.Sleep(500 * time.Millisecond)
	type result struct {
		code int
		out  claimed
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		var out claimed
		code := call(t, "POST", b+"/api/agent/v1/claim", tok.Token, nil, map[string]any{"agent_id": reg.Agent.ID, "free": 1, "wait_seconds": 25}, &out)
		done <- result{code, out, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // the claim waits on b
	queued := time.Now()
	var run struct {
		Run struct {
			ID int64 `json:"id"`
		} `json:"run"`
	}
	if code := call(t, "POST", a+"/api/v1/pipelines/hello/runs", login.Token, nil, nil, &run); code != http.StatusCreated {
		t.Fatalf("start run: %d", code)
	}
	res := <-done
	if res.code != http.StatusOK || len(res.out.Jobs) != 1 || res.out.Jobs[0].RunID != run.Run.ID {
		t.Fatalf("claim on b = %d %+v; want the run queued on a", res.code, res.out)
	}
	if d := res.at.Sub(queued); d > time.Second {
		t.Fatalf("the claim on b answered %v after the run was queued on a; want within a second", d)
	}
	t.Logf("claim on b answered %v after the run was queued on a", res.at.Sub(queued))
	var nodes struct {
		Nodes []struct {
			Name    string `json:"name"`
			Running []struct {
				Runner string `json:"runner"`
			} `json:"running"`
		} `json:"nodes"`
	}
	call(t, "GET", a+"/api/v1/nodes", login.Token, nil, nil, &nodes)
	held := map[string]int{}
	for _, n := range nodes.Nodes {
		held[n.Name] = len(n.Running)
	}
	if fmt.Sprint(held) != "map[build-1:1 server-a:0 server-b:0]" {
		t.Fatalf("jobs held = %v; want the agent's only", held)
	}

	// A server that stops answers its waiting claims at once (204) instead of waiting them out.
	go func() {
		code := call(t, "POST", b+"/api/agent/v1/claim", tok.Token, nil, map[string]any{"agent_id": reg.Agent.ID, "free": 1, "wait_seconds": 25}, nil)
		done <- result{code: code, at: time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	stopB()
	res = <-done
	if res.code != http.StatusNoContent || time.Since(start) > 5*time.Second {
		t.Fatalf("a claim waiting on a stopping server = %d after %v; want 204 at once", res.code, time.Since(start))
	}
}
