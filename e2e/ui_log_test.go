package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// uiLogSteps has two jobs whose steps print, one of which fails; "▶ not-a-step" is output, not a
// step's header, and the second step's name is too long for the sidebar.
const uiLogSteps = `name: logview
stages:
  - name: build
    jobs:
      - name: compile
        steps:
          - name: prepare
            run: |
              echo preparing
              echo "▶ not-a-step"
              printf '\033[32mgreen\033[0m done\n'
          - name: a-step-with-a-very-long-name-that-does-not-fit-in-the-sidebar-of-the-run-page
            run: echo long
      - name: test
        steps:
          - name: unit
            run: echo unit ok
          - name: flaky
            run: |
              echo "it broke"
              exit 3
          - name: after
            run: echo never
`

// uiLogFlood prints n numbered rows ("row 1" …) and fails, so its group is open.
func uiLogFlood(name string, n int) string {
	return fmt.Sprintf(`name: %s
stages:
  - name: big
    jobs:
      - name: flood
        steps:
          - name: print
            run: |
              seq 1 %d | sed 's/^/row /'
              exit 1
`, name, n)
}

// uiLogJobs are the run's jobs with their ids, in order.
type uiLogJobs struct {
	Status  string `json:"status"`
	Waiting string `json:"waiting"`
	Stages  []struct {
		Jobs []struct {
			ID      int64  `json:"id"`
			Name    string `json:"name"`
			Waiting string `json:"waiting"`
		} `json:"jobs"`
	} `json:"stages"`
}

func (s *server) runJobs(tok string, id int64) uiLogJobs {
	s.t.Helper()
	var r uiLogJobs
	if code := s.api(tok, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &r); code != 200 {
		s.t.Fatalf("GET run %d: %d", id, code)
	}
	return r
}

// startUILogRun applies yaml and starts its pipeline; it answers the run's id.
func startUILogRun(t *testing.T, s *server, tok, yaml, name string) int64 {
	t.Helper()
	if _, errOut, code := s.cliIn(tok, yaml, "pipeline", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply %s: %s", name, errOut)
	}
	out, errOut, code := s.cli(tok, "run", name)
	if code != 0 {
		t.Fatalf("run %s: %d %s%s", name, code, out, errOut)
	}
	return runID(t, out)
}

// finishedUILogRun runs the pipeline to its end.
func finishedUILogRun(t *testing.T, s *server, tok, yaml, name string) int64 {
	t.Helper()
	id := startUILogRun(t, s, tok, yaml, name)
	waitFor(t, name+" to end", func() bool { st := s.run(tok, id).Status; return st != "queued" && st != "running" })
	return id
}

