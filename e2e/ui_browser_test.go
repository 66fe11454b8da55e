package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the UI tests drive.
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium driven over the DevTools protocol; its one tab is reused by
// every step of a test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the server's URL
	shot int
}

// newBrowser starts Chromium for t, or skips t when it is not installed (fails instead under
// FLOWD_TEST_REQUIRE_ALL=1).
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("FLOWD_TEST_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("FLOWD_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("the browser tests need Chromium at %s (or FLOWD_TEST_CHROMIUM) and FLOWD_TEST_REQUIRE_ALL=1: %v", path, err)
		}
		t.Skipf("browser tests skipped: no Chromium at %s (install chromium or set FLOWD_TEST_CHROMIUM)", path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// fail saves a screenshot of the tab under the test's temp folder, prints its path, and fails.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		b.shot++
		p := filepath.Join(b.t.TempDir(), fmt.Sprintf("failure-%d.png", b.shot))
		if werr := os.WriteFile(p, png, 0o644); werr == nil {
			msg += "\nscreenshot: " + p
		}
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		msg += "\npage: " + loc
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`)); err == nil {
		msg += "\npage text:\n" + text
	}
	b.t.Fatal(msg)
}

// do runs actions with a time limit, failing the test with a screenshot on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// open navigates to path and waits for the page's script to be loaded.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
	b.waitJS("open "+path, `document.readyState === "complete"`)
}

// waitJS waits (up to a minute) until the JavaScript expression is truthy. A navigation while
// waiting (a form's submit) restarts the wait in the new page.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(b.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, chromedp.ErrPollingTimeout) || time.Now().After(deadline) || b.ctx.Err() != nil {
			b.fail("waiting for %s (%s): %v", what, expr, err)
		}
		time.Sleep(100 * time.Millisecond) // the page went away under the poll; ask the next one
	}
}

// eval evaluates a JavaScript expression (a promise is awaited) into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.fail("evaluate %s: %s is not a %T: %v", expr, raw, out, err)
		}
	}
}

func (b *browser) str(expr string) string {
	b.t.Helper()
	var s string
	b.eval(expr, &s)
	return s
}

func (b *browser) truthy(expr string) bool {
	b.t.Helper()
	var v bool
	b.eval("!!("+expr+")", &v)
	return v
}

// click clicks the element sel (a CSS selector) once it is shown and enabled.
//
// It waits until the element is shown and enabled, then clicks it from the page's own script
// in one step: a page that re-renders between a look-up and a mouse click (a list refreshing
// after a fetch) cannot make the click land on a node that no longer exists.
func (b *browser) click(sel string) {
	b.t.Helper()
	s, _ := json.Marshal(sel)
	b.waitJS("a clickable "+sel, fmt.Sprintf(`(() => { const el = document.querySelector(%s);
		return !!el && !el.disabled && el.getClientRects().length > 0 })()`, s))
	b.eval(fmt.Sprintf(`(() => { document.querySelector(%s).click(); return true })()`, s), nil)
}

// acceptConfirms makes window.confirm say yes in the current page (until it navigates).
func (b *browser) acceptConfirms() {
	b.t.Helper()
	b.eval(`window.confirm = () => true, true`, nil)
}

// fill sets a text field's value as typing would and lets the page see the input.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	v, _ := json.Marshal(value)
	s, _ := json.Marshal(sel)
	b.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.focus(); el.value = %s;
		el.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, s, v), nil)
}

// signIn signs in through the form.
func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.open("/login")
	b.submitSignIn(user, password)
}

// submitSignIn fills in and sends the sign-in form of the page open now.
func (b *browser) submitSignIn(user, password string) {
	b.t.Helper()
	b.waitJS("the sign-in page", `location.pathname === "/login" && document.readyState === "complete"`)
	b.do("sign in as "+user,
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the signed-in page", `document.querySelector("form.signout") !== null`)
}

// signOut uses the header's Sign out button.
func (b *browser) signOut() {
	b.t.Helper()
	b.click(`form.signout button`)
	b.waitJS("the sign-in page", `location.pathname === "/login"`)
}

// screenshot saves the tab at width×height into dir as name.png.
func (b *browser) screenshot(dir, name string, width, height int64) string {
	b.t.Helper()
	b.do("resize", chromedp.EmulateViewport(width, height))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// uiLog is the text of the run page's log, one line per row.
func (b *browser) uiLog() string {
	b.t.Helper()
	return b.str(`Array.from(document.querySelectorAll("#log .line .tx")).map(e => e.textContent).join("\n")`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func chromedpViewport(width, height int64) chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(width, height)
}
