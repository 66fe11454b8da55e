package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
)

// TestTokenCreateChallenge: POST /api/v1/tokens without or with wrong HTTP Basic credentials
// is 401 with a Basic challenge for a script (curl's documented flow), and 401 without one for
// the web UI's own request (X-Requested-With), so a browser never opens its sign-in dialog.
func TestTokenCreateChallenge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	alice := e.user("alice", false)
	for _, tc := range []struct {
		name     string
		basic    *[2]string
		page     bool
		wantBasc bool
	}{
		{"script, no credentials", nil, false, true},
		{"script, wrong password", &[2]string{"alice", "wrong-password"}, false, true},
		{"page, no credentials", nil, true, false},
		{"page, wrong password", &[2]string{"alice", "wrong-password"}, true, false},
	} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", nil)
		if tc.basic != nil {
			req.SetBasicAuth(tc.basic[0], tc.basic[1])
		}
		if tc.page {
			req.Header.Set(api.PageHeader, "flowd-web")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 401 || strings.HasPrefix(challenge, "Basic") != tc.wantBasc {
			t.Errorf("%s → %d, WWW-Authenticate %q; want 401 with a Basic challenge: %v", tc.name, resp.StatusCode, challenge, tc.wantBasc)
		}
	}
	// The right password still works from the page.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", nil)
	req.SetBasicAuth("alice", alice.Password)
	req.Header.Set(api.PageHeader, "flowd-web")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("the page's request with the right password → %d, want 201", resp.StatusCode)
	}
}

// TestUserPassword: PUT /api/v1/user/password changes the caller's own password after checking
// the current one; a wrong current password is 403 wrong_password, a weak or unchanged new one
// 400, and neither changes anything. A change ends the caller's web sessions; their API tokens
// keep working.
func TestUserPassword(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		{
			e := newEnv(t, dialect, func(s *api.Server) { s.SignIn = auth.NewThrottle(5, time.Minute) })
			alice, bob := e.user("alice", false), e.user("bob", false)
			path := "/api/v1/user/password"
			change := func(cur, new string) response {
				return e.call("PUT", path, alice.Token, map[string]string{"current_password": cur, "new_password": new})
			}
			signIn := func(user, pw string) int {
				return e.do(request{method: "POST", path: "/api/v1/tokens", basic: &[2]string{user, pw}}).Status
			}

			if r := e.call("PUT", path, "", map[string]string{"current_password": alice.Password, "new_password": "a-new-password"}); r.Status != 401 {
				t.Errorf("anonymous → %s, want 401", r)
			}
			if r := change("wrong-password", "a-new-password"); r.Status != 403 || r.errorCode() != "wrong_password" {
				t.Errorf("wrong current password → %s, want 403 wrong_password", r)
			}
			if r := change("", "a-new-password"); r.Status != 400 {
				t.Errorf("no current password → %s, want 400", r)
			}
			if r := change(alice.Password, "short"); r.Status != 400 || !strings.Contains(string(r.Body), "8 to 72 bytes") {
				t.Errorf("a 5-byte new password → %s, want 400 naming the rule", r)
			}
			if r := change(alice.Password, strings.Repeat("x", 73)); r.Status != 400 {
				t.Errorf("a 73-byte new password → %s, want 400", r)
			}
			if r := change(alice.Password, alice.Password); r.Status != 400 {
				t.Errorf("the same password again → %s, want 400", r)
			}
			if r := e.call("PUT", path, alice.Token, map[string]string{"current_password": alice.Password}); r.Status != 400 {
				t.Errorf("no new password → %s, want 400", r)
			}
			if got := signIn("alice", alice.Password); got != 201 {
				t.Fatalf("after the refused changes, the old password → %d, want 201 (nothing changed)", got)
			}

			cookie, csrf := e.sessionFor(alice, time.Hour)
			// The web UI's session changes it too, with its CSRF token.
			body := `{"current_password":"` + alice.Password + `","new_password":"a-new-password"}`
			if st, code := e.cookieCall("PUT", path, cookie, "", "", "application/json", body); st != 403 || code != "csrf" {
				t.Errorf("session without CSRF → %d %s, want 403 csrf", st, code)
			}
			other, _ := e.sessionFor(alice, time.Hour)
			if st, got := e.cookieCall("PUT", path, cookie, csrf, "", "application/json", body); st != 204 {
				t.Fatalf("a right change with the session and its CSRF token → %d %s, want 204", st, got)
			}
			if got := signIn("alice", alice.Password); got != 401 {
				t.Errorf("the old password after the change → %d, want 401", got)
			}
			if got := signIn("alice", "a-new-password"); got != 201 {
				t.Errorf("the new password → %d, want 201", got)
			}
			if got := signIn("bob", bob.Password); got != 201 {
				t.Errorf("another user's password → %d, want 201 (unchanged)", got)
			}
			for _, c := range []string{cookie, other} {
				if st, got := e.cookieCall("GET", "/api/v1/user", c, "", "", "", ""); st != 401 {
					t.Errorf("a web session of alice after the change → %d %s, want 401 (signed out)", st, got)
				}
			}
			if r := e.call("GET", "/api/v1/user", alice.Token, nil); r.Status != 200 {
				t.Errorf("alice's API token after the change → %s, want 200", r)
			}
			if r := change("a-new-password", "third-password"); r.Status != 204 {
				t.Fatalf("a change with an API token → %s, want 204", r)
			}
			if got := signIn("alice", "third-password"); got != 201 {
				t.Errorf("the password set with the token → %d, want 201", got)
			}
			// Wrong current passwords are throttled as sign-ins are.
			for range 5 {
				change("wrong-password", "a-new-password")
			}
			if r := change("third-password", "fourth-password"); r.Status != 429 || r.Header.Get("Retry-After") == "" {
				t.Errorf("after 5 wrong current passwords → %s, want 429 with Retry-After", r)
			}
		}
	})
}