// watchLongTasks makes every page of b record its longest task (PerformanceObserver 'longtask')
// in window.__longest from its first script on.
func watchLongTasks(b *browser) {
	b.t.Helper()
	b.do("watch long tasks", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__longest = 0; window.__tasks = 0;
new PerformanceObserver(l => { for (const e of l.getEntries()) { window.__tasks++; window.__longest = Math.max(window.__longest, e.duration); } })
  .observe({ type: 'longtask', buffered: true });`})
		return err
	}))
}

// logFigures are what the log viewer costs a page: its longest task and its DOM's elements.
type logFigures struct {
	Longest  float64 `json:"longest"`
	Tasks    int     `json:"tasks"`
	Elements int     `json:"elements"`
	Lines    int     `json:"lines"`
}

func (b *browser) logFigures() logFigures {
	b.t.Helper()
	var f logFigures
	b.eval(`({ longest: window.__longest || 0, tasks: window.__tasks || 0, elements: document.getElementsByTagName('*').length,
		lines: document.querySelectorAll('#log .line').length })`, &f)
	return f
}

// visibleInLog says whether the element sel is inside the log box's view.
func visibleInLog(sel string) string {
	return fmt.Sprintf(`(() => { const el = document.querySelector(%s), box = document.querySelector("#log"); if (!el) return false;
		const r = el.getBoundingClientRect(), b = box.getBoundingClientRect(); return r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1 })()`, jsString(sel))
}

// TestUILogViewer: the run page's log has one section per job and one group per step in the
// sidebar's order (a failed step open, successful ones folded), links from the sidebar to the
// groups, timestamps on demand, downloads, readable line numbers, and stays small and fast on
// 20,000 lines: deep links, and search with a count and next/previous over lines not drawn.
func TestUILogViewer(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			tok := s.token("admin", adminPassword)
			steps := finishedUILogRun(t, s, tok, uiLogSteps, "logview")
			flood := finishedUILogRun(t, s, tok, uiLogFlood("flood", 20000), "flood")
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.eval(`localStorage.removeItem("flowd.log.timestamps"), true`, nil)

			jobs := s.runJobs(tok, steps)
			compile, test := jobs.Stages[0].Jobs[0].ID, jobs.Stages[0].Jobs[1].ID
			b.open(fmt.Sprintf("/runs/%d", steps))
			b.waitJS("the log to be read", `document.querySelector("#log-state").textContent === "finished"`)
			group := func(job int64, k int) string { return fmt.Sprintf("#J%d-S%d", job, k) }
			expanded := func(job int64, k int) string {
				return b.str(fmt.Sprintf(`document.querySelector(%s).getAttribute("aria-expanded")`, jsString(group(job, k)+" > .grp-head")))
			}

			// One section per job, one group per step, in the sidebar's order.
			var sidebar, log []string
			b.eval(`Array.from(document.querySelectorAll("#stages .step a")).map(a => a.getAttribute("href"))`, &sidebar)
			b.eval(`Array.from(document.querySelectorAll("#log .grp:not([hidden])")).filter(g => !g.id.endsWith("-S0")).map(g => "#" + g.id)`, &log)
			want := []string{group(compile, 1), group(compile, 2), group(test, 1), group(test, 2), group(test, 3)}
			if strings.Join(sidebar, " ") != strings.Join(want, " ") || strings.Join(log, " ") != strings.Join(want, " ") {
				t.Errorf("sidebar steps %v, log groups %v; want both %v", sidebar, log, want)
			}
			if got := b.str(`Array.from(document.querySelectorAll("#log .logjob-head .jname")).map(e => e.textContent).join(",")`); got != "compile,test" {
				t.Errorf("job sections %q, want compile,test", got)
			}
			// The failed step is open, the successful ones folded.
			if expanded(test, 2) != "true" || expanded(test, 1) != "false" || expanded(compile, 1) != "false" {
				t.Errorf("groups open: flaky %s, unit %s, prepare %s; want the failed one only", expanded(test, 2), expanded(test, 1), expanded(compile, 1))
			}
			b.waitJS("the failed step's output", fmt.Sprintf(`document.querySelector(%s).textContent.includes("it broke")`, jsString(group(test, 2)+" .grp-body")))
			// A sidebar link opens its group and scrolls to it; "▶ not-a-step" opened no group.
			b.click(fmt.Sprintf(`#stages a[href="%s"]`, group(compile, 1)))
			b.waitJS("prepare's group open and in view", fmt.Sprintf(`document.querySelector(%s).getAttribute("aria-expanded") === "true" && %s`,
				jsString(group(compile, 1)+" > .grp-head"), visibleInLog(group(compile, 1)+" > .grp-head")))
			b.waitJS("prepare's lines", fmt.Sprintf(`document.querySelector(%s).textContent.includes("not-a-step")`, jsString(group(compile, 1)+" .grp-body")))
			if !b.truthy(fmt.Sprintf(`document.querySelector(%s).textContent.includes("long")`, jsString(group(compile, 2)))) {
				t.Error("the long step's group lost its name")
			}
			if !b.truthy(fmt.Sprintf(`document.querySelector(%s).textContent === "green"`, jsString(group(compile, 1)+" .f32"))) {
				t.Error("ANSI colours are not drawn")
			}
			// Step names are cut with an ellipsis, whole on hover; durations have units, never "0s".
			if !b.truthy(`(() => { const e = document.querySelectorAll("#stages .step .sname")[1]; const cs = getComputedStyle(e);
				return cs.textOverflow === "ellipsis" && e.scrollWidth > e.clientWidth && e.closest(".step").title.startsWith("a-step-with-a-very-long-name-that-does-not-fit-in-the-sidebar-of-the-run-page") })()`) {
				t.Error("the long step name is not cut with an ellipsis with the whole name in its title")
			}
			durs := b.str(`Array.from(document.querySelectorAll("#stages .dur, #run-duration")).map(e => e.textContent).join("|")`)
			if strings.Contains(durs, "0s") || !regexp.MustCompile(`^(((exit \d+ · )?\d+(\.\d)? m?s|\d+ m \d\d s)\|?)+$`).MatchString(durs) {
				t.Errorf("durations %q, want forms like 120 ms, 2.4 s, 3 m 05 s", durs)
			}
			// Follow only while a run runs; the log is one Tab stop and announces no line.
			if !b.truthy(`document.querySelector("#log-follow").hidden`) {
				t.Error("↓ Follow is offered on a finished run")
			}
			if !b.truthy(`document.querySelectorAll("#log a.ln").length > 0 && Array.from(document.querySelectorAll("#log a.ln")).every(a => a.tabIndex === -1)`) {
				t.Error("line numbers are Tab stops")
			}
			if b.truthy(`document.querySelector("#log[role=log], #log[aria-live], #log [aria-live], #log [role=log]")`) ||
				!b.truthy(`document.querySelector("#run-announce[aria-live=polite]")`) {
				t.Error("the log region reads out streamed lines, or the run's status changes are not announced politely")
			}

			// Timestamps on demand, remembered.
			if b.truthy(`document.querySelector("#log .ts")`) {
				t.Error("timestamps are shown before they were asked for")
			}
			b.click("#log-ts")
			b.waitJS("timestamps", `/^\d\d:\d\d:\d\d\.\d{3}$/.test((document.querySelector("#log .line .ts") || {}).textContent)`)
			b.open(fmt.Sprintf("/runs/%d", steps))
			b.waitJS("timestamps after a reload", `document.querySelector("#log-ts").getAttribute("aria-pressed") === "true" && document.querySelector("#log .line .ts") !== null`)
			b.click("#log-ts")
			b.waitJS("no timestamps", `document.querySelector("#log .ts") === null`)

			// Downloads: the whole run and each job, plain or with the colour codes, as attachments.
			var dl []struct {
				Href        string `json:"href"`
				Disposition string `json:"disposition"`
				ESC         bool   `json:"esc"`
				Text        string `json:"text"`
			}
			b.eval(`Promise.all(Array.from(document.querySelectorAll("#log-dl-list a")).map(async a => {
				const r = await fetch(a.href); const t = await r.text();
				return { href: a.getAttribute("href"), disposition: r.headers.get("Content-Disposition") || "", esc: t.includes("\x1b"), text: t };
			}))`, &dl)
			if len(dl) != 6 {
				t.Fatalf("download links %+v, want the run's and each job's, plain and with colour codes", dl)
			}
			for _, d := range dl {
				plain := strings.Contains(d.Href, "ansi=0")
				wholeRun := !strings.Contains(d.Href, "job=")
				if !strings.HasPrefix(d.Disposition, "attachment") || plain == d.ESC && (wholeRun || strings.Contains(d.Href, fmt.Sprintf("job=%d", compile))) {
					t.Errorf("%s: Content-Disposition %q, escapes %v", d.Href, d.Disposition, d.ESC)
				}
				if strings.Contains(d.Href, fmt.Sprintf("job=%d", test)) && (strings.Contains(d.Text, "preparing") || !strings.Contains(d.Text, "it broke")) {
					t.Errorf("%s is not the test job's log alone: %q", d.Href, d.Text)
				}
			}

			// Line numbers are readable: at least 4.5:1 against the log, light and dark.
			for _, scheme := range []string{"light", "dark"} {
				b.do("prefers-color-scheme: "+scheme, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
					return err
				}))
				var ratio float64
				b.eval(contrastJS(`#log .line .ln`, `#log`), &ratio)
				t.Logf("line numbers' contrast, %s: %.2f:1", scheme, ratio)
				if ratio < 4.5 {
					t.Errorf("line numbers' contrast in the %s scheme is %.2f:1, want at least 4.5:1", scheme, ratio)
				}
			}

			// 20,000 lines: the first screen at once, few elements, deep links and search.
			watchLongTasks(b)
			fid := s.runJobs(tok, flood).Stages[0].Jobs[0].ID
			b.open(fmt.Sprintf("/runs/%d", flood))
			b.waitJS("the first rows", `Array.from(document.querySelectorAll("#log .line .tx")).some(e => e.textContent === "row 1")`)
			b.waitJS("the whole log read", `document.querySelector("#log-state").textContent === "finished"`)
			f := b.logFigures()
			t.Logf("20000 lines: longest task %.0f ms (%d long tasks), %d elements, %d lines drawn", f.Longest, f.Tasks, f.Elements, f.Lines)
			if f.Elements > 5000 || f.Lines > 2000 {
				t.Errorf("20000 lines make %d elements and %d drawn lines; want only the lines near the screen", f.Elements, f.Lines)
			}
			// #L15000, the run-wide link of old, and #J<job>-L<n>.
			b.open(fmt.Sprintf("/runs/%d#L15000", flood))
			line := fmt.Sprintf("#J%d-L15000", fid)
			b.waitJS("line 15000 highlighted", fmt.Sprintf(`document.querySelector(%s) !== null && document.querySelector(%s).classList.contains("hl") && %s`, jsString(line), jsString(line), visibleInLog(line)))
			if n := b.str(`document.querySelector("#log .line.hl .ln").textContent`); n != "15000" {
				t.Errorf("the highlighted line is numbered %s", n)
			}
			b.open(fmt.Sprintf("/runs/%d#J%d-L19000", flood, fid))
			b.waitJS("line 19000 highlighted", visibleInLog(fmt.Sprintf("#J%d-L19000.hl", fid)))
			// Search finds lines not drawn: "row 1999" is on 11 lines, 10 of them near the end.
			b.fill("#log-search", "row 1999")
			b.waitJS("11 matches", `document.querySelector("#log-count").textContent === "1 of 11"`)
			cur := func() string {
				b.waitJS("the current match in view", visibleInLog("#log .line.match-cur"))
				return b.str(`document.querySelector("#log .line.match-cur .tx").textContent`)
			}
			if got := cur(); got != "row 1999" {
				t.Errorf("the first match is %q", got)
			}
			b.click("#log-next")
			b.waitJS("match 2", `document.querySelector("#log-count").textContent === "2 of 11"`)
			if got := cur(); got != "row 19990" {
				t.Errorf("the second match is %q", got)
			}
			b.click("#log-prev")
			b.click("#log-prev")
			b.waitJS("the last match", `document.querySelector("#log-count").textContent === "11 of 11"`)
			if got := cur(); got != "row 19999" {
				t.Errorf("the last match is %q", got)
			}
			if f := b.logFigures(); f.Elements > 5000 {
				t.Errorf("after the search the page has %d elements", f.Elements)
			}

			// On a phone, five-digit line numbers fit their column on one line; nothing overflows sideways.
			b.do("phone", chromedpViewport(390, 844))
			b.open(fmt.Sprintf("/runs/%d#L19999", flood))
			b.waitJS("line 19999 on a phone", visibleInLog(fmt.Sprintf("#J%d-L19999.hl", fid)))
			if !b.truthy(`Array.from(document.querySelectorAll("#log .ln")).every(e => e.getClientRects().length === 1 && e.scrollWidth <= e.clientWidth &&
				e.offsetHeight < 1.6 * parseFloat(getComputedStyle(e).lineHeight))`) ||
				!b.truthy(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
				t.Error("on a phone, line numbers wrap or the page overflows sideways")
			}
			b.do("laptop", chromedpViewport(1280, 800))

			if os.Getenv("FLOWD_UI_SCREENSHOTS") != "" {
				uiLogScreenshots(t, b, steps, flood)
			}
		})
	}
}

