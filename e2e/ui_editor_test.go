package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestUIEditorKeepsEdits proves the Definition editor loses nothing a user typed: Tab indents
// and Esc then Tab leaves it; leaving with unsaved changes asks first (and not when there are
// none, or after a save); and a save after the session ended keeps the text, which is saved
// after signing in again in a new tab, or in the same tab, where the page puts it back.
func TestUIEditorKeepsEdits(t *testing.T) {
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	requireUI(t, s)
	admin := s.token("admin", adminPassword)
	if code := s.api(admin, "POST", "/api/v1/pipelines", strings.Replace(uiHello, "sleep 3", "true", 1), nil); code != 201 {
		t.Fatalf("create ui-hello: %d", code)
	}
	b := newBrowser(t, s.URL)
	b.signIn("admin", adminPassword)
	b.open("/pipelines/ui-hello#definition")
	b.waitJS("the definition", `document.querySelector("#yaml").value.includes("name: ui-hello")`)
	saved := b.str(`document.querySelector("#yaml").value`)

	// Nothing typed: leaving asks nothing.
	if b.beforeUnloadStops() {
		t.Error("the page asks before leaving with no unsaved change")
	}

	// Tab types two spaces at the caret, Shift+Tab takes them back, and Esc then Tab leaves
	// the editor with the text as it was. The keys are real key presses.
	b.eval(`(() => { const ta = document.querySelector("#yaml"); ta.focus();
		const at = ta.value.indexOf("stages:"); ta.setSelectionRange(at, at); return true })()`, nil)
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	if got := b.str(`(() => { const ta = document.querySelector("#yaml"); return ta.value.slice(ta.value.indexOf("stages:") - 3, ta.value.indexOf("stages:")) })()`); got != "\n  " {
		t.Errorf("after Tab the line reads %q before \"stages:\", want two spaces", got)
	}
	if !b.truthy(`document.activeElement === document.querySelector("#yaml")`) {
		t.Error("Tab left the editor")
	}
	b.do("press Shift+Tab", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if got := b.str(`document.querySelector("#yaml").value`); got != saved {
		t.Errorf("Shift+Tab did not take the two spaces back:\n%s", got)
	}
	// Several selected lines move together.
	b.eval(`(() => { const ta = document.querySelector("#yaml"); const at = ta.value.indexOf("  abc:");
		ta.setSelectionRange(at, ta.value.indexOf("  UI_SECRET:") + 4); return true })()`, nil)
	b.do("press Tab on two lines", chromedp.KeyEvent(kb.Tab))
	if !b.truthy(`document.querySelector("#yaml").value.includes("\n    abc: \"123\"\n    UI_SECRET:\n    secret: true")`) {
		t.Errorf("Tab on a selection of two lines gave:\n%s", b.str(`document.querySelector("#yaml").value`))
	}
	b.do("press Shift+Tab on two lines", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if got := b.str(`document.querySelector("#yaml").value`); got != saved {
		t.Errorf("Shift+Tab did not outdent the two lines back:\n%s", got)
	}
	b.do("press Esc then Tab", chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent(kb.Tab))
	if b.truthy(`document.activeElement === document.querySelector("#yaml")`) {
		t.Error("Esc then Tab did not leave the editor")
	}
	if got := b.str(`document.querySelector("#yaml").value`); got != saved {
		t.Errorf("Esc then Tab changed the text:\n%s", got)
	}

	// An unsaved change: a link asks first (and stays on No), and so does the browser's own
	// beforeunload question when the page would go by other means.
	b.eval(`(() => { const ta = document.querySelector("#yaml"); ta.focus(); ta.setSelectionRange(0, 0); return true })()`, nil)
	b.do("type a comment", chromedp.KeyEvent("# typed\n"))
	if !b.beforeUnloadStops() {
		t.Error("the page does not ask before leaving with an unsaved change")
	}
	b.eval(`(window.__asked = "", window.confirm = (m) => { window.__asked = m; return false }, true)`, nil)
	b.click(`.crumbs a`)
	if asked := b.str(`window.__asked`); !strings.Contains(asked, "unsaved changes") {
		t.Errorf("following a link with an unsaved change asked %q", asked)
	}
	if !b.truthy(`location.pathname === "/pipelines/ui-hello" && document.querySelector("#yaml").value.startsWith("# typed\n")`) {
		t.Error("the page left (or lost the text) after No")
	}
	b.reloadDismissed()
	if !b.truthy(`document.querySelector("#yaml").value.startsWith("# typed\n")`) {
		t.Error("the edit is gone after staying on the page")
	}

	// After a save nothing is unsaved.
	b.click("#yaml-save")
	b.waitJS("revision 2", `document.querySelector("#revision").textContent.includes("revision 2")`)
	if b.beforeUnloadStops() {
		t.Error("the page asks before leaving after a save")
	}

	// The session ends (signed out elsewhere) while an edit is open: Save keeps the text and
	// offers to sign in again.
	edit1 := strings.Replace(saved, "echo \"abc=$abc\"", "echo \"first edit after expiry\"", 1)
	b.fill("#yaml", edit1)
	s.endSession(b)
	b.click("#yaml-save")
	b.waitJS("the offer to sign in again", `document.querySelector("#yaml-reauth") !== null`)
	if !b.truthy(`document.querySelector("#yaml").value === ` + jsString(edit1)) {
		t.Error("the editor lost the text after the refused save")
	}
	if !b.truthy(`JSON.parse(sessionStorage.getItem("flowd:draft:ui-hello")).yaml === ` + jsString(edit1)) {
		t.Error("the edit is not kept in sessionStorage")
	}
	if rev := s.pipelineYAML(t, admin); strings.Contains(rev, "first edit") {
		t.Fatal("the refused save was stored")
	}

	// Sign in again in another tab (the browser gets a new session cookie), then Save here: the
	// page takes the new session's CSRF token.
	s.signInElsewhere(b)
	b.click("#yaml-retry")
	b.waitJS("revision 3", `document.querySelector("#revision").textContent.includes("revision 3")`)
	if !strings.Contains(s.pipelineYAML(t, admin), "first edit after expiry") {
		t.Error("the save after signing in in a new tab did not store the edit")
	}
	if b.truthy(`sessionStorage.getItem("flowd:draft:ui-hello") !== null || document.querySelector("#yaml-reauth") !== null`) {
		t.Error("the kept draft or the sign-in offer stays after the save")
	}

	// Again, signing in in the same tab this time: the page comes back with the edit restored.
	edit2 := strings.Replace(edit1, "first edit after expiry", "second edit after expiry", 1)
	b.fill("#yaml", edit2)
	s.endSession(b)
	b.click("#yaml-save")
	b.waitJS("the offer to sign in again", `document.querySelector("#yaml-signin") !== null`)
	editorScreenshot(b, "editor-signin-again")
	b.click("#yaml-signin")
	b.submitSignIn("admin", adminPassword)
	b.waitJS("the pipeline page with the edit restored", `location.pathname === "/pipelines/ui-hello" &&
		document.querySelector("#yaml-restored") !== null`)
	if notice := b.str(`document.querySelector("#yaml-restored").textContent`); !strings.Contains(notice, "Your unsaved edit was restored; review and save") {
		t.Errorf("the restored edit's notice reads %q", notice)
	}
	if !b.truthy(`document.querySelector("#yaml").value === ` + jsString(edit2)) {
		t.Errorf("the editor after signing in again holds:\n%s", b.str(`document.querySelector("#yaml").value`))
	}
	if !b.beforeUnloadStops() {
		t.Error("the restored edit does not count as unsaved")
	}
	editorScreenshot(b, "editor-restored")
	b.click("#yaml-save")
	b.waitJS("revision 4", `document.querySelector("#revision").textContent.includes("revision 4")`)
	if !strings.Contains(s.pipelineYAML(t, admin), "second edit after expiry") {
		t.Error("the restored edit was not saved")
	}
	b.open("/pipelines/ui-hello")
	b.waitJS("the definition", `document.querySelector("#yaml").value.includes("second edit after expiry")`)
	if b.truthy(`document.querySelector("#yaml-restored") !== null || sessionStorage.getItem("flowd:draft:ui-hello") !== null`) {
		t.Error("a saved edit is restored again")
	}

	// A new pipeline's text is kept the same way: the list page opens the editor with it.
	b.open("/")
	b.click("#new-toggle")
	b.waitJS("the new pipeline's editor", `document.querySelector("#yaml") !== null`)
	if b.beforeUnloadStops() {
		t.Error("the untouched new pipeline's example counts as unsaved")
	}
	fresh := strings.Replace(saved, "name: ui-hello", "name: ui-kept", 1)
	b.fill("#yaml", fresh)
	s.endSession(b)
	b.click("#yaml-save")
	b.click("#yaml-signin")
	b.submitSignIn("admin", adminPassword)
	b.waitJS("the list with the new pipeline's text restored", `location.pathname === "/" && document.querySelector("#yaml-restored") !== null &&
		document.querySelector("#yaml").value === `+jsString(fresh))
	b.click("#yaml-save")
	b.waitJS("the new pipeline's page", `location.pathname === "/pipelines/ui-kept"`)
	if b.truthy(`sessionStorage.getItem("flowd:draft:(new pipeline)") !== null`) {
		t.Error("the created pipeline's draft is kept after the save")
	}
}

// beforeUnloadStops reports whether the page's beforeunload handlers would ask before leaving.
func (b *browser) beforeUnloadStops() bool {
	b.t.Helper()
	return b.truthy(`(() => { const e = new Event("beforeunload", {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented })()`)
}

// reloadDismissed reloads the page and answers the browser's "leave this page?" question with
// Stay, failing unless that question was asked.
func (b *browser) reloadDismissed() {
	b.t.Helper()
	var mu sync.Mutex
	var asked []page.DialogType
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			mu.Lock()
			asked = append(asked, d.Type)
			mu.Unlock()
			go chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false}) //nolint:errcheck // checked by the page staying
		}
	}); err != nil {
		b.fail("listen for dialogs: %v", err)
	}
	b.eval(`window.__stayed = true`, nil)
	b.eval(`(setTimeout(() => location.reload(), 0), true)`, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(asked)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.fail("reloading with an unsaved change asked nothing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if asked[0] != page.DialogTypeBeforeunload {
		b.fail("reloading asked with a %s dialog, want beforeunload", asked[0])
	}
	b.waitJS("the page to stay", `window.__stayed === true`)
}

