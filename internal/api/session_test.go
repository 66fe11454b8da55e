package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// sessionFor signs u in as the web UI would and returns the cookie value and CSRF token.
func (e *env) sessionFor(u testUser, ttl time.Duration) (cookie, csrf string) {
	e.t.Helper()
	cookie, csrf = "cookie-"+u.Username+"-"+time.Now().Format("150405.000000000"), "csrf-"+u.Username
	if _, err := e.st.SessionCreate(context.Background(), auth.HashToken(cookie), u.ID, csrf, time.Now().Add(ttl)); err != nil {
		e.t.Fatal(err)
	}
	return cookie, csrf
}

// cookieCall sends a request with the session cookie, an optional CSRF header and bearer token.
func (e *env) cookieCall(method, path, cookie, csrf, bearer, ctype, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: cookie})
	}
	if csrf != "" {
		req.Header.Set(api.CSRFHeader, csrf)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct{ Error struct{ Code string } }
	_ = json.Unmarshal(b, &out)
	if out.Error.Code != "" {
		return resp.StatusCode, out.Error.Code
	}
	return resp.StatusCode, string(b)
}

func TestSessionCookieAuthAndCSRF(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		cookie, csrf := e.sessionFor(alice, time.Hour)
		def := testDefinition("web")

		// Reads need only the cookie.
		if code, body := e.cookieCall("GET", "/api/v1/user", cookie, "", "", "", ""); code != 200 || !strings.Contains(body, `"alice"`) {
			t.Errorf("GET /api/v1/user with the session cookie = %d %s, want 200 alice", code, body)
		}
		// Changes need the CSRF token too.
		cases := []struct {
			name, csrf string
			want       int
			code       string
		}{
			{"no CSRF header", "", 403, "csrf"},
			{"wrong CSRF header", "csrf-mallory", 403, "csrf"},
			{"right CSRF header", csrf, 201, ""},
		}
		for _, c := range cases {
			code, got := e.cookieCall("POST", "/api/v1/pipelines", cookie, c.csrf, "", "application/yaml", def)
			if code != c.want || (c.code != "" && got != c.code) {
				t.Errorf("%s: POST /api/v1/pipelines = %d %s, want %d %s", c.name, code, got, c.want, c.code)
			}
		}
		// A plain form post (what another site could make a browser send) is refused.
		if code, got := e.cookieCall("POST", "/api/v1/pipelines/web/runs", cookie, "", "", "application/x-www-form-urlencoded", "variables=x"); code != 403 || got != "csrf" {
			t.Errorf("form POST with the cookie = %d %s, want 403 csrf", code, got)
		}
		if code, got := e.cookieCall("DELETE", "/api/v1/pipelines/web", cookie, "", "", "", ""); code != 403 || got != "csrf" {
			t.Errorf("DELETE with the cookie and no CSRF = %d %s, want 403 csrf", code, got)
		}
		// The role rules are the API's: a member below admin cannot edit with a session either.
		bob := e.user("bob", false)
		bobCookie, bobCSRF := e.sessionFor(bob, time.Hour)
		if code, got := e.cookieCall("PUT", "/api/v1/pipelines/web", bobCookie, bobCSRF, "", "application/yaml", def); code != 404 {
			t.Errorf("non-member PUT with a session = %d %s, want 404", code, got)
		}
		// A bearer token wins over the cookie and needs no CSRF header.
		if code, got := e.cookieCall("POST", "/api/v1/pipelines/web/runs", bobCookie, "", alice.Token, "", ""); code != 201 {
			t.Errorf("bearer + someone else's cookie = %d %s, want 201 as the token's user", code, got)
		}
		// Unknown, expired and signed-out sessions are 401; so is a disabled user's.
		if code, got := e.cookieCall("GET", "/api/v1/user", "no-such-session", "", "", "", ""); code != 401 {
			t.Errorf("unknown session = %d %s, want 401", code, got)
		}
		old, _ := e.sessionFor(alice, -time.Minute)
		if code, got := e.cookieCall("GET", "/api/v1/user", old, "", "", "", ""); code != 401 {
			t.Errorf("expired session = %d %s, want 401", code, got)
		}
		yes := true
		if _, err := e.st.UserUpdate(context.Background(), bob.ID, store.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if code, got := e.cookieCall("GET", "/api/v1/user", bobCookie, "", "", "", ""); code != 401 {
			t.Errorf("disabled user's session = %d %s, want 401", code, got)
		}
		if err := e.st.SessionDelete(context.Background(), auth.HashToken(cookie)); err != nil {
			t.Fatal(err)
		}
		if code, got := e.cookieCall("GET", "/api/v1/user", cookie, "", "", "", ""); code != 401 {
			t.Errorf("signed-out session = %d %s, want 401", code, got)
		}
	})
}

func TestPipelineValidate(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		post := func(path, body string) response {
			return e.do(request{method: "POST", path: path, token: alice.Token, contentType: "application/yaml", body: strings.NewReader(body)})
		}
		if r := post("/api/v1/pipelines/validate", testDefinition("ok")); r.Status != 200 || !strings.Contains(string(r.Body), `"ok":true`) {
			t.Errorf("valid definition = %d %s, want 200 ok", r.Status, r.Body)
		}
		bad := "name: bad\nstages:\n  - name: build\n    jobs:\n      - name: j\n        steps:\n          - name: s\n            rnu: echo\n"
		r := post("/api/v1/pipelines/validate", bad)
		var out struct {
			Error struct {
				Code     string
				Problems []struct{ Line, Column int }
			}
		}
		if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != 422 || out.Error.Code != "invalid_pipeline" ||
			len(out.Error.Problems) == 0 || out.Error.Problems[0].Line == 0 {
			t.Errorf("invalid definition = %d %s, want 422 invalid_pipeline with line:column", r.Status, r.Body)
		}
		if r := post("/api/v1/pipelines/validate?pipeline=other", testDefinition("ok")); r.Status != 422 || !strings.Contains(string(r.Body), `"line":1`) {
			t.Errorf("name mismatch = %d %s, want 422 at line 1", r.Status, r.Body)
		}
		// Nothing was stored.
		if r := e.do(request{method: "GET", path: "/api/v1/pipelines/ok", token: alice.Token}); r.Status != 404 {
			t.Errorf("GET the validated pipeline = %d, want 404 (validate stores nothing)", r.Status)
		}
	})
}
