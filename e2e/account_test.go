package e2e

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// authWatch records, in one browser tab, every HTTP auth challenge the browser's network stack
// meets on /api/v1/tokens (Fetch.authRequired: what would open the browser's sign-in dialog;
// it is canceled) and the status and WWW-Authenticate header of every answer to a POST there.
// The requests are paused at both stages (an auth challenge is only reported for a request
// intercepted before it is sent) and continued at once.
type authWatch struct {
	mu         sync.Mutex
	challenges []string // URL and scheme of each auth challenge
	answers    []string // "<status> <WWW-Authenticate>" of each answer to the tokens endpoint
}

func watchAuth(b *browser) *authWatch {
	b.t.Helper()
	aw := &authWatch{}
	ctx, cancel := context.WithCancel(b.ctx)
	b.t.Cleanup(cancel)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auths := chromedp.Events(ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if ev.Request != nil && ev.Request.Method == "POST" && ev.ResponseStatusCode != 0 {
				ww := ""
				for _, h := range ev.ResponseHeaders {
					if strings.EqualFold(h.Name, "WWW-Authenticate") {
						ww = h.Value
					}
				}
				aw.mu.Lock()
				aw.answers = append(aw.answers, strings.TrimSpace(strconv.FormatInt(ev.ResponseStatusCode, 10)+" "+ww))
				aw.mu.Unlock()
			}
			// An error here (the tab closed) leaves the request paused: the test then fails on
			// its wait, which names the step.
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auths {
			if err != nil {
				return
			}
			aw.mu.Lock()
			aw.challenges = append(aw.challenges, ev.Request.URL+" "+ev.AuthChallenge.Scheme)
			aw.mu.Unlock()
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}})
		}
	}()
	yes := true
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes,
		Patterns: []*fetch.RequestPattern{
			{URLPattern: "*/api/v1/tokens", RequestStage: fetch.RequestStageRequest},
			{URLPattern: "*/api/v1/tokens", RequestStage: fetch.RequestStageResponse}}}); err != nil {
		b.t.Fatalf("Fetch.enable: %v", err)
	}
	return aw
}

func (aw *authWatch) seen() (challenges, answers []string) {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	return append([]string(nil), aw.challenges...), append([]string(nil), aw.answers...)
}

// TestUITokensWrongPassword: on the API tokens page a wrong password says "Wrong password" in
// the page, and the browser meets no HTTP auth challenge (no sign-in dialog): the API answers
// the page's request 401 without a Basic challenge, while a script's request (curl's documented
// flow, and a fetch without the page's header as a control of the watch) still gets one. The
// right password then creates a token.
func TestUITokensWrongPassword(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	requireUI(t, s)
	admin := s.token("admin", adminPassword)
	s.user(admin, "vera")

	b := newBrowser(t, s.URL)
	b.signIn("vera", "vera-password")
	aw := watchAuth(b)
	b.click(`nav a[href="/account/tokens"]`)
	b.waitJS("the tokens page", `document.querySelector('#token-list tbody td') && !document.querySelector('#token-list tbody').innerText.includes('Loading')`)
	b.fill(`#token-add input[name=name]`, "laptop")
	b.fill(`#token-add input[name=password]`, "not-my-password")
	b.click(`#token-add button[type=submit]`)
	b.waitJS("the page's wrong-password message", `!document.querySelector('#token-error').hidden`)
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		t.Logf("screenshots: %s %s", b.screenshot(dir, "tokens-wrong-password-phone", 390, 844), b.screenshot(dir, "tokens-wrong-password-laptop", 1280, 800))
	}
	if msg := b.str(`document.querySelector('#token-error').innerText`); !strings.Contains(msg, "Wrong password") {
		t.Errorf("the tokens page says %q after a wrong password; want Wrong password", msg)
	}
	if b.str(`location.pathname`) != "/account/tokens" {
		t.Errorf("a wrong password left the tokens page for %s", b.str(`location.href`))
	}
	challenges, answers := aw.seen()
	if len(challenges) != 0 {
		t.Errorf("the page's request met HTTP auth challenges %q (the browser's sign-in dialog)", challenges)
	}
	if len(answers) != 1 || !strings.HasPrefix(answers[0], "401") || strings.Contains(answers[0], "Basic") {
		t.Errorf("the browser saw the answers %q to the page's POST /api/v1/tokens; want one 401 without a Basic challenge", answers)
	}

	// A Go request with the headers the page sends gets no Basic challenge; curl's gets one.
	for _, page := range []bool{true, false} {
		req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", strings.NewReader(`{"name":"laptop"}`))
		req.SetBasicAuth("vera", "not-my-password")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		if page {
			req.Header.Set("X-Requested-With", "flowd-web")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ww := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 401 || strings.HasPrefix(ww, "Basic") == page {
			t.Errorf("POST /api/v1/tokens, wrong password, the page's headers %v → %d WWW-Authenticate %q", page, resp.StatusCode, ww)
		}
	}

	// The control: the same request without the page's header, from the page, meets a
	// challenge the watch sees, so the watch above could have failed.
	b.eval(`fetch('/api/v1/tokens', {method: 'POST', headers: {Authorization: 'Basic ' + btoa('vera:not-my-password')}}).then(r => r.status)`, nil)
	challenges, answers = aw.seen()
	if len(answers) != 2 || !strings.Contains(answers[1], "Basic") || len(challenges) != 1 {
		t.Errorf("a fetch without the page's header: the browser saw answers %q and challenges %q; want a Basic challenge", answers, challenges)
	}

	b.fill(`#token-add input[name=password]`, "vera-password")
	b.click(`#token-add button[type=submit]`)
	b.waitJS("the new token", `document.querySelector('#token-value') !== null`)
	if !b.truthy(`document.querySelector('#token-error').hidden`) {
		t.Error("the wrong-password message stays after a token was created")
	}
	if v := b.str(`document.querySelector('#token-value').value`); v == "" {
		t.Error("no token shown after the right password")
	}
}

