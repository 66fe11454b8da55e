package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A browser drops tabs and newlines from a Location before resolving it (WHATWG URL), so a
// next of "/\t/evil.example" would send the signed-in user to //evil.example.
func TestWebSignInNextWithControlCharactersStaysOnSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", "http://flowd.test")
	e.user("alice", false)
	var c *http.Client
	// roundTrip sends req with c's cookies without parsing the answer's Location (Go's client
	// refuses control characters there; browsers strip them).
	roundTrip := func(req *http.Request) *http.Response {
		t.Helper()
		for _, ck := range c.Jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Jar.SetCookies(req.URL, resp.Cookies())
		return resp
	}
	offSite := func(loc string) bool {
		s := strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, strings.TrimLeft(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
		return strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(loc, "\t\x0b")
	}
	for _, next := range []string{"/\t/evil.example/", "/\n/evil.example/", "/\t\\evil.example/"} {
		c = e.browser()
		_, page := get(t, c, e.srv.URL+"/login")
		token := hiddenCSRF.FindStringSubmatch(page)[1]
		form := url.Values{"csrf": {token}, "username": {"alice"}, "password": {"password-alice"}, "next": {next}}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := roundTrip(req)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || offSite(loc) {
			t.Errorf("sign-in with next=%q = %d → %q, want 303 on this site", next, resp.StatusCode, loc)
		}
		// Signed in: /login?next= redirects at once.
		req, _ = http.NewRequest(http.MethodGet, e.srv.URL+"/login?next="+url.QueryEscape(next), nil)
		resp = roundTrip(req)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || offSite(loc) {
			t.Errorf("signed-in /login?next=%q = %d → %q, want 303 on this site", next, resp.StatusCode, loc)
		}
	}
}
