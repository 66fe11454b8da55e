package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// uiTabsRev1 is revision 1 of the pipeline of TestUIPipelinePage; uiTabsRev3 its revision 3.
const uiTabsRev1 = `name: ui-tabs
description: first words
variables:
  abc: "123"
  API_KEY:
    secret: true
    default: "k-1"
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: echo
            run: echo "abc=$abc"
`

var uiTabsRev3 = strings.NewReplacer("first words", "third words", `run: echo "abc=$abc"`, `run: echo "abc=$abc!"
          - name: bye
            run: echo bye`).Replace(uiTabsRev1)

// TestUIPipelinePage drives the pipeline page's tabs (deep link, Back, keyboard), the webhook
// switch (focus kept, audit log), the dry run, the revision history (diff of two revisions,
// restore), the deliveries page on a phone, and deleting the pipeline after typing its name.
func TestUIPipelinePage(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			if code := s.api(admin, "POST", "/api/v1/pipelines", uiTabsRev1, nil); code != 201 {
				t.Fatalf("create ui-tabs: %d", code)
			}
			for _, src := range []string{strings.Replace(uiTabsRev1, "first words", "second words", 1), uiTabsRev3} {
				if code := s.api(admin, "PUT", "/api/v1/pipelines/ui-tabs", src, nil); code != 200 {
					t.Fatalf("update ui-tabs: %d", code)
				}
			}
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			shown := func(panel string) bool {
				return b.truthy(fmt.Sprintf(`(() => { const p = document.querySelector("#panel-%s");
					return !p.hidden && p.getClientRects().length > 0 && document.querySelector("#tab-%s").getAttribute("aria-selected") === "true" &&
					document.querySelectorAll(".tabpanel:not([hidden])").length === 1 })()`, panel, panel))
			}

			// A deep link opens its tab; another tab is a new history entry; Back returns.
			b.open("/pipelines/ui-tabs#webhook")
			b.waitJS("the webhook panel", `document.querySelector("#hook-state") !== null`)
			if !shown("webhook") {
				t.Fatal("the deep link #webhook does not open the Webhook tab alone")
			}
			b.click("#tab-members")
			b.waitJS("the Members tab", `location.hash === "#members"`)
			if !shown("members") {
				t.Error("clicking Members does not open the Members tab")
			}
			b.eval(`(history.back(), true)`, nil)
			b.waitJS("Back to #webhook", `location.hash === "#webhook"`)
			b.waitJS("the Webhook tab again", `!document.querySelector("#panel-webhook").hidden`)
			if !shown("webhook") {
				t.Error("Back does not show the Webhook tab")
			}
			// Keyboard: the arrows move between tabs and open them; one tab is in the Tab order.
			b.eval(`(document.querySelector("#tab-webhook").focus(), true)`, nil)
			b.do("press ArrowRight", chromedp.KeyEvent(kb.ArrowRight))
			b.waitJS("Members by keyboard", `document.activeElement.id === "tab-members" && location.hash === "#members"`)
			if !shown("members") || b.str(`Array.from(document.querySelectorAll("[role=tab]")).filter(t => t.tabIndex === 0).map(t => t.id).join()`) != "tab-members" {
				t.Error("ArrowRight does not open the next tab, or more than one tab is in the Tab order")
			}
			b.do("press ArrowLeft twice", chromedp.KeyEvent(kb.ArrowLeft), chromedp.KeyEvent(kb.ArrowLeft))
			b.waitJS("Definition by keyboard", `document.activeElement.id === "tab-definition"`)
			b.do("press Home, then ArrowLeft", chromedp.KeyEvent(kb.Home), chromedp.KeyEvent(kb.ArrowLeft))
			b.waitJS("the last tab (wrapping around)", `document.activeElement.id === "tab-settings" && location.hash === "#settings"`)
			b.open("/pipelines/ui-tabs#settings")
			if !shown("settings") {
				t.Error("a reload of #settings does not open Settings")
			}
			b.open("/pipelines/ui-tabs#run") // an element inside a tab opens that tab
			if !shown("runs") {
				t.Error("#run does not open the Runs tab")
			}

			// The webhook switch keeps the focus, and the audit log lists each change.
			b.open("/pipelines/ui-tabs#webhook")
			b.waitJS("the webhook panel", `document.querySelector("#hook-state") !== null`)
			b.eval(`(document.querySelector("#hook-enabled").focus(), true)`, nil)
			b.do("press Space on the switch", chromedp.KeyEvent(" "))
			b.waitJS("the webhook URL", `document.querySelector("#hook-url") !== null`)
			if id := b.str(`document.activeElement.id`); id != "hook-enabled" {
				t.Errorf("after switching the webhook on, the focus is on %q, want the switch", id)
			}
			b.waitJS("the audit log's enable", `document.querySelector("#audit-list tbody").textContent.includes("enable")`)
			hookURL := b.str(`document.querySelector("#hook-url").value`)

			// The dry run shows the variables as the API resolves them, and what it ignored.
			body := `{"abc": "456", "extra": "x"}`
			b.fill("#hook-try-body", body)
			b.click("#hook-try-run")
			b.waitJS("the dry run's answer", `document.querySelector("#hook-try-result").textContent.includes("would start a run")`)
			var dry struct {
				Variables map[string]string `json:"variables"`
				Ignored   []string          `json:"ignored"`
			}
			if code := s.api(admin, "POST", "/api/v1/pipelines/ui-tabs/triggers/webhook/dry-run", map[string]string{"abc": "456", "extra": "x"}, &dry); code != 200 || len(dry.Variables) != 2 {
				t.Fatalf("the API's dry run = %d %+v", code, dry)
			}
			var rows [][]string
			b.eval(`Array.from(document.querySelectorAll("#hook-try-result table.vars tr")).map(tr => Array.from(tr.cells).map(c => c.textContent))`, &rows)
			for k, v := range dry.Variables {
				if !slices.ContainsFunc(rows, func(r []string) bool { return len(r) == 2 && r[0] == k && r[1] == v }) {
					t.Errorf("the dry run's variables %v lack %s=%s of the API's answer", rows, k, v)
				}
			}
			if len(rows) != len(dry.Variables) {
				t.Errorf("the dry run shows %d variables, the API %d", len(rows), len(dry.Variables))
			}
			if res := b.str(`document.querySelector("#hook-try-result").textContent`); !strings.Contains(res, "extra") || !strings.Contains(res, "Ignored") || strings.Contains(res, "k-1") {
				t.Errorf("the dry run's answer does not list the ignored key (or shows the secret): %q", res)
			}

			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				b.eval(`(document.querySelector("#hook-try").scrollIntoView(), true)`, nil)
				t.Logf("screenshot: %s", b.screenshot(dir, "pipeline-dryrun-laptop", 1280, 800))
				b.do("laptop width", chromedpViewport(1280, 800))
			}

			// Deliveries with runs; on a phone, Details brings the delivery into view.
			for i := range 6 {
				if code, ans, _ := post(t, hookURL, fmt.Sprintf(`{"abc":"v%d"}`, i)); code != 202 || ans.Run == nil {
					t.Fatalf("POST the webhook: %d", code)
				}
			}
			var dl struct {
				Deliveries []struct {
					ID        int64  `json:"id"`
					RunID     *int64 `json:"run_id"`
					RunNumber *int64 `json:"run_number"`
				} `json:"deliveries"`
			}
			s.api(admin, "GET", "/api/v1/pipelines/ui-tabs/deliveries", nil, &dl)
			if len(dl.Deliveries) == 0 || dl.Deliveries[0].RunNumber == nil {
				t.Fatalf("deliveries = %+v, want the newest with its run's number", dl.Deliveries)
			}
			newest := dl.Deliveries[0]
			b.do("phone width", chromedpViewport(390, 844))
			b.open("/pipelines/ui-tabs/deliveries")
			b.waitJS("the delivery log", `document.querySelectorAll("#dl-list tr[data-id]").length >= 6`)
			wantLink := fmt.Sprintf(`/runs/%d`, *newest.RunID)
			if got := b.str(`(() => { const a = document.querySelector("#dl-list tr[data-id] a[href^='/runs/']"); return a.getAttribute("href") + " " + a.textContent })()`); got != fmt.Sprintf("%s #%d", wantLink, *newest.RunNumber) {
				t.Errorf("the newest delivery's run shows as %q, want %s #%d", got, wantLink, *newest.RunNumber)
			}
			last := fmt.Sprintf(`#dl-list tr[data-id="%d"] button`, dl.Deliveries[len(dl.Deliveries)-1].ID)
			b.eval(fmt.Sprintf(`(document.querySelector(%s).scrollIntoView({block: "center"}), true)`, jsString(last)), nil)
			b.click(last)
			b.waitJS("the details in view", `(() => { const h = document.querySelector("#dl-heading"); if (!h) return false;
				const r = h.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight })()`)
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				t.Logf("screenshot: %s", b.screenshot(dir, "deliveries-details-phone", 390, 844))
			}
			b.do("laptop width", chromedpViewport(1280, 800))

			// Switching off keeps the focus too, and is in the audit log.
			b.open("/pipelines/ui-tabs#webhook")
			b.waitJS("the webhook on", `document.querySelector("#hook-enabled").checked`)
			b.eval(`(document.querySelector("#hook-enabled").focus(), true)`, nil)
			b.do("press Space on the switch", chromedp.KeyEvent(" "))
			b.waitJS("the webhook off", `document.querySelector("#hook-state").textContent.includes("off")`)
			if id := b.str(`document.activeElement.id`); id != "hook-enabled" {
				t.Errorf("after switching the webhook off, the focus is on %q, want the switch", id)
			}
			b.waitJS("the audit log's disable", `Array.from(document.querySelectorAll("#audit-list tbody tr")).some(tr => tr.textContent.includes("disable") && tr.textContent.includes("admin"))`)

			// The revision history: a diff between revisions 1 and 3, then a restore of 1.
			b.click("#tab-definition")
			b.waitJS("three revisions", `document.querySelectorAll("#rev-list tr[data-rev]").length === 3`)
			b.eval(`(() => { const a = document.querySelector("#rev-a"), b = document.querySelector("#rev-b");
				a.value = "1"; b.value = "3"; a.dispatchEvent(new Event("change")); return true })()`, nil)
			b.waitJS("the diff of 1 and 3", `document.querySelector("#rev-summary").textContent.startsWith("From revision 1 to revision 3")`)
			var added, removed []string
			b.eval(`Array.from(document.querySelectorAll("#rev-diff .d-add")).map(e => e.textContent)`, &added)
			b.eval(`Array.from(document.querySelectorAll("#rev-diff .d-del")).map(e => e.textContent)`, &removed)
			wantAdded := []string{"added: + description: third words", `added: +             run: echo "abc=$abc!"`, "added: +           - name: bye", "added: +             run: echo bye"}
			wantRemoved := []string{"removed: - description: first words", `removed: -             run: echo "abc=$abc"`}
			if !slices.Equal(added, wantAdded) || !slices.Equal(removed, wantRemoved) {
				t.Errorf("diff 1→3: added %q, removed %q; want %q and %q", added, removed, wantAdded, wantRemoved)
			}
			if sum := b.str(`document.querySelector("#rev-summary").textContent`); !strings.Contains(sum, "4 lines added, 2 lines removed") {
				t.Errorf("the diff's summary reads %q", sum)
			}
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				b.eval(`(document.querySelector("#revisions").scrollIntoView(), true)`, nil)
				t.Logf("screenshot: %s", b.screenshot(dir, "pipeline-revisions-laptop", 1280, 800))
				t.Logf("screenshot: %s", b.screenshot(dir, "pipeline-revisions-phone", 390, 844))
				b.do("laptop width", chromedpViewport(1280, 800))
			}
			b.acceptConfirms()
			b.click("#rev-restore-1")
			b.waitJS("revision 4, current", `(() => { const r = document.querySelector("#rev-list tr[data-rev]"); return r && r.dataset.rev === "4" && r.textContent.includes("current") })()`)
			b.waitJS("the editor at revision 4", `document.querySelector("#revision").textContent.includes("revision 4") && document.querySelector("#yaml").value.includes("first words")`)
			var rev1, rev4 struct {
				YAML string `json:"yaml"`
			}
			s.api(admin, "GET", "/api/v1/pipelines/ui-tabs/revisions/1", nil, &rev1)
			s.api(admin, "GET", "/api/v1/pipelines/ui-tabs/revisions/4", nil, &rev4)
			if rev1.YAML == "" || rev4.YAML != rev1.YAML {
				t.Errorf("revision 4 = %q, want revision 1's text %q", rev4.YAML, rev1.YAML)
			}
			out, errOut, code := s.cli(admin, "pipeline", "history", "ui-tabs")
			if code != 0 || !containsAll(out, "REVISION", "current", "admin") || strings.Count(out, "\n") != 5 {
				t.Errorf("flowd pipeline history = %d %q %q", code, out, errOut)
			}
			if out, _, code := s.cli(admin, "pipeline", "show", "ui-tabs", "--revision", "3"); code != 0 || !strings.Contains(out, "third words") || !strings.Contains(out, "name: bye") {
				t.Errorf("flowd pipeline show --revision 3 = %d %q", code, out)
			}

			if dialect == "sqlite" {
				tabScreenshots(t, b)
			}

			// Delete: only after typing the name; then the pipeline and its runs are gone.
			var runs struct{ Runs []runView }
			s.api(admin, "GET", "/api/v1/pipelines/ui-tabs/runs", nil, &runs)
			if len(runs.Runs) == 0 {
				t.Fatal("ui-tabs has no runs to delete")
			}
			b.open("/pipelines/ui-tabs#settings")
			b.fill("#delete-name", "ui-tab")
			if !b.truthy(`document.querySelector("#delete-pipeline").disabled`) {
				t.Error("the delete button works with a wrong name")
			}
			b.eval(`(document.querySelector("#delete-form").requestSubmit(), true)`, nil)
			time.Sleep(300 * time.Millisecond) // a wrongly allowed delete would be on its way
			if code := s.api(admin, "GET", "/api/v1/pipelines/ui-tabs", nil, nil); code != 200 {
				t.Fatalf("a wrong name deleted the pipeline: GET = %d", code)
			}
			b.fill("#delete-name", "ui-tabs")
			b.click("#delete-pipeline")
			b.waitJS("the pipelines list with a toast", `location.pathname === "/" && document.querySelector("#toast").textContent.includes("ui-tabs deleted")`)
			if code := s.api(admin, "GET", "/api/v1/pipelines/ui-tabs", nil, nil); code != 404 {
				t.Errorf("GET the deleted pipeline = %d, want 404", code)
			}
			for _, r := range runs.Runs {
				if code := s.api(admin, "GET", fmt.Sprintf("/api/v1/runs/%d", r.ID), nil, nil); code != 404 {
					t.Errorf("GET run %d of the deleted pipeline = %d, want 404", r.ID, code)
				}
			}
		})
	}
}

// tabScreenshots saves every tab of the pipeline page at laptop and phone widths into
// $FLOWD_UI_SCREENSHOTS and checks that none overflows sideways.
func tabScreenshots(t *testing.T, b *browser) {
	t.Helper()
	dir := os.Getenv("FLOWD_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"laptop", 1280, 800}, {"phone", 390, 844}} {
		for _, tab := range []string{"runs", "definition", "webhook", "members", "settings"} {
			b.do("resize", chromedpViewport(size.width, size.height))
			b.open("/pipelines/ui-tabs#" + tab)
			b.waitJS(tab+" loaded", `!document.body.innerText.includes("Loading…")`)
			time.Sleep(300 * time.Millisecond) // let the last fetches paint
			if !b.truthy(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
				t.Errorf("tab %s at %s width overflows sideways", tab, size.name)
			}
			t.Logf("screenshot: %s", b.screenshot(dir, "pipeline-tab-"+tab+"-"+size.name, size.width, size.height))
		}
	}
	b.do("resize", chromedpViewport(1280, 800))
}
