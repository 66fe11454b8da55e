package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/client"
)

// fakeServer plays docs/api.md for the CLI: just enough state for the commands under test.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string          // "METHOD /path?query body"
	auth     []string          // Authorization header of each request
	status   string            // final status of run 17
	logText  string            // log of run 17
	existing map[string]int64  // pipeline name → revision
	vars     map[string]string // variables of the last run created
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{status: "success", logText: "hello from step\n", existing: map[string]int64{}}
	mux := http.NewServeMux()
	apiErr := func(w http.ResponseWriter, status int, code, msg string, problems ...map[string]any) {
		e := map[string]any{"code": code, "message": msg}
		if problems != nil {
			e["problems"] = problems
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": e})
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	bearer := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer tok-alice" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			apiErr(w, 401, "unauthorized", "unknown or missing API token")
			return false
		}
		return true
	}
	mux.HandleFunc("POST /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret pw" {
			apiErr(w, 401, "unauthorized", "wrong username or password")
			return
		}
		reply(w, 201, map[string]any{"id": 1, "name": "cli", "token": "tok-alice", "username": "alice"})
	})
	mux.HandleFunc("GET /api/v1/pipelines", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			reply(w, 200, map[string]any{"pipelines": []map[string]any{{"name": "hello", "revision": 2, "role": "admin", "last_run": map[string]any{"id": 17, "number": 3, "status": "failed"}}}})
		}
	})
	pipelineBody := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/yaml" {
			apiErr(w, 415, "unsupported_media_type", "send YAML")
			return "", false
		}
		if strings.Contains(string(body), "stagez") {
			apiErr(w, 422, "invalid_pipeline", "the pipeline definition has 2 problems",
				map[string]any{"line": 3, "column": 1, "message": `unknown field "stagez"`},
				map[string]any{"line": 1, "column": 1, "message": "stages: at least one stage is required"})
			return "", false
		}
		return strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(body), "\n", 2)[0], "name:")), true
	}
	mux.HandleFunc("POST /api/v1/pipelines", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(w, r) {
			return
		}
		name, ok := pipelineBody(w, r)
		if !ok {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, taken := f.existing[name]; taken {
			apiErr(w, 409, "conflict", fmt.Sprintf("a pipeline named %q exists", name))
			return
		}
		f.existing[name] = 1
		reply(w, 201, map[string]any{"name": name, "revision": 1})
	})
	mux.HandleFunc("PUT /api/v1/pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(w, r) {
			return
		}
		if _, ok := pipelineBody(w, r); !ok {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.existing[r.PathValue("name")]++
		reply(w, 200, map[string]any{"name": r.PathValue("name"), "revision": f.existing[r.PathValue("name")]})
	})
	mux.HandleFunc("POST /api/v1/pipelines/{name}/runs", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(w, r) {
			return
		}
		if r.PathValue("name") != "hello" {
			apiErr(w, 404, "not_found", fmt.Sprintf("no pipeline %q (or you are no member of it)", r.PathValue("name")))
			return
		}
		var in struct{ Variables map[string]string }
		json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		f.vars = in.Variables
		f.mu.Unlock()
		var ignored []string
		for k := range in.Variables {
			if k != "abc" {
				ignored = append(ignored, k)
			}
		}
		reply(w, 201, map[string]any{"run": map[string]any{"id": 17, "number": 3, "pipeline": "hello", "status": "queued", "url": "http://flowd.test/runs/17", "api_url": "http://flowd.test/api/v1/runs/17"}, "ignored": ignored})
	})
	mux.HandleFunc("GET /api/v1/pipelines/{name}/runs", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			runs := []map[string]any{
				{"id": 17, "number": 3, "pipeline": "hello", "status": "failed", "trigger": "webhook", "triggered_by": "alice", "created_at": "2026-01-02T03:04:05Z", "started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:05:07Z"},
				{"id": 12, "number": 2, "pipeline": "hello", "status": "queued", "trigger": "manual", "triggered_by": "bob", "created_at": "2026-01-01T03:04:05Z"},
			}
			if before, _ := strconv.Atoi(r.URL.Query().Get("before")); before > 0 {
				runs = slices.DeleteFunc(runs, func(rn map[string]any) bool { return rn["number"].(int) >= before })
			}
			if limit, _ := strconv.Atoi(r.URL.Query().Get("limit")); limit > 0 && limit < len(runs) {
				runs = runs[:limit]
			}
			reply(w, 200, map[string]any{"runs": runs, "next_before": 2})
		}
	})
	mux.HandleFunc("GET /api/v1/runs/17", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(w, r) {
			return
		}
		f.mu.Lock()
		st := f.status
		f.mu.Unlock()
		reply(w, 200, map[string]any{"id": 17, "number": 3, "pipeline": "hello", "status": st, "trigger": "manual", "triggered_by": "alice",
			"started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:04:09Z", "message": map[bool]string{true: "", false: "job say failed"}[st == "success"],
			"stages": []map[string]any{{"name": "build", "status": st, "jobs": []map[string]any{{"id": 5, "name": "say", "status": st, "attempt": 2, "container": map[string]any{"image": "golang:1.26"},
				"attempts": []map[string]any{{"number": 1, "runner": "ci-a/1", "node": "ci-a", "state": "lost"}, {"number": 2, "runner": "ci-b/3", "node": "ci-b", "state": "finished"}},
				"steps":    []map[string]any{{"id": 9, "name": "echo", "status": st, "exit_code": 0}, {"id": 10, "name": "never", "status": "skipped", "exit_code": nil}}}}}}})
	})
	mux.HandleFunc("GET /api/v1/runs/17/log", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, f.logText)
		}
	})
	mux.HandleFunc("POST /api/v1/runs/17/cancel", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			reply(w, 200, map[string]any{"id": 17, "number": 3, "pipeline": "hello", "status": "canceled"})
		}
	})
	mux.HandleFunc("GET /api/v1/pipelines/hello", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			reply(w, 200, map[string]any{"name": "hello", "description": "Say hello", "revision": 2, "role": "admin", "created_by": "alice",
				"yaml":      "name: hello\nvariables:\n  API_KEY: {secret: true, default: \"***\"}\n",
				"variables": []map[string]any{{"name": "abc", "default": "123", "options": []string{"123", "456"}}, {"name": "API_KEY", "secret": true}},
				"stages":    []map[string]any{{"name": "build", "jobs": []map[string]any{{"name": "say", "image": "golang:1.26", "steps": []string{"echo", "done"}}}}}})
		}
	})
	mux.HandleFunc("GET /api/v1/pipelines/hello/members", func(w http.ResponseWriter, r *http.Request) {
		if bearer(w, r) {
			reply(w, 200, map[string]any{"members": []map[string]any{{"username": "alice", "role": "admin"}, {"username": "bob", "role": "viewer"}}})
		}
	})
	mux.HandleFunc("POST /api/v1/users", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		if bearer(w, r) && json.NewDecoder(r.Body).Decode(&in) == nil {
			reply(w, 201, map[string]any{"username": in["username"], "admin": in["admin"] == true})
		}
	})
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		line := r.Method + " " + r.URL.RequestURI()
		if len(body) > 0 {
			line += " " + string(body)
		}
		f.mu.Lock()
		f.requests = append(f.requests, line)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	f.Server = httptest.NewServer(record)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// result is what one CLI invocation did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI with env as its whole environment (so tests can run in parallel).
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut strings.Builder
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }, hc: http.DefaultClient}
	code := c.dispatch(context.Background(), args)
	t.Logf("flowd %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return result{code, out.String(), errOut.String()}
}

