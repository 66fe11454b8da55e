package web_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/web"
)

// env is the API and the UI over one real store, as `flowd serve` combines them.
type env struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
}

func newEnv(t *testing.T, dialect, externalURL string) *env {
	t.Helper()
	st := storetest.Open(t, dialect)
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	signIn := auth.NewThrottle(3, time.Minute) // shared by the API and the pages, as in the app
	a := &api.Server{Store: st, Triggers: &trigger.Service{Store: st, Box: box}, Box: box,
		ExternalURL: externalURL, Logger: storetest.Logger(t), PasswordCost: 4, SignIn: signIn}
	ui := web.New(web.Config{Store: st, ExternalURL: externalURL, SignIn: signIn, Logger: storetest.Logger(t)})
	srv := httptest.NewServer(web.Combine(a.Handler(), ui))
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, srv: srv}
}

func (e *env) user(name string, admin bool) store.User {
	e.t.Helper()
	hash, err := auth.HashPasswordCost("password-"+name, 4)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.st.UserCreate(context.Background(), name, hash, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// browser is a cookie-keeping client that does not follow redirects.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// signIn signs c in as name through the form and returns the page's CSRF token.
func (e *env) signIn(c *http.Client, name string) string {
	e.t.Helper()
	_, page := get(e.t, c, e.srv.URL+"/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("the sign-in page has no csrf field:\n%s", page)
	}
	resp, body := postForm(e.t, c, e.srv.URL+"/login", url.Values{"csrf": {m[1]}, "username": {name}, "password": {"password-" + name}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d\n%s", name, resp.StatusCode, body)
	}
	_, home := get(e.t, c, e.srv.URL+"/")
	mm := metaCSRF.FindStringSubmatch(home)
	if mm == nil {
		e.t.Fatalf("the signed-in page has no csrf meta tag:\n%s", home)
	}
	return mm[1]
}

func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestWebSignInAndOut(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, "http://flowd.test")
		e.user("alice", false)
		c := e.browser()

		resp, _ := get(t, c, e.srv.URL+"/pipelines/hello?x=1")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fpipelines%2Fhello%3Fx%3D1" {
			t.Fatalf("signed-out page = %d → %q, want 303 to the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
		}

		// Login CSRF: a form post without the pre-session cookie's token is refused.
		other := e.browser()
		resp, _ = postForm(t, other, e.srv.URL+"/login", url.Values{"csrf": {"forged"}, "username": {"alice"}, "password": {"password-alice"}})
		if resp.StatusCode != http.StatusForbidden || hasCookie(resp, web.SessionCookie) {
			t.Errorf("sign-in without the CSRF cookie = %d, want 403 and no session", resp.StatusCode)
		}

		_, page := get(t, c, e.srv.URL+"/login?next=/pipelines/hello")
		token := hiddenCSRF.FindStringSubmatch(page)[1]
		resp, body := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {token}, "username": {"alice"}, "password": {"wrong-password"}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password") {
			t.Errorf("wrong password = %d, want 401 with a message", resp.StatusCode)
		}
		_, page = get(t, c, e.srv.URL+"/login")
		token = hiddenCSRF.FindStringSubmatch(page)[1]
		resp, _ = postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {token}, "username": {"alice"}, "password": {"password-alice"}, "next": {"//evil.example/"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("sign-in with next=//evil.example = %d → %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
		}
		sc := cookieNamed(resp, web.SessionCookie)
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure || len(sc.Value) < 40 {
			t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure over http, 256 random bits", sc)
		}

		resp, home := get(t, c, e.srv.URL+"/")
		if resp.StatusCode != 200 || !strings.Contains(home, "alice") {
			t.Fatalf("home after sign-in = %d", resp.StatusCode)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("pages lack %s", h)
			}
		}
		csrf := metaCSRF.FindStringSubmatch(home)[1]

		// Sign-out needs the session's token.
		resp, _ = postForm(t, c, e.srv.URL+"/logout", url.Values{"csrf": {"forged"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-out with a forged token = %d, want 403", resp.StatusCode)
		}
		resp, _ = postForm(t, c, e.srv.URL+"/logout", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("sign-out = %d, want 303", resp.StatusCode)
		}
		if _, _, err := e.st.SessionGet(context.Background(), web.SessionID(sc.Value)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the session after sign-out: %v; want it gone", err)
		}
		resp, _ = get(t, c, e.srv.URL+"/")
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("home after sign-out = %d, want 303 to the sign-in page", resp.StatusCode)
		}
	})
}

