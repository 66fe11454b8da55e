package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/store/storetest"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		st := storetest.Open(t, dialect)
		e := newEnvWithStore(t, st)
		if r := e.call("GET", "/healthz", "", nil); r.Status != http.StatusOK || string(r.Body) != "ok\n" {
			t.Errorf("healthz: %s", r)
		}
		if r := e.call("GET", "/readyz", "", nil); r.Status != http.StatusOK {
			t.Errorf("readyz: %s", r)
		}
		alice := e.user("alice", false)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if r := e.call("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" {
			t.Errorf("readyz with the database closed: %s, want 503", r)
		}
		if r := e.call("GET", "/healthz", "", nil); r.Status != http.StatusOK {
			t.Errorf("healthz with the database closed: %s", r)
		}
		r := e.call("GET", "/api/v1/pipelines", alice.Token, nil)
		if r.Status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" || !strings.Contains(string(r.Body), "nothing was saved") {
			t.Errorf("API call with the database closed: %s, want 503 unavailable", r)
		}
	})
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	alice := e.user("alice", false)
	e.createPipeline("hello", alice, nil)
	e.startRun("hello", alice.Token)
	e.call("GET", "/api/v1/runs/12345", alice.Token, nil)
	r := e.call("GET", "/metrics", testMetricsToken, nil)
	for _, want := range []string{
		`flowd_http_requests_total{code="201",route="POST /api/v1/pipelines/{name}/runs"} 1`,
		`flowd_http_requests_total{code="404",route="GET /api/v1/runs/{id}"} 1`,
		`flowd_runs{status="queued"} 1`,
		`flowd_job_queue_depth 1`,
	} {
		if !strings.Contains(string(r.Body), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestDisabledUser(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		root := e.user("root", true)
		bob := e.user("bob", false)
		if r := e.call("GET", "/api/v1/user", bob.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("before: %s", r)
		}
		if r := e.call("PATCH", "/api/v1/users/bob", root.Token, map[string]any{"disabled": true}); r.Status != http.StatusOK {
			t.Fatalf("disable: %s", r)
		}
		r := e.call("GET", "/api/v1/user", bob.Token, nil)
		if r.Status != http.StatusUnauthorized || r.errorCode() != "unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("disabled user's token: %s, want 401 with WWW-Authenticate", r)
		}
		if r := e.do(request{method: "POST", path: "/api/v1/tokens", basic: &[2]string{"bob", bob.Password}}); r.Status != http.StatusUnauthorized {
			t.Errorf("disabled user's sign-in: %s, want 401", r)
		}
		// An admin cannot lock themselves out.
		if r := e.call("PATCH", "/api/v1/users/root", root.Token, map[string]any{"admin": false}); r.Status != http.StatusConflict {
			t.Errorf("self-demotion: %s, want 409", r)
		}
	})
}

func TestTokensAndUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	root := e.user("root", true)

	// Users.
	r := e.call("POST", "/api/v1/users", root.Token, map[string]any{"username": "carol", "password": "carol-password"})
	if r.Status != http.StatusCreated || !strings.Contains(string(r.Body), `"username":"carol"`) {
		t.Fatalf("create user: %s", r)
	}
	if strings.Contains(string(r.Body), "password") {
		t.Errorf("the user answer shows a password field: %s", r)
	}
	for _, c := range []struct {
		body   map[string]any
		status int
	}{
		{map[string]any{"username": "carol", "password": "carol-password"}, http.StatusConflict},
		{map[string]any{"username": "Carol!", "password": "carol-password"}, http.StatusBadRequest},
		{map[string]any{"username": "dave", "password": "short"}, http.StatusBadRequest},
		{map[string]any{"username": "dave", "password": "long-enough", "role": "x"}, http.StatusBadRequest},
	} {
		if r := e.call("POST", "/api/v1/users", root.Token, c.body); r.Status != c.status {
			t.Errorf("create user %v: %s, want %d", c.body, r, c.status)
		}
	}
	if r := e.call("PATCH", "/api/v1/users/nobody", root.Token, map[string]any{"admin": true}); r.Status != http.StatusNotFound {
		t.Errorf("patch unknown user: %s", r)
	}

	// Tokens: sign in with Basic, use the token, list and revoke it.
	if r := e.do(request{method: "POST", path: "/api/v1/tokens", basic: &[2]string{"carol", "wrong-password"}}); r.Status != http.StatusUnauthorized ||
		!strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("wrong password: %s", r)
	}
	if r := e.do(request{method: "POST", path: "/api/v1/tokens", basic: &[2]string{"nobody", "whatever-pw"}}); r.Status != http.StatusUnauthorized {
		t.Errorf("unknown user: %s", r)
	}
	r = e.do(request{method: "POST", path: "/api/v1/tokens", basic: &[2]string{"carol", "carol-password"},
		contentType: "application/json", body: strings.NewReader(`{"name":"laptop"}`)})
	var tok struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		Token    string `json:"token"`
		Username string `json:"username"`
	}
	r.json(t, &tok)
	if r.Status != http.StatusCreated || tok.Name != "laptop" || tok.Username != "carol" || !strings.HasPrefix(tok.Token, auth.TokenPrefix) {
		t.Fatalf("sign in: %s", r)
	}
	if r := e.call("GET", "/api/v1/user", tok.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"carol"`) {
		t.Errorf("the new token does not work: %s", r)
	}
	if r := e.call("GET", "/api/v1/tokens", tok.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"laptop"`) || strings.Contains(string(r.Body), tok.Token) {
		t.Errorf("token list: %s", r)
	}
	if r := e.call("DELETE", "/api/v1/tokens/"+itoa(tok.ID), root.Token, nil); r.Status != http.StatusNotFound {
		t.Errorf("deleting another user's token: %s, want 404", r)
	}
	if r := e.call("DELETE", "/api/v1/tokens/"+itoa(tok.ID), tok.Token, nil); r.Status != http.StatusNoContent {
		t.Errorf("revoke: %s", r)
	}
	if r := e.call("GET", "/api/v1/user", tok.Token, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("a revoked token: %s, want 401", r)
	}
	for _, h := range []string{"Basic abc", "Bearer", "Bearer flowd_nonsense", "token"} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/user", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", h, resp.StatusCode)
		}
	}

	// Deleting a user.
	if r := e.call("DELETE", "/api/v1/users/carol", root.Token, nil); r.Status != http.StatusNoContent {
		t.Errorf("delete user: %s", r)
	}
	if r := e.call("DELETE", "/api/v1/users/root", root.Token, nil); r.Status != http.StatusConflict {
		t.Errorf("self-delete: %s, want 409", r)
	}
}

