package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// uiHello is the pipeline the UI tests write in the editor: it waits a moment (so the run page
// is open before the interesting line), prints a green word and the variable abc.
const uiHello = `name: ui-hello
description: Says hello from the browser test
variables:
  abc: "123"
  UI_SECRET:
    secret: true
    default: "s3cret-ui-value"
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: wait
            run: sleep 3
          - name: echo
            run: |
              printf '\033[32mgreen\033[0m text\n'
              echo "abc=$abc"
`

// uiInvalid has an unknown key in a step: the editor must point at its line and column.
const uiInvalid = `name: ui-hello
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: echo
            rnu: echo hi
`

// requireUI fails with instructions when the binary does not serve the web UI.
func requireUI(t *testing.T, s *server) {
	t.Helper()
	resp, err := http.Get(s.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /login = %d %s: the web UI is not mounted; internal/app must serve "+
			"web.Combine(srv.Handler(), web.New(web.Config{…}))", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestUIPipelineWebhookRun is the UI's main story in one browser: sign in, create a pipeline in
// the editor (after seeing a problem at line:column), enable its webhook, call the URL read off
// the page, watch the live log, start a run from the form, cancel a long run, redeliver from
// the deliveries page, and refuse forged changes that lack the CSRF token.
func TestUIPipelineWebhookRun(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)

			// The editor shows problems with their line and column before anything is saved.
			b.open("/")
			b.click("#new-toggle")
			b.waitJS("the editor", `document.querySelector("#yaml") !== null`)
			b.fill("#yaml", uiInvalid)
			b.waitJS("a problem at line:column", `/(^|[^0-9])8:[0-9]+ /.test(document.querySelector("#yaml-problems").textContent)`)
			if problems := b.str(`document.querySelector("#yaml-problems").textContent`); !strings.Contains(problems, "rnu") {
				t.Errorf("the problem does not name the bad key: %q", problems)
			}
			if code := s.api(admin, "GET", "/api/v1/pipelines/ui-hello", nil, nil); code != 404 {
				t.Fatalf("the invalid definition was stored: GET = %d", code)
			}
			b.fill("#yaml", uiHello)
			b.waitJS("the definition to be valid", `document.querySelector("#yaml-state").textContent.includes("Valid")`)
			b.click("#yaml-save")
			b.waitJS("the new pipeline's page", `location.pathname === "/pipelines/ui-hello"`)

			// The run form is pre-filled; the secret is not shown anywhere.
			b.waitJS("the run form", `document.querySelector("#var-abc") && document.querySelector("#var-abc").value === "123"`)
			if b.truthy(`document.body.innerHTML.includes("s3cret-ui-value")`) {
				t.Error("the pipeline page shows the secret default")
			}

			// Enable the webhook in the panel (the Webhook tab) and read its URL off the page.
			b.click("#tab-webhook")
			b.waitJS("the webhook panel", `document.querySelector("#hook-state") !== null`)
			b.click("#hook-enabled")
			b.waitJS("the webhook URL", `document.querySelector("#hook-url") && document.querySelector("#hook-url").value.includes("/pipeline/webhook/")`)
			hookURL := b.str(`document.querySelector("#hook-url").value`)
			if curl := b.str(`document.querySelector("#hook-curl").textContent`); !strings.Contains(curl, hookURL) || !strings.Contains(curl, "curl -X POST") {
				t.Errorf("the curl command %q does not call %s", curl, hookURL)
			}
			// The variable webhook's command overrides the first variable (default 123) with
			// another value, as `flowd webhook enable` prints it, and works as pasted.
			curlVars := b.str(`document.querySelector("#hook-curl-vars").textContent`)
			if !strings.Contains(curlVars, `--data '{"abc":"456"}'`) {
				t.Errorf("the variable webhook's command %q does not override abc with 456", curlVars)
			}
			if out, err := runShell(t, curlVars); err != nil || !strings.Contains(out, `"run"`) {
				t.Errorf("the panel's command as pasted: %v\n%s", err, out)
			}
			if owner := b.str(`document.querySelector("#hook").textContent`); !strings.Contains(owner, "admin") {
				t.Errorf("the panel does not name the owner: %q", owner)
			}

			// A caller posts variables to the URL; the run page shows them live.
			code, ans, _ := post(t, hookURL, `{"abc":"456"}`)
			if code != 202 || ans.Run == nil {
				t.Fatalf("POST the webhook URL read off the page = %d %+v", code, ans)
			}
			b.open(fmt.Sprintf("/runs/%d", ans.Run.ID))
			b.eval(`window.__sameDocument = true`, nil)
			b.waitJS("abc=456 in the live log", `Array.from(document.querySelectorAll("#log .tx")).some(e => e.textContent === "abc=456")`)
			if !b.truthy(`window.__sameDocument === true`) {
				t.Error("the page reloaded to show the log; it must stream")
			}
			b.waitJS("the run to succeed", `document.querySelector("#run-status").textContent.includes("success")`)
			if !b.truthy(`document.querySelector("#log .f32") && document.querySelector("#log .f32").textContent === "green"`) {
				t.Errorf("the ANSI green is not coloured; log: %q", b.uiLog())
			}
			if !b.truthy(`/^#J\d+-L1$/.test(document.querySelector("#log .line a.ln").getAttribute("href"))`) {
				t.Error("log lines have no #L links")
			}
			if !b.truthy(`document.querySelector("#favicon").href.includes("status=success")`) {
				t.Error("the favicon does not show the run's status")
			}
			stages := b.str(`document.querySelector("#stages").textContent`)
			vars := b.str(`document.querySelector("#run-vars").textContent`)
			if !containsAll(stages, "build", "say", "wait", "echo") || !containsAll(vars, "abc", "456", "UI_SECRET", "secret") ||
				strings.Contains(vars, "s3cret-ui-value") || !strings.Contains(b.str(`document.querySelector("#run-trigger").textContent`), "webhook") {
				t.Errorf("run page: stages %q, variables %q, trigger %q", stages, vars, b.str(`document.querySelector("#run-trigger").textContent`))
			}

			// A jump to a line highlights it.
			b.open(fmt.Sprintf("/runs/%d#L2", ans.Run.ID))
			b.waitJS("line 2 highlighted", `document.querySelector("#log .line.hl .ln") !== null && document.querySelector("#log .line.hl .ln").textContent === "2"`)

			// Start a run from the form with another value.
			b.open("/pipelines/ui-hello")
			b.waitJS("the run form", `document.querySelector("#var-abc") && document.querySelector("#var-abc").value === "123"`)
			// The pipeline's queue and its bound (none of its own here).
			b.waitJS("the queue card", `document.querySelector("#queue-now").textContent.includes("waiting to start") &&
				document.querySelector("#queue-bound").textContent.includes("No bound of its own")`)
			// A global admin sees whether the pipeline is trusted and can change it.
			// (the mark on the Definition tab, the switch in Settings).
			b.waitJS("the trusted mark", `document.querySelector("#trust").textContent.includes("trusted by admin")`)
			b.click("#tab-settings")
			b.click("#trust-toggle")
			b.waitJS("the pipeline no longer trusted", `document.querySelector("#trust").textContent.includes("not trusted")`)
			b.click("#trust-toggle")
			b.waitJS("the pipeline trusted again", `document.querySelector("#trust").textContent.includes("trusted by admin")`)
			b.click("#tab-runs")
			b.fill("#var-abc", "789")
			b.click(`#run-form button[type=submit]`)
			b.waitJS("the new run's page", `location.pathname.startsWith("/runs/")`)
			b.waitJS("abc=789 in the log", `Array.from(document.querySelectorAll("#log .tx")).some(e => e.textContent === "abc=789")`)

			// Cancel a long run from its page; its processes go.
			const marker = "sleep 317"
			t.Cleanup(func() { killProcesses(marker) })
			if code := s.api(admin, "POST", "/api/v1/pipelines", slowPipeline("ui-slow", 317), nil); code != 201 {
				t.Fatalf("create ui-slow: %d", code)
			}
			var started struct{ Run runView }
			if code := s.api(admin, "POST", "/api/v1/pipelines/ui-slow/runs", map[string]any{}, &started); code != 201 {
				t.Fatalf("start ui-slow: %d", code)
			}
			b.open(fmt.Sprintf("/runs/%d", started.Run.ID))
			b.waitJS("the slow run to run", `Array.from(document.querySelectorAll("#log .tx")).some(e => e.textContent === "sleeping")`)
			b.acceptConfirms()
			b.click("#run-cancel")
			b.waitJS("the run to be canceled", `document.querySelector("#run-status").textContent.includes("canceled")`)
			if st := s.run(admin, started.Run.ID).Status; st != "canceled" {
				t.Errorf("the API says the canceled run is %s", st)
			}
			waitFor(t, "the canceled run's process to end", func() bool { return !processAlive(marker) })
			if !b.truthy(`document.querySelector("#run-cancel").hidden`) {
				t.Error("the cancel button stays after the run ended")
			}

			// Redeliver and dry-run the webhook's delivery from the deliveries page.
			b.open("/pipelines/ui-hello/deliveries")
			b.waitJS("the delivery log", `document.querySelector("#dl-list tr[data-id]") !== null`)
			first := b.str(`document.querySelector("#dl-list tr[data-id]").dataset.id`)
			b.click(`#dl-list tr[data-id] button`)
			b.waitJS("the delivery's details", `document.querySelector("#dl-redeliver") && document.querySelector(".trace li")`)
			if body := b.str(`document.querySelector("#dl-body").textContent`); !strings.Contains(body, `"abc": "456"`) {
				t.Errorf("the delivery's body shows as %q", body)
			}
			b.acceptConfirms()
			b.click("#dl-redeliver")
			b.waitJS("the redelivery's answer", `document.querySelector("#dl-result").textContent.includes("202")`)
			var dl struct {
				Deliveries []struct {
					ID           int64  `json:"id"`
					RedeliveryOf *int64 `json:"redelivery_of"`
					RunID        *int64 `json:"run_id"`
				} `json:"deliveries"`
			}
			s.api(admin, "GET", "/api/v1/pipelines/ui-hello/deliveries", nil, &dl)
			if len(dl.Deliveries) < 2 || dl.Deliveries[0].RedeliveryOf == nil || fmt.Sprint(*dl.Deliveries[0].RedeliveryOf) != first || dl.Deliveries[0].RunID == nil {
				t.Errorf("after Redeliver the delivery log is %+v, want a new delivery redelivering #%s with a run", dl.Deliveries, first)
			}
			b.click("#dl-dryrun")
			b.waitJS("the dry run's answer", `document.querySelector("#dl-result").textContent.includes("would start a run")`)

			// A request that failed the signature check cannot be redelivered: the button's
			// answer says so, and no run starts.
			if code := s.api(admin, "POST", "/api/v1/pipelines/ui-hello/triggers/webhook/enable", map[string]any{"secret": "ui-k"}, nil); code != 200 {
				t.Fatalf("set a secret: %d", code)
			}
			if code, _, _ := post(t, hookURL, `{"abc":"unsigned"}`); code != 401 {
				t.Fatalf("unsigned POST to a webhook with a secret = %d, want 401", code)
			}
			var runsBefore struct{ Runs []runView }
			s.api(admin, "GET", "/api/v1/pipelines/ui-hello/runs", nil, &runsBefore)
			b.open("/pipelines/ui-hello/deliveries")
			b.waitJS("the unsigned delivery, newest", `document.querySelector("#dl-list tr[data-id]") !== null && document.querySelector("#dl-list tr[data-id]").textContent.includes("401")`)
			b.click(`#dl-list tr[data-id] button`)
			b.waitJS("its details", `document.querySelector("#dl-redeliver") && document.querySelector("#dl-body") && document.querySelector("#dl-body").textContent.includes("unsigned")`)
			b.acceptConfirms()
			b.click("#dl-redeliver")
			b.waitJS("the refusal", `document.querySelector("#dl-result").textContent.includes("409") && document.querySelector("#dl-result").textContent.includes("failed the signature check")`)
			var runsAfter struct{ Runs []runView }
			s.api(admin, "GET", "/api/v1/pipelines/ui-hello/runs", nil, &runsAfter)
			if len(runsAfter.Runs) != len(runsBefore.Runs) {
				t.Errorf("the refused redelivery started a run: %d runs, had %d", len(runsAfter.Runs), len(runsBefore.Runs))
			}

			// Forged changes with the session cookie but without the CSRF token are refused.
			var before struct{ Runs []runView }
			s.api(admin, "GET", "/api/v1/pipelines/ui-hello/runs", nil, &before)
			b.open("/pipelines/ui-hello")
			forged := b.str(`fetch("/api/v1/pipelines/ui-hello/runs", {method: "POST", credentials: "same-origin",
				headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.json().then(j => r.status + " " + j.error.code))`)
			if forged != "403 csrf" {
				t.Errorf("fetch POST with the cookie and no X-CSRF-Token = %q, want 403 csrf", forged)
			}
			b.eval(`(() => { const f = document.createElement("form"); f.method = "POST"; f.action = "/api/v1/pipelines/ui-hello/runs";
				document.body.append(f); f.submit(); return true })()`, nil)
			b.waitJS("the form post's answer", `location.pathname === "/api/v1/pipelines/ui-hello/runs" && document.readyState === "complete"`)
			if text := b.str(`document.body.innerText`); !strings.Contains(text, `"csrf"`) {
				t.Errorf("a plain form POST with the cookie answered %q, want the csrf refusal", text)
			}
			var after struct{ Runs []runView }
			s.api(admin, "GET", "/api/v1/pipelines/ui-hello/runs", nil, &after)
			if len(after.Runs) != len(before.Runs) {
				t.Errorf("forged requests started runs: %d before, %d after", len(before.Runs), len(after.Runs))
			}

			if dialect == "sqlite" {
				uiScreenshots(t, b, ans.Run.ID)
			}
		})
	}
}

