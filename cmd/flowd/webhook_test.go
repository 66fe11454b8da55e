package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/webhook"
)

// hookServer plays the "Webhook trigger" part of docs/api.md for the CLI.
type hookServer struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []string         // "METHOD /path?query body"
	trigger   map[string]any   // the trigger answered by every trigger endpoint
	variables []map[string]any // the variables of pipeline "hello"
	dryStatus int              // status of the dry-run and redeliver answers
	dryAnswer map[string]any
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	h := &hookServer{
		trigger: map[string]any{"enabled": true, "url": "http://127.0.0.1:8080/pipeline/webhook/TOKEN", "enabled_by": "alice",
			"enabled_at": "2026-01-02T03:04:05Z", "has_secret": false, "owner_can_run": true, "owner_problem": ""},
		variables: []map[string]any{{"name": "abc", "default": "123", "options": []string{"123", "456"}}, {"name": "TARGET", "default": "staging"}},
		dryStatus: 200,
		dryAnswer: map[string]any{"dry_run": true, "run": nil, "would_start": true, "variables": map[string]string{"abc": "456", "API_KEY": "***"},
			"ignored": []string{"extra"}, "delivery": 42, "trace": []map[string]any{
				{"step": "token", "ok": true, "detail": "dry run of hello"}, {"step": "permission", "ok": true, "detail": "alice is admin"},
				{"step": "variables", "ok": true, "detail": "abc from the body"}, {"step": "run", "ok": true, "detail": "would start"}}},
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		reply(w, 200, map[string]any{"name": r.PathValue("name"), "revision": 1, "role": "admin", "variables": h.variables})
	})
	trig := func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		reply(w, 200, h.trigger)
	}
	mux.HandleFunc("GET /api/v1/pipelines/hello/triggers/webhook", trig)
	mux.HandleFunc("POST /api/v1/pipelines/hello/triggers/webhook/enable", trig)
	mux.HandleFunc("POST /api/v1/pipelines/hello/triggers/webhook/disable", trig)
	mux.HandleFunc("POST /api/v1/pipelines/hello/triggers/webhook/rotate", trig)
	mux.HandleFunc("POST /api/v1/pipelines/never/triggers/webhook/rotate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 409, map[string]any{"error": map[string]any{"code": "conflict", "message": "the webhook of never was never enabled"}})
	})
	mux.HandleFunc("GET /api/v1/pipelines/hello/triggers/webhook/audit", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"audit": []map[string]any{
			{"at": "2026-01-02T03:04:05Z", "actor": "alice", "action": "rotate", "detail": ""},
			{"at": "2026-01-01T03:04:05Z", "actor": "bob", "action": "enable", "detail": "secret set"}}})
	})
	answer := func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		reply(w, h.dryStatus, h.dryAnswer)
	}
	mux.HandleFunc("POST /api/v1/pipelines/hello/triggers/webhook/dry-run", answer)
	mux.HandleFunc("POST /api/v1/deliveries/7/redeliver", answer)
	mux.HandleFunc("GET /api/v1/pipelines/hello/deliveries", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"deliveries": []map[string]any{
			{"id": 9, "received_at": "2026-01-02T03:04:05Z", "remote_addr": "10.0.0.1:5000", "status_code": 202, "error_code": "", "run_id": 17, "dry_run": false, "redelivery_of": 7, "replay_of": nil},
			{"id": 8, "received_at": "2026-01-02T03:04:04Z", "remote_addr": "10.0.0.1:5000", "status_code": 200, "error_code": "", "run_id": nil, "dry_run": true, "redelivery_of": nil, "replay_of": nil},
			{"id": 7, "received_at": "2026-01-02T03:04:03Z", "remote_addr": "10.0.0.2:5000", "status_code": 422, "error_code": "invalid_variables", "run_id": nil, "dry_run": false, "redelivery_of": nil, "replay_of": 3},
		}, "next_before": 7})
	})
	mux.HandleFunc("GET /api/v1/deliveries/7", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"id": 7, "received_at": "2026-01-02T03:04:03Z", "remote_addr": "10.0.0.2:5000", "status_code": 422,
			"error_code": "invalid_variables", "run_id": nil, "dry_run": false, "redelivery_of": nil, "replay_of": nil,
			"headers": map[string][]string{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {"[redacted]"}},
			"body":    `{"abc":"999"}`, "body_truncated": true,
			"response": map[string]any{"error": map[string]any{"code": "invalid_variables", "message": "abc: must be one of 123, 456"}, "delivery": 7},
			"trace":    []map[string]any{{"step": "token", "ok": true, "detail": "trigger of hello"}, {"step": "variables", "ok": false, "detail": "abc: must be one of 123, 456"}}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 404, map[string]any{"error": map[string]any{"code": "not_found", "message": "no pipeline or delivery here"}})
	})
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-alice" {
			reply(w, 401, map[string]any{"error": map[string]any{"code": "unauthorized", "message": "unknown token"}})
			return
		}
		body, _ := io.ReadAll(r.Body)
		line := r.Method + " " + r.URL.RequestURI()
		if len(body) > 0 {
			line += " " + string(body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
			line += " (" + ct + ")"
		}
		for _, k := range []string{"X-Hub-Signature-256", "X-Github-Event"} {
			if v := r.Header.Get(k); v != "" {
				line += " [" + k + ": " + v + "]"
			}
		}
		h.mu.Lock()
		h.requests = append(h.requests, line)
		h.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

func (h *hookServer) set(f func(h *hookServer)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func hookEnv(t *testing.T, h *hookServer) map[string]string {
	return map[string]string{"FLOWD_SERVER": h.URL, "FLOWD_TOKEN": "tok-alice", "XDG_CONFIG_HOME": t.TempDir()}
}

func TestWebhookEnable(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	r := runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello")
	want := `webhook of hello enabled; it runs as alice
URL: http://127.0.0.1:8080/pipeline/webhook/TOKEN

Start a run with the default variables:
  curl -X POST -H 'Content-Type: application/json' --data '{}' 'http://127.0.0.1:8080/pipeline/webhook/TOKEN'
Start a run with abc=456:
  curl -X POST -H 'Content-Type: application/json' --data '{"abc":"456"}' 'http://127.0.0.1:8080/pipeline/webhook/TOKEN'
`
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	if got := strings.Join(h.got(), "\n"); got != "POST /api/v1/pipelines/hello/triggers/webhook/enable {}\nGET /api/v1/pipelines/hello" {
		t.Errorf("requests:\n%s", got)
	}
}

func TestWebhookEnableNoVariables(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	h.set(func(h *hookServer) { h.variables = nil })
	r := runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello")
	if r.code != 0 || !strings.Contains(r.stdout, "Start a run (hello declares no variables):\n  curl -X POST -H 'Content-Type: application/json' --data '{}' 'http://127.0.0.1:8080/pipeline/webhook/TOKEN'\n") ||
		strings.Count(r.stdout, "curl") != 1 {
		t.Errorf("exit %d, stdout:\n%s", r.code, r.stdout)
	}
}

func TestWebhookEnableSecret(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	h.set(func(h *hookServer) { h.trigger["has_secret"] = true })
	r := runCLI(t, hookEnv(t, h), "s3cr3t value\n", "webhook", "enable", "hello", "--secret-stdin")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if got := h.got()[0]; got != `POST /api/v1/pipelines/hello/triggers/webhook/enable {"secret":"s3cr3t value"}` {
		t.Errorf("request = %s", got)
	}
	if strings.Contains(r.stdout, "s3cr3t") {
		t.Errorf("the secret is printed:\n%s", r.stdout)
	}
	sig := `-H "X-Flowd-Timestamp: $ts" -H "X-Hub-Signature-256: sha256=$(printf %s "$ts.$body" | openssl dgst -sha256 -hmac "$FLOWD_WEBHOOK_SECRET" | sed 's/^.* //')"`
	for _, want := range []string{
		"export FLOWD_WEBHOOK_SECRET",
		"  ts=$(date +%s); body='{}'; curl -X POST -H 'Content-Type: application/json' " + sig + ` --data "$body" 'http://127.0.0.1:8080/pipeline/webhook/TOKEN'` + "\n",
		"Start a run with abc=456:\n  ts=$(date +%s); body='{\"abc\":\"456\"}'; curl -X POST -H 'Content-Type: application/json' " + sig + ` --data "$body" 'http://127.0.0.1:8080/pipeline/webhook/TOKEN'` + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	// --secret S, and --no-secret removes it.
	runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello", "--secret", "abc")
	runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello", "--no-secret")
	runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello", "--require-timestamp")
	runCLI(t, hookEnv(t, h), "", "webhook", "enable", "hello", "--require-timestamp=false")
	got := h.got()
	if got[2] != `POST /api/v1/pipelines/hello/triggers/webhook/enable {"secret":"abc"}` || got[4] != `POST /api/v1/pipelines/hello/triggers/webhook/enable {"secret":""}` ||
		got[6] != `POST /api/v1/pipelines/hello/triggers/webhook/enable {"require_timestamp":true}` ||
		got[8] != `POST /api/v1/pipelines/hello/triggers/webhook/enable {"require_timestamp":false}` {
		t.Errorf("requests = %q", got)
	}
}

// TestCurlCommandsWork runs the printed curl commands in a shell against a webhook that checks
// the body and the signature with flowd's own check, requiring the timestamp, with a value that
// needs shell quoting.
func TestCurlCommandsWork(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sh", "curl", "openssl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	const secret = "top 'secret' $x"
	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.VerifySignature(r.Header, body, []byte(secret), time.Now(), true) != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(401)
			return
		}
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer hook.Close()
	url := hook.URL + "/pipeline/webhook/TOKEN"
	v := sampleValue(clientVariable("x", "x", "it's <a> & \"b\""))
	for _, body := range []string{"{}", jsonObject("abc", v)} {
		cmd := exec.Command("sh", "-c", curlCommand(url, body, true)+" --fail --silent --show-error")
		cmd.Env = append(os.Environ(), "FLOWD_WEBHOOK_SECRET="+secret)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("signed curl for %s: %v\n%s", body, err, out)
		}
		cmd = exec.Command("sh", "-c", curlCommand(url, body, false)+" --silent --output /dev/null --write-out %{http_code}")
		if out, _ := cmd.CombinedOutput(); string(out) != "401" {
			t.Errorf("unsigned curl for %s: %s, want 401", body, out)
		}
	}
	if want := []string{"{}", `{"abc":"it's <a> & \"b\""}`}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies = %q, want %q", bodies, want)
	}
}

