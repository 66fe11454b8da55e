package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestUIUsersDeleteAndReset deletes a user and resets passwords from the Users page, and does
// the same with `flowd user`: a delete takes the name typed again and ends the user's tokens,
// memberships and the webhook trigger they enabled (its deliveries are answered 403 naming
// them) while their pipeline stays; a reset (typed twice, or generated and shown once) lets the
// user sign in with the new password only and ends their web sessions; the admin's own row
// offers neither.
func TestUIUsersDeleteAndReset(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			dora := s.user(admin, "dora")
			s.user(admin, "rita")
			s.user(admin, "gina")
			hook := s.enableHook(dora, strings.Replace(strings.Replace(uiHello, "sleep 3", "true", 1), "name: ui-hello", "name: ui-dora", 1), "ui-dora", "")
			if code, a, _ := post(t, hook, `{}`); code != 202 {
				t.Fatalf("dora's webhook before the delete: %d %+v", code, a.Error)
			}
			ritaSession := s.webSession(t, "rita", "rita-password")

			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.open("/admin/users")
			b.waitJS("the user list", `document.querySelector('#user-list tr[data-user="rita"]') !== null`)
			if b.truthy(`document.querySelector('#user-list tr[data-user="admin"] [data-action=delete], #user-list tr[data-user="admin"] [data-action=reset]')`) {
				t.Error("the admin's own row offers to delete them or reset their password")
			}
			if !b.truthy(`document.querySelector('#user-list tr[data-user="admin"] a[href="/account"]')`) {
				t.Error("the admin's own row does not lead to the Account page to change their password")
			}

			// Delete: the button waits for the name typed exactly.
			b.click(`#user-list tr[data-user="dora"] [data-action=delete]`)
			b.waitJS("the delete dialog", `document.querySelector("#user-dialog").open && document.querySelector("#user-delete-name") !== null`)
			if text := b.str(`document.querySelector("#user-dialog").textContent`); !containsAll(text, "cannot be undone", "API tokens", "403 insufficient_permissions", "Disable") {
				t.Errorf("the delete dialog says %q", text)
			}
			usersScreenshot(b, "users-delete")
			b.fill("#user-delete-name", "dor")
			if !b.truthy(`document.querySelector("#user-delete-go").disabled`) {
				t.Error("Delete is enabled before the name is typed in full")
			}
			b.fill("#user-delete-name", "dora")
			b.click("#user-delete-go")
			b.waitJS("dora to leave the list", `!document.querySelector("#user-dialog").open && document.querySelector('#user-list tr[data-user="dora"]') === null &&
				document.querySelector('#user-list tr[data-user="rita"]') !== null`)
			if code := s.api(dora, "GET", "/api/v1/user", nil, nil); code != 401 {
				t.Errorf("deleted dora's token answers %d, want 401", code)
			}
			code, a, _ := post(t, hook, `{}`)
			if code != 403 || a.Error == nil || a.Error.Code != "insufficient_permissions" || !strings.Contains(a.Error.Message, "dora") {
				t.Errorf("the webhook dora enabled, after her delete: %d %+v; want 403 insufficient_permissions naming dora", code, a.Error)
			}
			var pl struct {
				Members []struct{ Username string } `json:"members"`
			}
			if code := s.api(admin, "GET", "/api/v1/pipelines/ui-dora", nil, nil); code != 200 {
				t.Errorf("dora's pipeline after her delete: %d, want it kept", code)
			}
			if code := s.api(admin, "GET", "/api/v1/pipelines/ui-dora/members", nil, &pl); code != 200 {
				t.Errorf("the members of dora's pipeline: %d", code)
			}
			for _, m := range pl.Members {
				if m.Username == "dora" {
					t.Error("deleted dora is still a member of ui-dora")
				}
			}

			// Reset by typing twice: two different passwords change nothing.
			b.click(`#user-list tr[data-user="rita"] [data-action=reset]`)
			b.waitJS("the reset dialog", `document.querySelector("#user-dialog").open && document.querySelector("#user-pw-new") !== null`)
			b.fill("#user-pw-new", "rita-new-password")
			b.fill("#user-pw-again", "rita-new-passw0rd")
			b.click("#user-pw-set")
			b.waitJS("the error", `!document.querySelector("#user-dialog-error").hidden`)
			if code := signInStatus(t, s, "rita", "rita-password"); code != 201 {
				t.Fatalf("after two different passwords rita's old one answers %d; nothing should have changed", code)
			}
			b.fill("#user-pw-again", "rita-new-password")
			b.click("#user-pw-set")
			b.waitJS("the dialog to close", `!document.querySelector("#user-dialog").open`)
			if code := signInStatus(t, s, "rita", "rita-password"); code != 401 {
				t.Errorf("rita's old password answers %d after the reset, want 401", code)
			}
			if code := signInStatus(t, s, "rita", "rita-new-password"); code != 201 {
				t.Errorf("rita's new password answers %d, want 201", code)
			}
			if code := webSessionStatus(t, s, ritaSession); code != 401 {
				t.Errorf("rita's web session answers %d after the reset, want 401 (a reset signs her out)", code)
			}

			// Reset with a generated password, shown once with a Copy button.
			b.click(`#user-list tr[data-user="gina"] [data-action=reset]`)
			b.waitJS("the reset dialog", `document.querySelector("#user-dialog").open && document.querySelector("#user-pw-generate") !== null`)
			b.click("#user-pw-generate")
			b.waitJS("the generated password", `document.querySelector("#user-pw-value") && document.querySelector("#user-pw-value").value.length >= 16`)
			made := b.str(`document.querySelector("#user-pw-value").value`)
			if !b.truthy(`Array.from(document.querySelectorAll("#user-dialog button")).some(x => x.textContent === "Copy")`) {
				t.Error("the generated password has no Copy button")
			}
			usersScreenshot(b, "users-reset-generated")
			if code := signInStatus(t, s, "gina", made); code != 201 {
				t.Errorf("gina's generated password answers %d, want 201", code)
			}
			if code := signInStatus(t, s, "gina", "gina-password"); code != 401 {
				t.Errorf("gina's old password answers %d, want 401", code)
			}
			b.eval(`(document.querySelector("#user-dialog").close(), true)`, nil)
			b.open("/admin/users")
			b.waitJS("the user list", `document.querySelector('#user-list tr[data-user="gina"]') !== null`)
			if strings.Contains(b.str(`document.body.textContent`), made) {
				t.Error("the generated password is shown again after the page was opened anew")
			}
			usersScreenshot(b, "users")

			// The same from the command line.
			out, errOut, code2 := s.cli(admin, "user", "passwd", "gina", "--generate")
			m := regexp.MustCompile(`new password of gina \(shown once\): (\S+)`).FindStringSubmatch(out)
			if code2 != 0 || m == nil || !strings.Contains(out, "their web sessions are signed out") {
				t.Fatalf("flowd user passwd gina --generate: exit %d\n%s%s", code2, out, errOut)
			}
			if code := signInStatus(t, s, "gina", m[1]); code != 201 {
				t.Errorf("the password flowd user passwd --generate printed answers %d", code)
			}
			if out, errOut, code := s.cliIn(admin, "gina-from-stdin\n", "user", "passwd", "gina", "--password-stdin"); code != 0 || signInStatus(t, s, "gina", "gina-from-stdin") != 201 {
				t.Errorf("flowd user passwd --password-stdin: exit %d\n%s%s", code, out, errOut)
			}
			if out, errOut, code := s.cli(admin, "user", "rm", "admin"); code == 0 || !strings.Contains(errOut, "cannot delete yourself") {
				t.Errorf("flowd user rm admin (yourself): exit %d\n%s%s", code, out, errOut)
			}
			if out, errOut, code := s.cli(admin, "user", "rm", "gina"); code != 0 || out != "user gina deleted\n" {
				t.Errorf("flowd user rm gina: exit %d\n%s%s", code, out, errOut)
			}
			if code := signInStatus(t, s, "gina", "gina-from-stdin"); code != 401 {
				t.Errorf("deleted gina signs in: %d", code)
			}
		})
	}
}