// loggedIn returns an environment that reaches f with alice's token.
func loggedIn(t *testing.T, f *fakeServer) map[string]string {
	return map[string]string{"FLOWD_SERVER": f.URL, "FLOWD_TOKEN": "tok-alice", "XDG_CONFIG_HOME": t.TempDir()}
}

func TestHelpAndUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		code       int
		stdout     string // a part of stdout
		stderr     string // a part of stderr
		stderrNone bool
	}{
		{args: []string{"--help"}, code: 0, stdout: "pipeline   create, update", stderrNone: true},
		{args: []string{"-h"}, code: 0, stdout: "Usage: flowd COMMAND"},
		{args: []string{"help"}, code: 0, stdout: "Usage: flowd COMMAND"},
		{args: nil, code: 2, stderr: "Usage: flowd COMMAND"},
		{args: []string{"help", "run"}, code: 0, stdout: "Usage: flowd run PIPELINE"},
		{args: []string{"help", "pipeline", "apply"}, code: 0, stdout: "Usage: flowd pipeline apply -f FILE"},
		{args: []string{"pipeline", "--help"}, code: 0, stdout: "apply    create a pipeline"},
		{args: []string{"pipeline"}, code: 2, stderr: "missing command"},
		{args: []string{"pipelin", "ls"}, code: 2, stderr: "Did you mean 'flowd pipeline'?"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"--server", "x", "runs"}, code: 2, stderr: `unknown flag "--server" before a command`},
		{args: []string{"pipeline", "aply"}, code: 2, stderr: "Did you mean 'flowd pipeline apply'?"},
		{args: []string{"run"}, code: 2, stderr: "flowd run: missing arguments\nUsage: flowd run PIPELINE"},
		{args: []string{"run", "a", "b"}, code: 2, stderr: `unexpected argument "b"`},
		{args: []string{"run", "hello", "--var", "novalue"}, code: 2, stderr: `want KEY=VALUE, got "novalue"`},
		{args: []string{"run", "hello", "--var", "=x"}, code: 2, stderr: "empty variable name"},
		{args: []string{"run", "hello", "--nope"}, code: 2, stderr: "flag provided but not defined: -nope"},
		{args: []string{"show", "abc"}, code: 2, stderr: `RUN must be a run id (a number) or PIPELINE#NUMBER, got "abc"`},
		{args: []string{"show", "hello#x"}, code: 2, stderr: `RUN must be a run id (a number) or PIPELINE#NUMBER, got "hello#x"`},
		{args: []string{"logs", "Hello#1"}, code: 2, stderr: `RUN must be a run id (a number) or PIPELINE#NUMBER, got "Hello#1"`},
		{args: []string{"cancel", "hello#0"}, code: 2, stderr: `RUN must be a run id (a number) or PIPELINE#NUMBER, got "hello#0"`},
		{args: []string{"token", "rm", "x"}, code: 2, stderr: "ID must be a token id"},
		// Checks of the arguments come before the client: these fail as usage errors (2)
		// although nobody is logged in.
		{args: []string{"token", "rm", "#3"}, code: 2, stderr: `ID must be a token id (a number), got "#3"`},
		{args: []string{"cancel", "0"}, code: 2, stderr: `flowd cancel: RUN must be a run id (a number) or PIPELINE#NUMBER, got "0"`},
		{args: []string{"logs", "x", "-f"}, code: 2, stderr: `flowd logs: RUN must be a run id (a number) or PIPELINE#NUMBER, got "x"`},
		{args: []string{"redeliver", "--", "-1"}, code: 2, stderr: `flowd redeliver: ID must be a delivery id (a number), got "-1"`},
		{args: []string{"runs", "hello", "--limit", "-1"}, code: 2, stderr: "flowd runs: --limit and --before must not be negative\nUsage: flowd runs PIPELINE"},
		{args: []string{"deliveries", "hello", "--before", "-1"}, code: 2, stderr: "flowd deliveries: --limit and --before must not be negative"},
		{args: []string{"run", "hello", "--branch", "a", "--tag", "b"}, code: 2, stderr: "flowd run: give --branch or --tag, not both"},
		{args: []string{"whoami", "extra"}, code: 2, stderr: `flowd whoami: unexpected argument "extra"`},
		{args: []string{"member", "set", "p", "u", "boss"}, code: 2, stderr: "ROLE must be viewer, developer or admin"},
		{args: []string{"pipeline", "apply"}, code: 2, stderr: "-f FILE is required"},
		{args: []string{"runs", "hello", "--limit", "x"}, code: 2, stderr: `invalid value "x" for flag -limit`},
		{args: []string{"login", "--password-stdin"}, code: 2, stderr: "--password-stdin needs --user"},
		{args: []string{"version"}, code: 0, stdout: "flowd "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, "", tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d", r.code, tt.code)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout lacks %q", tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q", tt.stderr)
			}
			if tt.stderrNone && r.stderr != "" {
				t.Errorf("stderr not empty")
			}
		})
	}
}