func TestMembers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		bob := e.user("bob", false)
		e.createPipeline("hello", alice, nil)

		if r := e.call("GET", "/api/v1/pipelines/hello", bob.Token, nil); r.Status != http.StatusNotFound {
			t.Fatalf("non-member: %s", r)
		}
		r := e.call("PUT", "/api/v1/pipelines/hello/members/bob", alice.Token, map[string]string{"role": "viewer"})
		if r.Status != http.StatusOK || string(r.Body) != `{"username":"bob","role":"viewer"}`+"\n" {
			t.Fatalf("add member: %s", r)
		}
		if r := e.call("GET", "/api/v1/pipelines/hello", bob.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"role":"viewer"`) {
			t.Errorf("viewer: %s", r)
		}
		if r := e.call("POST", "/api/v1/pipelines/hello/runs", bob.Token, nil); r.Status != http.StatusForbidden || r.errorCode() != "forbidden" {
			t.Errorf("viewer starts a run: %s, want 403", r)
		}
		r = e.call("GET", "/api/v1/pipelines/hello/members", bob.Token, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `{"username":"alice","role":"admin"}`) {
			t.Errorf("members: %s", r)
		}
		for _, c := range []struct {
			path, role string
			status     int
		}{
			{"/members/bob", "owner", http.StatusBadRequest},
			{"/members/nobody", "viewer", http.StatusNotFound},
			{"/members/alice", "viewer", http.StatusConflict}, // the only admin
		} {
			if r := e.call("PUT", "/api/v1/pipelines/hello"+c.path, alice.Token, map[string]string{"role": c.role}); r.Status != c.status {
				t.Errorf("PUT %s %s: %s, want %d", c.path, c.role, r, c.status)
			}
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello/members/alice", alice.Token, nil); r.Status != http.StatusConflict {
			t.Errorf("removing the only admin: %s, want 409", r)
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello/members/bob", alice.Token, nil); r.Status != http.StatusNoContent {
			t.Errorf("remove member: %s", r)
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello/members/bob", alice.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("remove a non-member: %s, want 404", r)
		}
		if r := e.call("GET", "/api/v1/pipelines/hello", bob.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("removed member: %s, want 404", r)
		}
	})
}

func TestUnmatchedRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	r := e.call("GET", "/api/v1/nothing", "", nil)
	if r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("unknown path: %s", r)
	}
	r = e.call("PATCH", "/api/v1/pipelines", "", nil)
	if r.Status != http.StatusMethodNotAllowed || r.errorCode() != "method_not_allowed" || !strings.Contains(r.Header.Get("Allow"), "POST") {
		t.Errorf("wrong method: %s (Allow %q)", r, r.Header.Get("Allow"))
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	// A server without a store panics in its handlers; the answer is still a JSON 500.
	s := &api.Server{Logger: storetest.Logger(t)}
	e := &env{t: t}
	e.srv = newServer(t, s)
	r := e.call("GET", "/api/v1/user", "flowd_x", nil)
	if r.Status != http.StatusInternalServerError || r.errorCode() != "internal" {
		t.Errorf("panic: %s, want 500 internal", r)
	}
}

// TestMetricsAccess: /metrics names pipelines, so it answers only the metrics token and global
// admins: anonymous callers get 401 with how to read it, other users 403, a wrong token 401;
// the handler for --metrics-addr is open without a metrics token and needs it when one is set.
func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	alice, root := e.user("alice", false), e.user("root", true)
	if r := e.hook(e.newHook("private-plans", nil).token, "application/json", `{}`); r.Status != http.StatusAccepted {
		t.Fatalf("webhook: %s", r)
	}
	cases := []struct {
		name, token string
		want        int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"a user", alice.Token, http.StatusForbidden},
		{"a wrong token", "test-metrics-token-5c2f", http.StatusUnauthorized},
		{"a global admin", root.Token, http.StatusOK},
		{"the metrics token", testMetricsToken, http.StatusOK},
	}
	for _, c := range cases {
		r := e.call("GET", "/metrics", c.token, nil)
		if r.Status != c.want {
			t.Errorf("%s → %s, want %d", c.name, r, c.want)
		}
		if leaks := strings.Contains(string(r.Body), "private-plans"); leaks != (c.want == http.StatusOK) {
			t.Errorf("%s: the answer names the pipeline: %v", c.name, leaks)
		}
		if c.want == http.StatusUnauthorized && c.token == "" && !strings.Contains(string(r.Body), "--metrics-token") {
			t.Errorf("the 401 does not say how to read /metrics: %s", r)
		}
	}

	for _, token := range []string{"", testMetricsToken} {
		srv := httptest.NewServer((&api.Server{Store: e.st, Metrics: metrics.New(), MetricsToken: token}).MetricsHandler())
		t.Cleanup(srv.Close)
		get := func(bearer string) int {
			req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if token == "" {
			if code := get(""); code != http.StatusOK {
				t.Errorf("the metrics address without a metrics token, anonymous → %d, want 200", code)
			}
			continue
		}
		if code := get(""); code != http.StatusUnauthorized {
			t.Errorf("the metrics address with a metrics token, anonymous → %d, want 401", code)
		}
		if code := get(root.Token); code != http.StatusUnauthorized {
			t.Errorf("the metrics address with a metrics token, an admin's API token → %d, want 401", code)
		}
		if code := get(token); code != http.StatusOK {
			t.Errorf("the metrics address with its token → %d, want 200", code)
		}
	}
}