// TestUIChangePassword: a user changes their password on the account page: a wrong current
// password, two different new ones and a short new one are refused in the page and change
// nothing; a right change signs the session out, the new password then signs in and the old
// one does not.
func TestUIChangePassword(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	requireUI(t, s)
	admin := s.token("admin", adminPassword)
	s.user(admin, "vera")

	b := newBrowser(t, s.URL)
	b.signIn("vera", "vera-password")
	b.click(`nav a[href="/account"]`)
	b.waitJS("the account page", `document.querySelector('#password-change') !== null`)
	try := func(cur, new, again, want string) {
		t.Helper()
		b.eval(`document.querySelector('#password-error').hidden = true, true`, nil)
		b.fill(`#password-change input[name=current]`, cur)
		b.fill(`#password-change input[name=new]`, new)
		b.fill(`#password-change input[name=again]`, again)
		b.click(`#password-change button[type=submit]`)
		b.waitJS("the page's message", `!document.querySelector('#password-error').hidden`)
		if msg := b.str(`document.querySelector('#password-error').innerText`); !strings.Contains(msg, want) {
			t.Errorf("current %q, new %q, again %q: the page says %q, want %q", cur, new, again, msg, want)
		}
	}
	try("wrong-password", "brand-new-password", "brand-new-password", "Wrong current password")
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		t.Logf("screenshots: %s %s", b.screenshot(dir, "account-phone", 390, 844), b.screenshot(dir, "account-laptop", 1280, 800))
	}
	try("vera-password", "brand-new-password", "brand-new-passw0rd", "differ")
	try("vera-password", "short", "short", "8 to 72 bytes")
	if b.str(`location.pathname`) != "/account" {
		t.Fatalf("a refused change left the account page for %s", b.str(`location.href`))
	}

	newPW := "brand-new-password"
	b.fill(`#password-change input[name=current]`, "vera-password")
	b.fill(`#password-change input[name=new]`, newPW)
	b.fill(`#password-change input[name=again]`, newPW)
	b.click(`#password-change button[type=submit]`)
	b.waitJS("the change's confirmation", `!document.querySelector('#password-done').hidden`)
	b.click(`#password-done a`)
	b.waitJS("the sign-in page", `location.pathname === "/login"`)

	// The old password no longer signs in; the new one does, and lands on the account page.
	b.open("/login?next=/account")
	b.do("sign in with the old password",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "vera"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "vera-password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the sign-in page's error", `document.body.innerText.includes("Wrong username or password")`)
	b.signIn("vera", newPW)
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", nil)
	req.SetBasicAuth("vera", "vera-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("the old password on the API after the change → %d, want 401", resp.StatusCode)
	}
	s.token("vera", newPW)
}

// TestCLIPasswd: `flowd passwd` changes the caller's own password: a wrong current password and
// a short new one fail with the server's words and change nothing; a right change makes the
// new password sign in and the old one not, and the token the command used keeps working.
func TestCLIPasswd(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	admin := s.token("admin", adminPassword)
	vera := s.user(admin, "vera")
	signIn := func(pw string) int {
		req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", nil)
		req.SetBasicAuth("vera", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct{ stdin, want string }{
		{"wrong-password\nbrand-new-password\n", "the current password is wrong"},
		{"vera-password\nshort\n", "8 to 72 bytes"},
		{"vera-password\n", "two lines"},
	} {
		if _, stderr, code := s.cliIn(vera, tc.stdin, "passwd", "--password-stdin"); code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("flowd passwd with stdin %q: exit %d, stderr %q; want 1 and %q", tc.stdin, code, stderr, tc.want)
		}
	}
	if got := signIn("vera-password"); got != 201 {
		t.Fatalf("after the refused changes, the old password → %d, want 201", got)
	}
	// Prompts read from a pipe: current, new, new again.
	if _, stderr, code := s.cliIn(vera, "vera-password\nbrand-new-password\nbrand-new-passw0rd\n", "passwd"); code != 1 || !strings.Contains(stderr, "differ") {
		t.Errorf("two different new passwords: exit %d, stderr %q", code, stderr)
	}
	stdout, stderr, code := s.cliIn(vera, "vera-password\nbrand-new-password\nbrand-new-password\n", "passwd")
	if code != 0 || !strings.Contains(stdout, "password of vera changed") {
		t.Fatalf("flowd passwd: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := signIn("vera-password"); got != 401 {
		t.Errorf("the old password after flowd passwd → %d, want 401", got)
	}
	if got := signIn("brand-new-password"); got != 201 {
		t.Errorf("the new password after flowd passwd → %d, want 201", got)
	}
	if stdout, _, code := s.cli(vera, "whoami"); code != 0 || !strings.Contains(stdout, "vera") {
		t.Errorf("the token flowd passwd used, after the change: whoami exit %d %q", code, stdout)
	}
}