// contrastJS is the contrast ratio of fg's text colour against the background of bg.
func contrastJS(fg, bg string) string {
	return fmt.Sprintf(`(() => {
  const rgb = s => s.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const a = lum(rgb(getComputedStyle(document.querySelector(%s)).color)), b = lum(rgb(getComputedStyle(document.querySelector(%s)).backgroundColor));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
})()`, jsString(fg), jsString(bg))
}

// uiLogScreenshots saves the run pages at laptop and phone sizes into $FLOWD_UI_SCREENSHOTS.
func uiLogScreenshots(t *testing.T, b *browser, steps, flood int64) {
	dir := os.Getenv("FLOWD_UI_SCREENSHOTS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"laptop", 1280, 800}, {"phone", 390, 844}} {
		for _, p := range []struct {
			name string
			path string
		}{{"log-steps", fmt.Sprintf("/runs/%d", steps)}, {"log-flood", fmt.Sprintf("/runs/%d#L15000", flood)}} {
			b.do("resize", chromedpViewport(size.width, size.height))
			b.open(p.path)
			b.waitJS("the log read", `document.querySelector("#log-state").textContent === "finished"`)
			time.Sleep(300 * time.Millisecond)
			if !b.truthy(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
				t.Errorf("%s at %s width overflows sideways", p.name, size.name)
			}
			if size.name == "phone" && !b.truthy(`Array.from(document.querySelectorAll("#log .ln")).every(e => e.getClientRects().length === 1 && e.offsetHeight < 2.2 * parseFloat(getComputedStyle(e).lineHeight))`) {
				t.Errorf("%s: line numbers wrap on a phone", p.name)
			}
			t.Logf("screenshot: %s", b.screenshot(dir, p.name+"-"+size.name, size.width, size.height))
		}
	}
	b.do("resize", chromedpViewport(1280, 800))
}