// uiScreenshots opens the main pages at laptop and phone widths, checks nothing overflows
// sideways, and saves full-page screenshots into $FLOWD_UI_SCREENSHOTS (a temp folder if unset).
func uiScreenshots(t *testing.T, b *browser, runID int64) {
	t.Helper()
	dir := os.Getenv("FLOWD_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pages := []struct{ name, path string }{
		{"pipelines", "/"},
		{"pipeline", "/pipelines/ui-hello"},
		{"run", fmt.Sprintf("/runs/%d", runID)},
		{"deliveries", "/pipelines/ui-hello/deliveries"},
		{"users", "/admin/users"},
		{"nodes", "/admin/nodes"},
		{"tokens", "/account/tokens"},
	}
	sizes := []struct {
		name          string
		width, height int64
	}{{"laptop", 1280, 800}, {"phone", 390, 844}}
	for _, size := range sizes {
		for _, p := range pages {
			b.do("resize", chromedpViewport(size.width, size.height))
			b.open(p.path)
			b.waitJS(p.name+" loaded", `!document.body.innerText.includes("Loading…")`)
			time.Sleep(300 * time.Millisecond) // let the last fetches paint
			if !b.truthy(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
				var w []int
				b.eval(`[document.documentElement.scrollWidth, window.innerWidth]`, &w)
				t.Errorf("%s at %s width overflows sideways: %v", p.name, size.name, w)
			}
			path := b.screenshot(dir, p.name+"-"+size.name, size.width, size.height)
			t.Logf("screenshot: %s", path)
		}
	}
	b.do("resize", chromedpViewport(1280, 800))
}