// TestEveryCommandHasHelp walks the dispatch tables: every command and subcommand explains
// itself on --help, on stdout, with exit 0.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	nouns := map[string]func() []command{"pipeline": pipelineCommands, "member": memberCommands, "user": userCommands, "token": tokenCommands,
		"agent-token": agentTokenCommands, "agents": agentsCommands}
	var all [][]string
	for _, cmd := range commands() {
		if cmd.name == "serve" || cmd.name == "help" { // serve's help is serve.go's
			continue
		}
		if sub, ok := nouns[cmd.name]; ok {
			for _, s := range sub() {
				all = append(all, []string{cmd.name, s.name})
			}
			continue
		}
		all = append(all, []string{cmd.name})
	}
	if len(all) < 20 {
		t.Fatalf("only %d commands found", len(all))
	}
	for _, args := range all {
		r := runCLI(t, map[string]string{}, "", append(args, "--help")...)
		want := "Usage: flowd " + strings.Join(args, " ")
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
			t.Errorf("flowd %s --help: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

func TestVarsFlag(t *testing.T) {
	t.Parallel()
	v := varsFlag{}
	for _, s := range []string{"abc=456", "URL=http://x/?a=b", "EMPTY=", "abc=789"} {
		if err := v.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	want := map[string]string{"abc": "789", "URL": "http://x/?a=b", "EMPTY": ""}
	if fmt.Sprint(map[string]string(v)) != fmt.Sprint(want) {
		t.Errorf("vars = %v, want %v", v, want)
	}
	for _, bad := range []string{"abc", "", "=x"} {
		if err := v.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestLoginSavesConfig(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	xdg := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": xdg}
	r := runCLI(t, env, "s3cret pw\n", "login", "--server", f.URL+"/", "--user", "alice", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "logged in to "+f.URL+" as alice") {
		t.Fatalf("login: exit %d", r.code)
	}
	path := filepath.Join(xdg, "flowd", "config.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("config folder mode %v, want 0700", di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	var saved map[string]string
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"server": f.URL, "token": "tok-alice", "username": "alice"}; fmt.Sprint(saved) != fmt.Sprint(want) {
		t.Errorf("config = %v, want %v", saved, want)
	}

	// Later commands use the saved login.
	if r := runCLI(t, env, "", "pipeline", "ls"); r.code != 0 || !strings.Contains(r.stdout, "#3 failed") {
		t.Errorf("pipeline ls with saved login: exit %d", r.code)
	}
	if got := f.auth[len(f.auth)-1]; got != "Bearer tok-alice" {
		t.Errorf("Authorization = %q", got)
	}
	// The saved token is not sent to another server.
	r = runCLI(t, env, "", "pipeline", "ls", "--server", "http://other.example:9")
	if r.code != 1 || !strings.Contains(r.stderr, "not logged in to http://other.example:9") {
		t.Errorf("other server: exit %d", r.code)
	}
	// A flag beats the environment, which beats the file.
	env2 := map[string]string{"XDG_CONFIG_HOME": xdg, "FLOWD_TOKEN": "wrong"}
	if r := runCLI(t, env2, "", "pipeline", "ls"); r.code != 1 || !strings.Contains(r.stderr, "run `flowd login` again") {
		t.Errorf("FLOWD_TOKEN=wrong: exit %d", r.code)
	}
	if r := runCLI(t, env2, "", "pipeline", "ls", "--token", "tok-alice"); r.code != 0 {
		t.Errorf("--token: exit %d", r.code)
	}

	if r := runCLI(t, env, "", "logout"); r.code != 0 {
		t.Errorf("logout: exit %d", r.code)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("config still there after logout: %v", err)
	}
	r = runCLI(t, env, "", "runs", "hello")
	if r.code != 1 || r.stderr != "flowd: not logged in: run `flowd login` (or set FLOWD_TOKEN, or pass --token)\n" {
		t.Errorf("after logout: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLoginPasswordSources(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	// Prompted username and password.
	env := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_SERVER": f.URL}
	if r := runCLI(t, env, "alice\ns3cret pw\n", "login"); r.code != 0 || !strings.Contains(r.stderr, "Password for alice: ") {
		t.Errorf("prompted login: exit %d", r.code)
	}
	// FLOWD_USER and FLOWD_PASSWORD.
	env = map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_SERVER": f.URL, "FLOWD_USER": "alice", "FLOWD_PASSWORD": "s3cret pw"}
	if r := runCLI(t, env, "", "login"); r.code != 0 {
		t.Errorf("env login: exit %d", r.code)
	}
	env["FLOWD_PASSWORD"] = "wrong"
	if r := runCLI(t, env, "", "login"); r.code != 1 || !strings.Contains(r.stderr, "flowd: wrong username or password") {
		t.Errorf("wrong password: exit %d", r.code)
	}
	// No password at all.
	env = map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_SERVER": f.URL}
	if r := runCLI(t, env, "", "login", "--user", "alice"); r.code != 1 || !strings.Contains(r.stderr, "no input on stdin") {
		t.Errorf("no password: exit %d", r.code)
	}
}

// TestRunEntryPoint goes through run(), the function main calls, with the real environment.
func TestRunEntryPoint(t *testing.T) {
	f := newFakeServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("FLOWD_CONFIG", "")
	t.Setenv("FLOWD_SERVER", f.URL)
	t.Setenv("FLOWD_TOKEN", "")
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"login", "--user", "alice", "--password-stdin"}, strings.NewReader("s3cret pw"), &out, &errOut); code != 0 {
		t.Fatalf("login: exit %d: %s", code, errOut.String())
	}
	fi, err := os.Stat(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "flowd", "config.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v, %v", fi, err)
	}
	if code := run(context.Background(), []string{"cancel", "17"}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "run hello#3 (id 17) canceled\n") {
		t.Errorf("cancel: exit %d, %q", code, out.String())
	}
}

func TestPipelineApply(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := loggedIn(t, f)
	dir := t.TempDir()
	good := filepath.Join(dir, "hello.yml")
	os.WriteFile(good, []byte("name: hello\nstages: []\n"), 0o644)

	r := runCLI(t, env, "", "pipeline", "apply", "-f", good)
	if r.code != 0 || r.stdout != "pipeline hello created (revision 1)\n" {
		t.Errorf("create: exit %d, %q", r.code, r.stdout)
	}
	r = runCLI(t, env, "", "pipeline", "apply", "-f", good)
	if r.code != 0 || r.stdout != "pipeline hello updated (revision 2)\n" {
		t.Errorf("update: exit %d, %q", r.code, r.stdout)
	}
	r = runCLI(t, env, "name: fromstdin\n", "pipeline", "apply", "-f", "-")
	if r.code != 0 || r.stdout != "pipeline fromstdin created (revision 1)\n" {
		t.Errorf("stdin: exit %d, %q", r.code, r.stdout)
	}

	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("name: bad\n\nstagez: []\n"), 0o644)
	r = runCLI(t, env, "", "pipeline", "apply", "-f", bad)
	want := bad + `:3:1: unknown field "stagez"` + "\n" + bad + ":1:1: stages: at least one stage is required\n" +
		"flowd: " + bad + ": the pipeline definition has 2 problems\n"
	if r.code != 1 || r.stderr != want || r.stdout != "" {
		t.Errorf("invalid: exit %d, stderr %q\nwant %q", r.code, r.stderr, want)
	}

	if r := runCLI(t, env, "", "pipeline", "apply", "-f", filepath.Join(dir, "missing.yml")); r.code != 1 || !strings.Contains(r.stderr, "flowd: read pipeline definition:") {
		t.Errorf("missing file: exit %d", r.code)
	}
}

func TestRunCommand(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := loggedIn(t, f)
	// Flags after the pipeline name, a value holding '='.
	r := runCLI(t, env, "", "run", "hello", "--var", "abc=4=5", "--var", "extra=1")
	if r.code != 0 || r.stdout != "run hello#3 (id 17) queued: http://flowd.test/runs/17\n" {
		t.Errorf("run: exit %d, %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "warning: ignored variables that hello does not declare: extra") {
		t.Errorf("no warning about ignored keys: %q", r.stderr)
	}
	if got := f.got()[0]; got != `POST /api/v1/pipelines/hello/runs {"variables":{"abc":"4=5","extra":"1"}}` {
		t.Errorf("request = %s", got)
	}
	if r := runCLI(t, env, "", "run", "nope"); r.code != 1 || r.stderr != "flowd: no pipeline \"nope\" (or you are no member of it)\n" {
		t.Errorf("unknown pipeline: exit %d, %q", r.code, r.stderr)
	}
}

func TestFollowExitStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status string
		code   int
	}{{"success", 0}, {"failed", 1}, {"canceled", 1}} {
		t.Run(tt.status, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t)
			f.status = tt.status
			env := loggedIn(t, f)
			for _, args := range [][]string{{"run", "-f", "hello"}, {"run", "hello", "--follow"}, {"logs", "17", "-f"}} {
				r := runCLI(t, env, "", args...)
				if r.code != tt.code {
					t.Errorf("%v: exit %d, want %d", args, r.code, tt.code)
				}
				if !strings.HasSuffix(r.stdout, "hello from step\n") {
					t.Errorf("%v: log not printed: %q", args, r.stdout)
				}
				if !strings.Contains(r.stderr, "run hello#3 (id 17) "+tt.status+" after 4s") {
					t.Errorf("%v: no final status: %q", args, r.stderr)
				}
			}
			if got := f.got(); !strings.Contains(strings.Join(got, "\n"), "GET /api/v1/runs/17/log?follow=1") {
				t.Errorf("requests = %v", got)
			}
		})
	}
}