// TestUILogQueued: a run held back by a concurrency group says why it waits where its log will
// be, then shows its log once it runs; its status change is announced.
func TestUILogQueued(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			tok := s.token("admin", adminPassword)
			// The steps run as users of their own: the gate is in a folder they can read.
			dir, err := os.MkdirTemp("", "flowd-gate-")
			if err != nil || os.Chmod(dir, 0o755) != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			gate := filepath.Join(dir, "open")
			yaml := fmt.Sprintf(`name: gated
concurrency:
  group: deploy-main
  max_running: 1
stages:
  - name: deploy
    jobs:
      - name: ship
        steps:
          - name: wait
            run: |
              seq 1 300 | sed 's/^/line /'
              echo waiting for the gate
              while [ ! -f %s ]; do sleep 0.1; done
              echo shipped
`, gate)
			first := startUILogRun(t, s, tok, yaml, "gated")
			waitFor(t, "the first run to run", func() bool { return s.run(tok, first).Status == "running" })
			out, errOut, code := s.cli(tok, "run", "gated")
			if code != 0 {
				t.Fatalf("run gated: %d %s%s", code, out, errOut)
			}
			second := runID(t, out)
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.open(fmt.Sprintf("/runs/%d", first))
			b.waitJS("the first run's live log", `Array.from(document.querySelectorAll("#log .tx")).some(e => e.textContent === "waiting for the gate")`)
			// The last line drawn is the log's last ("waiting for the gate") and in view.
			atEnd := `(() => { const l = Array.from(document.querySelectorAll("#log .line")).pop(), box = document.querySelector("#log");
				if (!l || l.textContent.indexOf("waiting for the gate") < 0) return false;
				const r = l.getBoundingClientRect(), b = box.getBoundingClientRect(); return r.top >= b.top - 1 && r.bottom <= b.bottom + 1 })()`
			b.waitJS("the end of the log in view", atEnd)
			if !b.truthy(`document.querySelector("#log-follow").hidden`) {
				t.Error("↓ Follow is offered while the log already follows")
			}
			// Scrolled up, the log stops following and offers ↓ Follow, which goes back to the end.
			b.eval(`document.querySelector("#log").scrollTop = 0, true`, nil)
			b.waitJS("↓ Follow offered", `!document.querySelector("#log-follow").hidden`)
			b.click("#log-follow")
			b.waitJS("the end in view again", `document.querySelector("#log-follow").hidden && `+atEnd)
			b.open(fmt.Sprintf("/runs/%d", second))
			wait := s.runJobs(tok, second).Waiting
			t.Logf("the second run waits: %q", wait)
			b.waitJS("the reason it waits", `/deploy-main/.test(document.querySelector("#log .log-notice").textContent) && /#1\b/.test(document.querySelector("#log .log-notice").textContent)`)
			if st := b.str(`document.querySelector("#log-state").textContent`); strings.Contains(st, "connecting") {
				t.Errorf("a queued run's log says %q", st)
			}
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			b.waitJS("the second run's log", `Array.from(document.querySelectorAll("#log .tx")).some(e => e.textContent === "shipped")`)
			b.waitJS("its status announced", `/Run #2 (running|failed|success)/.test(document.querySelector("#run-announce").textContent)`)
			b.waitJS("the run to end", `document.querySelector("#log-state").textContent === "finished"`)
			if !b.truthy(`document.querySelector("#log-follow").hidden`) {
				t.Error("↓ Follow stays on a finished run")
			}
		})
	}
}