// TestUIAdminPagesAndViewer manages users and API tokens as the admin, then signs in as a
// viewer: no control to change anything is on the pages, and the API refuses the change anyway.
func TestUIAdminPagesAndViewer(t *testing.T) {
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	requireUI(t, s)
	admin := s.token("admin", adminPassword)
	s.user(admin, "vera")
	if code := s.api(admin, "POST", "/api/v1/pipelines", strings.Replace(uiHello, "sleep 3", "true", 1), nil); code != 201 {
		t.Fatalf("create ui-hello: %d", code)
	}
	if code := s.api(admin, "PUT", "/api/v1/pipelines/ui-hello/members/vera", map[string]string{"role": "viewer"}, nil); code != 200 {
		t.Fatalf("make vera a viewer: %d", code)
	}
	if code := s.api(admin, "POST", "/api/v1/pipelines/ui-hello/triggers/webhook/enable", map[string]any{}, nil); code != 200 {
		t.Fatalf("enable the webhook: %d", code)
	}
	var started struct{ Run runView }
	if code := s.api(admin, "POST", "/api/v1/pipelines/ui-hello/runs", map[string]any{}, &started); code != 201 {
		t.Fatalf("start a run: %d", code)
	}

	b := newBrowser(t, s.URL)
	b.signIn("admin", adminPassword)

	// Users: add one, make them an admin, disable them.
	b.open("/admin/users")
	b.waitJS("the user list", `document.querySelector('#user-list tr[data-user="vera"]') !== null`)
	b.fill(`#user-add input[name=username]`, "walt")
	b.fill(`#user-add input[name=password]`, "walt-password")
	b.click(`#user-add button[type=submit]`)
	b.waitJS("walt in the list", `document.querySelector('#user-list tr[data-user="walt"]') !== null`)
	b.click(`#user-list tr[data-user="walt"] button`) // Make admin
	b.waitJS("walt to be an admin", `document.querySelector('#user-list tr[data-user="walt"]').textContent.includes("Remove admin")`)
	b.acceptConfirms()
	b.click(`#user-list tr[data-user="walt"] button.danger`) // Disable
	b.waitJS("walt to be disabled", `document.querySelector('#user-list tr[data-user="walt"]').textContent.includes("disabled")`)
	var walt struct{ Admin, Disabled bool }
	var users struct {
		Users []struct {
			Username        string
			Admin, Disabled bool
		}
	}
	if code := s.api(admin, "GET", "/api/v1/users", nil, &users); code != 200 {
		t.Fatalf("list users: %d", code)
	}
	for _, u := range users.Users {
		if u.Username == "walt" {
			walt.Admin, walt.Disabled = u.Admin, u.Disabled
		}
	}
	if !walt.Admin || !walt.Disabled {
		t.Errorf("after the users page, walt is %+v; want an admin, disabled", walt)
	}

	// API tokens: create one (the password is asked again), use it, revoke it.
	b.open("/account/tokens")
	b.waitJS("the token list", `!document.querySelector("#token-list").textContent.includes("Loading")`)
	b.fill(`#token-add input[name=name]`, "from the browser")
	b.fill(`#token-add input[name=password]`, adminPassword)
	b.click(`#token-add button[type=submit]`)
	b.waitJS("the new token", `document.querySelector("#token-value") && document.querySelector("#token-value").value.startsWith("flowd_")`)
	tok := b.str(`document.querySelector("#token-value").value`)
	if code := s.api(tok, "GET", "/api/v1/user", nil, nil); code != 200 {
		t.Fatalf("the token made on the page does not work: %d", code)
	}
	b.waitJS("the token in the list", `document.querySelector("#token-list").textContent.includes("from the browser")`)
	b.acceptConfirms()
	b.eval(`Array.from(document.querySelectorAll("#token-list tr")).find(tr => tr.textContent.includes("from the browser")).querySelector("button").click(), true`, nil)
	b.waitJS("the token to go", `!document.querySelector("#token-list").textContent.includes("from the browser")`)
	if code := s.api(tok, "GET", "/api/v1/user", nil, nil); code != 401 {
		t.Errorf("a revoked token answers %d, want 401", code)
	}
	b.signOut()
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		t.Logf("screenshot: %s", b.screenshot(dir, "login-phone", 390, 844))
		t.Logf("screenshot: %s", b.screenshot(dir, "login-laptop", 1280, 800))
	}

	b.signIn("vera", "vera-password")
	b.open("/pipelines/ui-hello")
	b.waitJS("the definition", `document.querySelector("#yaml").value.includes("name: ui-hello")`)
	b.waitJS("the webhook panel", `document.querySelector("#hook-state") !== null`)
	b.waitJS("the members", `document.querySelector("#member-list tbody").textContent.includes("vera")`)
	b.waitJS("the revision history", `document.querySelector("#rev-list tr[data-rev]") !== null`)
	for _, sel := range []string{"#hook-enabled", "#hook-url", "#hook-rotate", "#yaml-save", "#run-form", "#trust-toggle", "#member-add", "#member-list select", `a[href="/admin/users"]`, `a[href$="/deliveries"]`,
		"#tab-settings", "#delete-form", "#hook-try-form", "#audit-list", `[id^="rev-restore-"]`} {
		if b.truthy(fmt.Sprintf(`document.querySelector(%s)`, jsString(sel))) {
			t.Errorf("a viewer sees %s on the pipeline page", sel)
		}
	}
	if !b.truthy(`document.querySelector("#yaml").readOnly`) {
		t.Error("a viewer can type into the definition")
	}
	if strings.Contains(b.str(`document.body.innerHTML`), "/pipeline/webhook/") {
		t.Error("a viewer sees the webhook URL")
	}
	// The server refuses the change even with the page's CSRF token.
	refused := b.str(`fetch("/api/v1/pipelines/ui-hello/triggers/webhook/disable", {method: "POST", credentials: "same-origin",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}}).then(r => r.json().then(j => r.status + " " + j.error.code))`)
	if refused != "403 forbidden" {
		t.Errorf("a viewer's disable = %q, want 403 forbidden", refused)
	}

	b.open(fmt.Sprintf("/runs/%d", started.Run.ID))
	b.waitJS("the run", `document.querySelector("#stages li") !== null`)
	for _, sel := range []string{"#run-cancel", "#run-rerun"} {
		if b.truthy(fmt.Sprintf(`document.querySelector(%s)`, jsString(sel))) {
			t.Errorf("a viewer sees %s on the run page", sel)
		}
	}
	b.open("/admin/users")
	if text := b.str(`document.body.innerText`); !strings.Contains(text, "Only global administrators") || b.truthy(`document.querySelector("#user-add")`) {
		t.Errorf("a viewer's /admin/users shows %q", text)
	}
	b.signOut()
	b.open("/pipelines/ui-hello")
	b.waitJS("the sign-in page after signing out", `location.pathname === "/login"`)
}