func TestWebSecureCookieBehindHTTPS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", "https://ci.example.com")
	e.user("alice", false)
	// A cookie jar would keep Secure cookies back over http; carry them by hand.
	resp, page := get(t, http.DefaultClient, e.srv.URL+"/login")
	login := resp.Cookies()
	if len(login) != 1 || !login[0].Secure {
		t.Fatalf("sign-in page cookies = %+v, want one Secure CSRF cookie", login)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(url.Values{
		"csrf": {hiddenCSRF.FindStringSubmatch(page)[1]}, "username": {"alice"}, "password": {"password-alice"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: login[0].Name, Value: login[0].Value})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := cookieNamed(resp, web.SessionCookie); resp.StatusCode != http.StatusSeeOther || sc == nil || !sc.Secure {
		t.Errorf("sign-in with an https external URL = %d, cookie %+v; want a Secure session cookie", resp.StatusCode, sc)
	}
}

func TestWebPagesFollowRoles(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, "http://flowd.test")
		admin := e.user("padmin", false)
		viewer := e.user("vera", false)
		e.user("nemo", false)
		root := e.user("root", true)
		ctx := context.Background()
		p, err := e.st.PipelineCreate(ctx, "hello", "name: hello\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", nil, admin.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.MemberSet(ctx, p.ID, viewer.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		_ = root
		cases := []struct {
			user, path string
			status     int
			has, lacks []string
		}{
			{"padmin", "/pipelines/hello", 200, []string{`id="hook-enabled"`, `id="member-add"`, `id="run-form"`, `data-mode="edit"`, `<a href="/" aria-current="page">Pipelines</a>`, `<option value="cron">schedule</option>`},
				[]string{`href="/account" aria-current`}},
			{"vera", "/pipelines/hello", 200, []string{`data-mode="view"`}, []string{`id="hook-enabled"`, `id="member-add"`, `id="run-form"`, "/deliveries"}},
			{"nemo", "/pipelines/hello", 404, []string{"Not found"}, []string{`data-name="hello"`}},
			{"root", "/pipelines/hello", 200, []string{`id="hook-enabled"`}, nil},
			{"vera", "/pipelines/hello/deliveries", 403, []string{"developer or higher"}, nil},
			{"padmin", "/pipelines/hello/deliveries", 200, []string{`id="dl-list"`}, nil},
			{"nemo", "/pipelines/hello/deliveries", 404, nil, nil},
			{"vera", "/admin/users", 403, nil, []string{`id="user-add"`}},
			{"root", "/admin/users", 200, []string{`id="user-add"`, `href="/admin/nodes"`}, nil},
			{"vera", "/admin/nodes", 403, []string{"Only global administrators see the nodes"}, []string{`id="node-list"`, `href="/admin/nodes"`}},
			{"root", "/admin/nodes", 200, []string{`id="node-list"`, `<a href="/admin/nodes" aria-current="page">Nodes</a>`}, []string{`href="/" aria-current`, `href="/admin/users" aria-current`}},
			{"vera", "/account/tokens", 200, []string{`id="token-add"`}, nil},
			{"vera", "/account", 200, []string{`id="password-change"`, `autocomplete="current-password"`, `<a href="/account" aria-current="page">Account</a>`},
				[]string{`href="/account/tokens" aria-current`}},
			{"vera", "/runs/999", 404, nil, nil},
			{"vera", "/no/such/page", 404, []string{"Page not found"}, nil},
		}
		clients := map[string]*http.Client{}
		for _, c := range cases {
			cl := clients[c.user]
			if cl == nil {
				cl = e.browser()
				e.signIn(cl, c.user)
				clients[c.user] = cl
			}
			resp, body := get(t, cl, e.srv.URL+c.path)
			if resp.StatusCode != c.status {
				t.Errorf("%s GET %s = %d, want %d", c.user, c.path, resp.StatusCode, c.status)
			}
			for _, s := range c.has {
				if !strings.Contains(body, s) {
					t.Errorf("%s GET %s: the page lacks %s", c.user, c.path, s)
				}
			}
			for _, s := range c.lacks {
				if strings.Contains(body, s) {
					t.Errorf("%s GET %s: the page has %s, which this role must not see", c.user, c.path, s)
				}
			}
		}
	})
}

func TestWebAssets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", "http://flowd.test")
	c := e.browser()
	for _, c2 := range []struct{ path, ctype, has string }{
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/favicon.svg?status=failed", "image/svg+xml", "#cf222e"},
		{"/favicon.svg?status=success", "image/svg+xml", "#1f883d"},
		{"/static/app.js", "javascript", "X-CSRF-Token"},
		{"/static/app.css", "text/css", ".badge"},
		{"/healthz", "", "ok"},
	} {
		resp, body := get(t, c, e.srv.URL+c2.path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), c2.ctype) || !strings.Contains(body, c2.has) {
			t.Errorf("GET %s = %d %s, want 200 %s with %q", c2.path, resp.StatusCode, resp.Header.Get("Content-Type"), c2.ctype, c2.has)
		}
	}
	// The API keeps its JSON answers, also for unknown API paths.
	resp, body := get(t, c, e.srv.URL+"/api/v1/nope")
	if resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("GET /api/v1/nope = %d %s, want the API's JSON 404", resp.StatusCode, body)
	}
}

func hasCookie(resp *http.Response, name string) bool { return cookieNamed(resp, name) != nil }

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.MaxAge >= 0 && c.Value != "" {
			return c
		}
	}
	return nil
}

// TestWebSignInThrottle: after 3 wrong passwords for a user from one address the sign-in form
// refuses even the right one (429, with a message and Retry-After), and the API's token
// endpoint shares the count.
func TestWebSignInThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", "http://flowd.test")
	e.user("alice", false)
	c := e.browser()
	try := func(password string) (*http.Response, string) {
		_, page := get(t, c, e.srv.URL+"/login")
		token := hiddenCSRF.FindStringSubmatch(page)[1]
		return postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {token}, "username": {"alice"}, "password": {password}})
	}
	for i := range 3 {
		if resp, _ := try("wrong-password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := try("password-alice")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many wrong passwords") || hasCookie(resp, web.SessionCookie) {
		t.Fatalf("right password after 3 failures = %d, want 429 with a message and no session", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", nil)
	req.SetBasicAuth("alice", "password-alice")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the API after 3 failed sign-ins in the browser = %d, want 429", r2.StatusCode)
	}
}