// signInStatus is the status of POST /api/v1/tokens with user and password: 201 when they
// sign in, 401 when not.
func signInStatus(t *testing.T, s *server, user, password string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// webSession signs in through the sign-in form, as a browser would, and returns the session
// cookie's value.
func (s *server) webSession(t *testing.T, user, password string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the sign-in form:\n%s", page)
	}
	form := url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {password}, "next": {"/"}}
	req, _ := http.NewRequest("POST", s.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "flowd_session" && c.Value != "" {
			if code := webSessionStatus(t, s, c.Value); code != 200 {
				t.Fatalf("the new web session of %s answers %d", user, code)
			}
			return c.Value
		}
	}
	t.Fatalf("signing in as %s through the form = %d and no session cookie", user, resp.StatusCode)
	return ""
}

// webSessionStatus is the status of GET /api/v1/user with the web session cookie.
func webSessionStatus(t *testing.T, s *server, session string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/user", nil)
	req.AddCookie(&http.Cookie{Name: "flowd_session", Value: session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// usersScreenshot saves the Users page at laptop and phone widths into $FLOWD_UI_SCREENSHOTS.
func usersScreenshot(b *browser, name string) {
	b.t.Helper()
	dir := os.Getenv("FLOWD_UI_SCREENSHOTS")
	if dir == "" || !strings.HasSuffix(b.t.Name(), "sqlite") {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", b.screenshot(dir, name+"-phone", 390, 844))
	b.t.Logf("screenshot: %s", b.screenshot(dir, name+"-laptop", 1280, 800))
}