func clientVariable(def string, options ...string) client.Variable {
	return client.Variable{Name: "abc", Default: def, Options: options}
}

func TestSampleValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		def     string
		options []string
		want    string
	}{
		{"123", nil, "456"},
		{"", nil, "456"},
		{"456", nil, "789"},
		{"123", []string{"123", "456"}, "456"},
		{"staging", []string{"staging", "production"}, "production"},
		{"b", []string{"a", "b"}, "a"},
		{"a", []string{"a"}, "a"},
	}
	for _, tt := range tests {
		v := clientVariable(tt.def, tt.options...)
		if got := sampleValue(v); got != tt.want {
			t.Errorf("sampleValue(%q, %q) = %q, want %q", tt.def, tt.options, got, tt.want)
		}
	}
}

func TestWebhookEnableUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args   []string
		stdin  string
		code   int
		stderr string
	}{
		{[]string{"--secret", "x", "--no-secret"}, "", 2, "use only one of --secret, --secret-stdin and --no-secret"},
		{[]string{"--secret-stdin", "--no-secret"}, "", 2, "use only one of"},
		{[]string{"--secret", ""}, "", 2, "empty --secret (to remove the secret, use --no-secret)"},
		{[]string{"--secret-stdin"}, "\n", 1, "empty secret on stdin"},
	} {
		h := newHookServer(t)
		r := runCLI(t, hookEnv(t, h), tt.stdin, append([]string{"webhook", "enable", "hello"}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || len(h.got()) != 0 {
			t.Errorf("%v: exit %d, stderr %q, requests %q", tt.args, r.code, r.stderr, h.got())
		}
	}
}

func TestWebhookShow(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	env := hookEnv(t, h)
	r := runCLI(t, env, "", "webhook", "show", "hello")
	for _, want := range []string{"Enabled:   yes\n", "URL:       http://127.0.0.1:8080/pipeline/webhook/TOKEN\n", "Owner:     alice (webhook runs run as this user)\n", "Secret:    no"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q", want)
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, "WARNING") || r.stderr != "" {
		t.Errorf("exit %d, warning without cause", r.code)
	}

	// The owner lost the right to run the pipeline; a non-admin sees no URL.
	h.set(func(h *hookServer) {
		h.trigger["owner_can_run"] = false
		h.trigger["owner_problem"] = "alice is disabled: disable and re-enable the trigger as an authorised user"
		h.trigger["url"] = nil
		h.trigger["has_secret"] = true
	})
	r = runCLI(t, env, "", "webhook", "show", "hello")
	warning := "the webhook's owner alice may not run hello, so every request is refused (403): alice is disabled: disable and re-enable the trigger as an authorised user"
	if !strings.Contains(r.stdout, "\nWARNING: "+warning+"\n") || r.stderr != "flowd: warning: "+warning+"\n" {
		t.Errorf("no warning:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "URL:       (only admins see the URL)\n") || !strings.Contains(r.stdout, "Secret:    yes") {
		t.Errorf("stdout:\n%s", r.stdout)
	}

	// Never enabled: no URL, no warning.
	h.set(func(h *hookServer) {
		h.trigger = map[string]any{"enabled": false, "url": nil, "enabled_by": "", "enabled_at": nil, "has_secret": false, "owner_can_run": false, "owner_problem": ""}
	})
	r = runCLI(t, env, "", "webhook", "show", "hello")
	if r.code != 0 || !strings.Contains(r.stdout, "Enabled:   no\nURL:       - (never enabled)\nOwner:     -\nSince:     -\n") ||
		!strings.Contains(r.stdout, "Enable it with 'flowd webhook enable hello'") || r.stderr != "" {
		t.Errorf("never enabled: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestWebhookDisableRotateAudit(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	env := hookEnv(t, h)
	if r := runCLI(t, env, "", "webhook", "disable", "hello"); r.code != 0 || r.stdout != "webhook of hello disabled; its URL answers 404 until 'flowd webhook enable hello' (same URL)\n" {
		t.Errorf("disable: exit %d, %q", r.code, r.stdout)
	}
	h.set(func(h *hookServer) { h.trigger["url"] = "http://127.0.0.1:8080/pipeline/webhook/NEW" })
	if r := runCLI(t, env, "", "webhook", "rotate", "hello"); r.code != 0 ||
		r.stdout != "webhook URL of hello rotated; the old URL stopped working\nURL: http://127.0.0.1:8080/pipeline/webhook/NEW\n" {
		t.Errorf("rotate: exit %d, %q", r.code, r.stdout)
	}
	if r := runCLI(t, env, "", "webhook", "rotate", "never"); r.code != 1 || !strings.Contains(r.stderr, "(enable it first: flowd webhook enable never)") {
		t.Errorf("rotate never enabled: exit %d, %q", r.code, r.stderr)
	}
	r := runCLI(t, env, "", "webhook", "audit", "hello")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "AT ") || !strings.Contains(lines[0], "ACTOR  ACTION  DETAIL") ||
		!strings.HasSuffix(lines[1], "alice  rotate  -") || !strings.HasSuffix(lines[2], "bob    enable  secret set") {
		t.Errorf("audit: exit %d\n%s", r.code, r.stdout)
	}
	want := []string{"POST /api/v1/pipelines/hello/triggers/webhook/disable", "POST /api/v1/pipelines/hello/triggers/webhook/rotate",
		"POST /api/v1/pipelines/never/triggers/webhook/rotate", "GET /api/v1/pipelines/hello/triggers/webhook/audit"}
	if got := h.got(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests = %q", got)
	}
}

func TestWebhookDryRun(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	env := hookEnv(t, h)
	r := runCLI(t, env, "", "webhook", "dry-run", "hello", "--data", `{"abc":"456","extra":1}`)
	want := `would start: yes
variables:
  API_KEY=***
  abc=456
ignored:     extra (not declared by hello)
trace:
  ✔ token: dry run of hello
  ✔ permission: alice is admin
  ✔ variables: abc from the body
  ✔ run: would start
recorded as delivery 42: flowd delivery 42
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}

	// A body from a file with another content type, and the default body.
	dir := t.TempDir()
	file := filepath.Join(dir, "body")
	os.WriteFile(file, []byte("payload=x"), 0o644)
	runCLI(t, env, "", "webhook", "dry-run", "hello", "-f", file, "--content-type", "application/x-www-form-urlencoded")
	runCLI(t, env, "", "webhook", "dry-run", "hello")
	runCLI(t, env, `{"from":"stdin"}`, "webhook", "dry-run", "hello", "-f", "-")
	wantReq := []string{`POST /api/v1/pipelines/hello/triggers/webhook/dry-run {"abc":"456","extra":1}`,
		"POST /api/v1/pipelines/hello/triggers/webhook/dry-run payload=x (application/x-www-form-urlencoded)",
		"POST /api/v1/pipelines/hello/triggers/webhook/dry-run {}",
		`POST /api/v1/pipelines/hello/triggers/webhook/dry-run {"from":"stdin"}`}
	if got := h.got(); fmt.Sprint(got) != fmt.Sprint(wantReq) {
		t.Errorf("requests = %q", got)
	}

	// Signed with $FLOWD_WEBHOOK_SECRET, with another header.
	signEnv := hookEnv(t, h)
	signEnv["FLOWD_WEBHOOK_SECRET"] = "s3cret"
	if r := runCLI(t, signEnv, "", "webhook", "dry-run", "hello", "--sign", "-H", "X-GitHub-Event: push", "--data", `{"ref":"refs/heads/main"}`); r.code != 0 {
		t.Errorf("signed: exit %d", r.code)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(`{"ref":"refs/heads/main"}`))
	wantSigned := `POST /api/v1/pipelines/hello/triggers/webhook/dry-run {"ref":"refs/heads/main"} [X-Hub-Signature-256: sha256=` + hex.EncodeToString(mac.Sum(nil)) + "] [X-Github-Event: push]"
	if got := h.got(); got[len(got)-1] != wantSigned {
		t.Errorf("request = %s\nwant      %s", got[len(got)-1], wantSigned)
	}
	if r := runCLI(t, env, "", "webhook", "dry-run", "hello", "--sign"); r.code != 2 || !strings.Contains(r.stderr, "--sign needs the secret in FLOWD_WEBHOOK_SECRET") {
		t.Errorf("--sign without secret: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, env, "", "webhook", "dry-run", "hello", "-H", "nocolon"); r.code != 2 || !strings.Contains(r.stderr, "want 'Name: value'") {
		t.Errorf("bad header: exit %d, %q", r.code, r.stderr)
	}

	// A missing signature: the answer says how to sign.
	h.set(func(h *hookServer) {
		h.dryStatus = 401
		h.dryAnswer = map[string]any{"error": map[string]any{"code": "invalid_signature", "message": "no X-Hub-Signature-256 header"}, "delivery": 45,
			"trace": []map[string]any{{"step": "signature", "ok": false, "detail": "no X-Hub-Signature-256 header"}}}
	})
	if r := runCLI(t, env, "", "webhook", "dry-run", "hello"); r.code != 1 || !strings.Contains(r.stdout, "  ✖ signature: no X-Hub-Signature-256 header\nthe webhook has a secret: set FLOWD_WEBHOOK_SECRET and pass --sign\n") {
		t.Errorf("unsigned: exit %d\n%s", r.code, r.stdout)
	}

	// The webhook would refuse: exit 1, with the refusing step.
	h.set(func(h *hookServer) {
		h.dryStatus = 403
		h.dryAnswer = map[string]any{"error": map[string]any{"code": "insufficient_permissions", "message": "alice may no longer run hello"}, "delivery": 43,
			"trace": []map[string]any{{"step": "token", "ok": true, "detail": "dry run of hello"}, {"step": "permission", "ok": false, "detail": "alice is disabled"}}}
	})
	r = runCLI(t, env, "", "webhook", "dry-run", "hello")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "would start: no\nanswer:      403 insufficient_permissions: alice may no longer run hello\n") ||
		!strings.Contains(r.stdout, "  ✔ token: dry run of hello\n  ✖ permission: alice is disabled\n") || r.stderr != "" {
		t.Errorf("refused: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A 200 that starts nothing (a filter, a ping) is a no too.
	h.set(func(h *hookServer) {
		h.dryStatus = 200
		h.dryAnswer = map[string]any{"dry_run": true, "run": nil, "would_start": false, "skipped": "filter is false", "delivery": 44, "trace": []any{}}
	})
	if r := runCLI(t, env, "", "webhook", "dry-run", "hello"); r.code != 1 || !strings.Contains(r.stdout, "skipped:     filter is false\n") {
		t.Errorf("skipped: exit %d\n%s", r.code, r.stdout)
	}
	// The API's own refusal is an error.
	if r := runCLI(t, env, "", "webhook", "dry-run", "nope"); r.code != 1 || r.stderr != "flowd: no pipeline or delivery here\n" {
		t.Errorf("unknown pipeline: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, env, "", "webhook", "dry-run", "hello", "--data", "{}", "-f", file); r.code != 2 || !strings.Contains(r.stderr, "use either --data or -f") {
		t.Errorf("both: exit %d, %q", r.code, r.stderr)
	}
}

func TestDeliveries(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	env := hookEnv(t, h)
	r := runCLI(t, env, "", "deliveries", "hello", "--limit", "3")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "ID  RECEIVED ") || !strings.Contains(lines[0], "STATUS  ERROR              RUN  FLAGS") ||
		!strings.HasSuffix(lines[1], "202     -                  17   redelivery of 7") ||
		!strings.HasSuffix(lines[2], "200     -                  -    dry-run") ||
		!strings.HasSuffix(lines[3], "422     invalid_variables  -    replay of 3") {
		t.Errorf("deliveries: exit %d\n%s", r.code, r.stdout)
	}
	if r.stderr != "more: flowd deliveries hello --before 7\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	if got := h.got()[0]; got != "GET /api/v1/pipelines/hello/deliveries?limit=3" {
		t.Errorf("request = %s", got)
	}
	if r := runCLI(t, env, "", "deliveries", "hello", "--limit", "-1"); r.code != 2 {
		t.Errorf("negative limit: exit %d", r.code)
	}
}

func TestDeliveryShow(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	r := runCLI(t, hookEnv(t, h), "", "delivery", "7")
	for _, want := range []string{
		"Delivery:  7\n", "from 10.0.0.2:5000\n", "Status:    422 Unprocessable Entity (invalid_variables)\n", "Run:       -\n",
		"Headers:\n  Content-Type: application/json\n  X-Hub-Signature-256: [redacted]\n",
		"Body:\n  {\"abc\":\"999\"}\n  (truncated: the body was longer than the server keeps)\n",
		"Answer:\n  {\n    \"delivery\": 7,\n    \"error\": {\n      \"code\": \"invalid_variables\",",
		"trace:\n  ✔ token: trigger of hello\n  ✖ variables: abc: must be one of 123, 456\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("delivery lacks %q", want)
		}
	}
	if r.code != 0 || h.got()[0] != "GET /api/v1/deliveries/7" {
		t.Errorf("exit %d, requests %q", r.code, h.got())
	}
	if r := runCLI(t, hookEnv(t, h), "", "delivery", "x"); r.code != 2 || !strings.Contains(r.stderr, `ID must be a delivery id (a number), got "x"`) {
		t.Errorf("bad id: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, hookEnv(t, h), "", "delivery", "99"); r.code != 1 || r.stderr != "flowd: no pipeline or delivery here\n" {
		t.Errorf("unknown id: exit %d, %q", r.code, r.stderr)
	}
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	h := newHookServer(t)
	env := hookEnv(t, h)
	h.set(func(h *hookServer) {
		h.dryStatus = 202
		h.dryAnswer = map[string]any{"run": map[string]any{"id": 18, "number": 4, "url": "http://flowd.test/api/v1/runs/18", "status": "queued"},
			"ignored": []string{}, "skipped": nil, "delivery": 10, "trace": []map[string]any{{"step": "token", "ok": true, "detail": "redelivery of 7"}, {"step": "run", "ok": true, "detail": "run 18"}}}
	})
	want := "delivery 7 redelivered as delivery 10\nstatus:   202 Accepted\nrun:      #4 (id 18) queued: http://flowd.test/api/v1/runs/18\ntrace:\n  ✔ token: redelivery of 7\n  ✔ run: run 18\n"
	for _, args := range [][]string{{"redeliver", "7"}, {"delivery", "7", "--redeliver"}, {"delivery", "--redeliver", "#7"}} {
		if r := runCLI(t, env, "", args...); r.code != 0 || r.stdout != want {
			t.Errorf("%v: exit %d, stdout:\n%s", args, r.code, r.stdout)
		}
	}
	if got := h.got(); len(got) != 3 || got[0] != "POST /api/v1/deliveries/7/redeliver" || got[2] != got[0] {
		t.Errorf("requests = %q", got)
	}

	// Refused by today's configuration: the answer, exit 1.
	h.set(func(h *hookServer) {
		h.dryStatus = 422
		h.dryAnswer = map[string]any{"error": map[string]any{"code": "invalid_variables", "message": "abc: must be one of 123, 456"}, "delivery": 11,
			"trace": []map[string]any{{"step": "variables", "ok": false, "detail": "abc"}}}
	})
	r := runCLI(t, env, "", "redeliver", "7")
	want = "delivery 7 redelivered as delivery 11\nstatus:   422 Unprocessable Entity\nerror:    422 invalid_variables: abc: must be one of 123, 456\nrun:      none\ntrace:\n  ✖ variables: abc\n"
	if r.code != 1 || r.stdout != want || r.stderr != "" {
		t.Errorf("refused: exit %d, stdout:\n%s", r.code, r.stdout)
	}
	if r := runCLI(t, env, "", "redeliver", "8"); r.code != 1 || r.stderr != "flowd: no pipeline or delivery here\n" {
		t.Errorf("unknown: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, map[string]string{"FLOWD_SERVER": h.URL, "FLOWD_TOKEN": "bad"}, "", "redeliver", "7"); r.code != 1 ||
		!strings.Contains(r.stderr, "flowd: unknown token\n(the token is missing, revoked or expired") {
		t.Errorf("bad token: exit %d, %q", r.code, r.stderr)
	}
}

func TestWebhookCommandsHaveHelp(t *testing.T) {
	t.Parallel()
	var all [][]string
	for _, s := range webhookCommands() {
		all = append(all, []string{"webhook", s.name})
	}
	all = append(all, []string{"webhook"}, []string{"deliveries"}, []string{"delivery"}, []string{"redeliver"})
	for _, args := range all {
		r := runCLI(t, map[string]string{}, "", append(args, "--help")...)
		want := "Usage: flowd " + strings.Join(args, " ")
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
			t.Errorf("flowd %s --help: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, map[string]string{}, "", "--help")
	for _, want := range []string{"Webhooks:\n  webhook    enable", "  deliveries list", "  delivery   show", "  redeliver  send"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if r := runCLI(t, map[string]string{}, "", "webhook", "enabel"); r.code != 2 || !strings.Contains(r.stderr, "Did you mean 'flowd webhook enable'?") {
		t.Errorf("typo: exit %d, %q", r.code, r.stderr)
	}
}