// endSession deletes the browser's session on the server, as signing out in another browser
// would: the cookie stays in the browser and no longer works.
func (s *server) endSession(b *browser) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL}})
	if err != nil {
		b.fail("read the cookies: %v", err)
	}
	var session string
	for _, c := range res.Cookies {
		if c.Name == "flowd_session" {
			session = c.Value
		}
	}
	if session == "" {
		b.fail("the browser has no flowd_session cookie")
	}
	form := url.Values{"csrf": {b.str(`document.querySelector('meta[name="csrf-token"]').content`)}}
	req, _ := http.NewRequest("POST", s.URL+"/logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "flowd_session", Value: session})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/login") {
		b.t.Fatalf("sign out elsewhere = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b.str(`fetch("/api/v1/user", {credentials: "same-origin"}).then(r => String(r.status))`) != "401" {
		b.t.Fatal("the browser's session still works after signing out elsewhere")
	}
}

// pipelineYAML is ui-hello's stored definition.
func (s *server) pipelineYAML(t *testing.T, token string) string {
	t.Helper()
	var p struct{ YAML string }
	if code := s.api(token, "GET", "/api/v1/pipelines/ui-hello", nil, &p); code != 200 {
		t.Fatalf("GET ui-hello: %d", code)
	}
	return p.YAML
}

// signInElsewhere signs in through the sign-in form with another HTTP client and gives the
// browser the new session's cookie, as signing in in another tab of it would.
func (s *server) signInElsewhere(b *browser) {
	b.t.Helper()
	session := s.webSession(b.t, "admin", adminPassword)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	httpOnly := true
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: "flowd_session", Value: session, URL: s.URL, Path: "/", HTTPOnly: &httpOnly}); err != nil {
		b.fail("give the browser the new session: %v", err)
	}
}

// editorScreenshot saves the Definition card at laptop and phone widths into
// $FLOWD_UI_SCREENSHOTS, when set.
func editorScreenshot(b *browser, name string) {
	b.t.Helper()
	dir := os.Getenv("FLOWD_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	b.eval(`(document.querySelector("#definition").scrollIntoView(), true)`, nil)
	b.t.Logf("screenshot: %s", b.screenshot(dir, name+"-phone", 390, 844))
	b.t.Logf("screenshot: %s", b.screenshot(dir, name+"-laptop", 1280, 800))
}