func TestReadCommands(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := loggedIn(t, f)

	r := runCLI(t, env, "", "runs", "hello", "--status", "failed", "--limit", "2")
	if r.code != 0 {
		t.Fatalf("runs: exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NUMBER  ID  STATUS  TRIGGER  BY     CREATED") ||
		!strings.Contains(lines[1], "#3      17  failed  webhook  alice") || !strings.HasSuffix(lines[1], "1m2s") ||
		!strings.HasSuffix(lines[2], "-") {
		t.Errorf("runs table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "more: flowd runs hello --before 2") {
		t.Errorf("no next page hint: %q", r.stderr)
	}
	if got := f.got()[0]; got != "GET /api/v1/pipelines/hello/runs?limit=2&status=failed" {
		t.Errorf("request = %s", got)
	}

	r = runCLI(t, env, "", "show", "17")
	for _, want := range []string{"Status:    success", "stage build", "  job say in golang:1.26", "    step echo", "exit 0", "    step never            skipped",
		"    attempt 1 on ci-a/1   lost", "    attempt 2 on ci-b/3   finished"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCLI(t, env, "", "logs", "17"); r.code != 0 || r.stdout != "hello from step\n" {
		t.Errorf("logs: exit %d, %q", r.code, r.stdout)
	}
	// A run by its pipeline and number: looked up, then used by its id.
	for _, arg := range []string{"hello#3", "hello/3"} {
		if r := runCLI(t, env, "", "logs", arg); r.code != 0 || r.stdout != "hello from step\n" {
			t.Errorf("logs %s: exit %d, %q %q", arg, r.code, r.stdout, r.stderr)
		}
		if got := f.got(); got[len(got)-2] != "GET /api/v1/pipelines/hello/runs?before=4&limit=1" || got[len(got)-1] != "GET /api/v1/runs/17/log" {
			t.Errorf("logs %s: requests %v", arg, got[len(got)-2:])
		}
	}
	if r := runCLI(t, env, "", "show", "hello#3"); r.code != 0 || !strings.Contains(r.stdout, "Run:       hello#3 (id 17)") {
		t.Errorf("show hello#3: exit %d, %q", r.code, r.stdout)
	}
	if r := runCLI(t, env, "", "cancel", "hello#9"); r.code != 1 || r.stderr != "flowd: pipeline hello has no run #9: 'flowd runs hello' lists its runs\n" {
		t.Errorf("cancel hello#9: exit %d, %q", r.code, r.stderr)
	}
	if got := f.got(); strings.Contains(got[len(got)-1], "cancel") {
		t.Errorf("cancel of a missing run number sent %s", got[len(got)-1])
	}
	if r := runCLI(t, env, "", "user", "add", "bob", "--admin", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "empty password") {
		t.Errorf("user add without password: exit %d", r.code)
	}
	if r := runCLI(t, env, "longpassword\n", "user", "add", "bob", "--admin", "--password-stdin"); r.code != 0 || r.stdout != "admin bob created\n" {
		t.Errorf("user add: exit %d, %q", r.code, r.stdout)
	}
	if got := f.got(); got[len(got)-1] != `POST /api/v1/users {"username":"bob","password":"longpassword","admin":true}` {
		t.Errorf("request = %s", got[len(got)-1])
	}
}

func TestPipelineShow(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := loggedIn(t, f)
	r := runCLI(t, env, "", "pipeline", "show", "hello")
	for _, want := range []string{"Pipeline:    hello\n", "Revision:    2\n", "abc      \"123\"         123,456", "API_KEY  *** (secret)",
		"    say in golang:1.26: echo, done\n", "  bob (viewer)\n", "YAML:\n  name: hello\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("pipeline show lacks %q", want)
		}
	}
	r = runCLI(t, env, "", "pipeline", "show", "--yaml", "hello")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "name: hello\nvariables:") {
		t.Errorf("--yaml: exit %d, %q", r.code, r.stdout)
	}
}

func TestParseDoubleDash(t *testing.T) {
	t.Parallel()
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	f := newFlags("x", "flowd x", "", 0, 5)
	follow := f.Bool("follow", false, "")
	pos, code := c.parse(f, []string{"a", "--follow", "b", "--", "--c", "-d"})
	if code != -1 || !*follow || strings.Join(pos, " ") != "a b --c -d" {
		t.Errorf("parse = %q, %d, follow %v", pos, code, *follow)
	}
}

func TestQueueLines(t *testing.T) {
	t.Parallel()
	n := func(v int64) *int64 { return &v }
	for _, tt := range []struct {
		q          client.PipelineQueue
		now, bound string
	}{
		{client.PipelineQueue{}, "", "none of its own (queue: in the YAML); the server's (--max-queued-runs) still applies: 503"},
		{client.PipelineQueue{MaxRuns: 500, Queued: n(0)}, "0 runs waiting to start", "500 runs (queue: in the YAML); webhooks over it get 429 + Retry-After"},
		{client.PipelineQueue{MaxSeconds: 60, Queued: n(1), Seconds: n(3)}, "1 run waiting to start, about 3 s of work at the recent rate",
			"60 s of work (queue: in the YAML); webhooks over it get 429 + Retry-After"},
		{client.PipelineQueue{MaxRuns: 1, MaxSeconds: 60, Queued: n(4)}, "4 runs waiting to start (no run ended in the last minute: how long they take is unknown)",
			"1 run or 60 s of work (queue: in the YAML); webhooks over it get 429 + Retry-After"},
	} {
		if now, bound := queueNow(tt.q), queueBound(tt.q); now != tt.now || bound != tt.bound {
			t.Errorf("%+v: %q, %q; want %q, %q", tt.q, now, bound, tt.now, tt.bound)
		}
	}
}