// TestUILogBench measures the log viewer on 20,000 and 200,000 lines (FLOWD_UI_BENCH=1; other
// sizes in FLOWD_UI_BENCH_LINES, e.g. "20000,200000", rounds in FLOWD_UI_BENCH_ROUNDS): the time
// to the first row and to the whole log, the longest task the page reports and its elements, for
// BENCHMARKS.md. It asserts nothing on time; a page may freeze for minutes (the old viewer on
// 200,000 lines), so its waits are long.
func TestUILogBench(t *testing.T) {
	if os.Getenv("FLOWD_UI_BENCH") != "1" {
		t.Skip("set FLOWD_UI_BENCH=1 to measure the log viewer")
	}
	sizes, rounds := []int{20000, 200000}, 3
	if v := os.Getenv("FLOWD_UI_BENCH_LINES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("FLOWD_UI_BENCH_LINES=%q: %v", v, err)
			}
			sizes = append(sizes, n)
		}
	}
	if v := os.Getenv("FLOWD_UI_BENCH_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn)
	tok := s.token("admin", adminPassword)
	b := newBrowser(t, s.URL)
	b.signIn("admin", adminPassword)
	watchLongTasks(b)
	wait := func(what, expr string) {
		ctx, cancel := context.WithTimeout(b.ctx, 15*time.Minute)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	for _, n := range sizes {
		id := finishedUILogRun(t, s, tok, uiLogFlood(fmt.Sprintf("flood%d", n), n), fmt.Sprintf("flood%d", n))
		for i := 0; i < rounds; i++ {
			start := time.Now()
			ctx, cancel := context.WithTimeout(b.ctx, 15*time.Minute)
			err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", s.URL, id)))
			cancel()
			if err != nil {
				t.Fatalf("open run %d: %v", id, err)
			}
			wait("the first rows", `Array.from(document.querySelectorAll("#log .line .tx")).some(e => e.textContent === "row 1")`)
			first := time.Since(start)
			wait("the whole log read", `document.querySelector("#log-state").textContent === "finished"`)
			all := time.Since(start)
			f := b.logFigures()
			fmt.Printf("BENCH log viewer: %d lines: first row after %v, all read after %v, longest task %.0f ms (%d long tasks), %d elements, %d lines drawn\n",
				n, first.Round(time.Millisecond), all.Round(time.Millisecond), f.Longest, f.Tasks, f.Elements, f.Lines)
		}
	}
}
