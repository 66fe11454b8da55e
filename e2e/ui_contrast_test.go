package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// contrastReading is one element's text colour over what is behind it, as WCAG 2 measures it.
type contrastReading struct {
	Path  string  `json:"path"` // tag#id.class of the element and its parents, to find it
	Text  string  `json:"text"` // its text, cut at 40 characters
	Fg    string  `json:"fg"`   // the text colour, composed over the background, as rgb()
	Bg    string  `json:"bg"`   // the effective background, as rgb()
	Ratio float64 `json:"ratio"`
}

func (r contrastReading) String() string {
	return fmt.Sprintf("%s %q: %s on %s = %.2f:1", r.Path, r.Text, r.Fg, r.Bg, r.Ratio)
}

// contrastScript measures every shown element matching the selector (the function's argument)
// that has text. The text colour comes from getComputedStyle, its alpha times the opacity of
// the element and its ancestors; the background is found by walking up the ancestors to the
// first opaque background-color, composing the semi-transparent ones above it in order
// (the page's canvas, white, when none is opaque). Colours are read through a canvas, so any
// CSS colour syntax the browser returns works. Elements drawn over something that is not
// their ancestor (an absolutely positioned badge over an image) are measured against their
// ancestors all the same.
const contrastScript = `(sel) => {
	const cv = document.createElement("canvas"); cv.width = cv.height = 1;
	const cx = cv.getContext("2d", { willReadFrequently: true });
	const rgba = (c) => { cx.clearRect(0, 0, 1, 1); cx.fillStyle = "#000"; cx.fillStyle = c; cx.fillRect(0, 0, 1, 1);
		const d = cx.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255]; };
	const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3])).concat(1);
	const lum = (c) => { const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
		return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
	const css = (c) => "rgb(" + c.slice(0, 3).map(Math.round).join(", ") + ")";
	const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
	const out = [];
	for (const el of document.querySelectorAll(sel)) {
		if (!el.getClientRects().length || !el.textContent.trim()) continue;
		const st = getComputedStyle(el);
		if (st.visibility !== "visible") continue;
		let opacity = 1, layers = [];
		for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
			const s = getComputedStyle(n);
			opacity *= parseFloat(s.opacity);
			if (layers.length && layers[layers.length - 1][3] >= 1) continue;
			const b = rgba(s.backgroundColor);
			if (b[3] > 0) layers.push(b);
		}
		let bg = [255, 255, 255, 1];
		for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
		const f = rgba(st.color); f[3] *= opacity;
		const fg = over(f, bg);
		const a = lum(fg), b = lum(bg);
		const path = []; for (let n = el; n && n !== document.body && path.length < 4; n = n.parentElement) path.unshift(name(n));
		out.push({ path: path.join(" > "), text: el.textContent.trim().replace(/\s+/g, " ").slice(0, 40), fg: css(fg), bg: css(bg),
			ratio: Math.round((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) * 100) / 100 });
	}
	return out;
}`

// contrastOf measures the WCAG 2 contrast ratio of the text of every shown element that
// matches selector in the page of the chromedp context ctx (a browser's b.ctx): its text
// colour over its effective background (see contrastScript). Other tests call it to check their
// own elements, for example requireContrast(t, b.ctx, "the run page", 4.5, ".badge").
func contrastOf(t *testing.T, ctx context.Context, selector string) []contrastReading {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]contrastReading]("("+contrastScript+")("+jsString(selector)+")"))
	if err != nil {
		t.Fatalf("measure the contrast of %s: %v", selector, err)
	}
	return out
}

// requireContrast fails t for every element of the selectors whose text has a contrast below
// min (4.5 for normal text, WCAG 2 AA), and answers how many elements it measured.
func requireContrast(t *testing.T, ctx context.Context, where string, min float64, selectors ...string) int {
	t.Helper()
	n := 0
	for _, sel := range selectors {
		for _, r := range contrastOf(t, ctx, sel) {
			n++
			if r.Ratio < min {
				t.Errorf("%s, %s: %s, want at least %.1f:1", where, sel, r, min)
			}
		}
	}
	return n
}

// colorScheme makes the page's prefers-color-scheme light or dark (and the media query
// lists of the page follow at once).
func (b *browser) colorScheme(scheme string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
		b.fail("emulate prefers-color-scheme: %s: %v", scheme, err)
	}
	b.waitJS("the "+scheme+" scheme", fmt.Sprintf(`matchMedia("(prefers-color-scheme: %s)").matches`, scheme))
}

// TestUIContrast checks that text the pages show in a quieter colour — the ADMIN tag in the
// header, role tags, every status badge, muted and hint text, table headings, the editor's
// colours — has a contrast of at least 4.5:1, in the light scheme and in the dark one.
func TestUIContrast(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			s.user(admin, "vera")
			if code := s.api(admin, "PATCH", "/api/v1/users/vera", map[string]any{"disabled": true}, nil); code != 200 {
				t.Fatalf("disable vera: %d", code)
			}
			// Its definition has every colour of the editor: a comment and an anchor too.
			hello := "# every colour of the editor\n" + strings.Replace(strings.Replace(uiHello, "sleep 3", "true", 1), `abc: "123"`, `abc: &abc "123"`, 1)
			if code := s.api(admin, "POST", "/api/v1/pipelines", hello, nil); code != 201 {
				t.Fatalf("create ui-hello: %d", code)
			}
			// A run whose first stage fails: its later stage is skipped.
			failing := "name: ui-fails\nstages:\n  - name: build\n    jobs:\n      - name: boom\n        steps:\n          - run: exit 3\n" +
				"  - name: ship\n    jobs:\n      - name: never\n        steps:\n          - run: true\n"
			if code := s.api(admin, "POST", "/api/v1/pipelines", failing, nil); code != 201 {
				t.Fatalf("create ui-fails: %d", code)
			}
			var started struct{ Run runView }
			if code := s.api(admin, "POST", "/api/v1/pipelines/ui-fails/runs", map[string]any{}, &started); code != 201 {
				t.Fatalf("start a run: %d", code)
			}
			waitFor(t, "the run to fail", func() bool { return s.run(admin, started.Run.ID).Status == "failed" })
			if code := s.api(admin, "POST", "/api/v1/pipelines/ui-hello/triggers/webhook/enable", map[string]any{}, nil); code != 200 {
				t.Fatalf("enable the webhook: %d", code)
			}

			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			quiet := []string{".top .tag", ".tag", ".badge", ".muted", ".hint", ".sub", ".crumbs", "table.list th", "label", ".dur",
				"dl.facts dt", ".gitline", ".icon", ".editor .gutter", ".editor .hl [class^=y-]", ".alert",
				".btn:not(:disabled)"} // a disabled control is exempt (WCAG 1.4.3)
			pages := []struct{ path, ready string }{
				{"/", `document.querySelector("table") && !document.body.textContent.includes("Loading")`},
				// the pipeline page's tabs, each shown alone
				{"/pipelines/ui-hello#runs", `!document.querySelector("#run-list").textContent.includes("Loading") && document.querySelector("#queue-now") !== null`},
				{"/pipelines/ui-hello#definition", `document.querySelector(".editor .hl .y-key") !== null && document.querySelector("#rev-list tr[data-rev]") !== null`},
				{"/pipelines/ui-hello#webhook", `document.querySelector("#hook-state") !== null && document.querySelector("#audit-list tbody strong") !== null`},
				{"/pipelines/ui-hello#members", `document.querySelector("#member-list tbody select") !== null`},
				{"/pipelines/ui-hello#settings", `document.querySelector("#trust-toggle") !== null`},
				{fmt.Sprintf("/runs/%d", started.Run.ID), `document.querySelector("#stages .i-skipped") !== null`},
				{"/pipelines/ui-hello/deliveries", `document.readyState === "complete"`},
				{"/admin/users", `document.querySelector('#user-list tr[data-user="vera"] .badge') !== null`},
				{"/admin/nodes", `document.querySelector("#node-list .badge") !== null`},
				{"/account/tokens", `!document.querySelector("#token-list").textContent.includes("Loading")`},
				{"/account", `document.readyState === "complete"`},
			}
			measured := 0
			for _, scheme := range []string{"light", "dark"} {
				b.colorScheme(scheme)
				for _, p := range pages {
					b.open(p.path)
					b.waitJS(p.path, p.ready)
					if p.path == "/" { // one badge of each status, as the pages draw them
						b.eval(`(() => { const c = document.createElement("section"); c.className = "card"; c.id = "badge-sample";
							for (const s of ["success", "failed", "running", "queued", "canceled", "skipped", "none"]) {
								const e = document.createElement("span"); e.className = "badge s-" + s; e.textContent = s; c.append(e, " "); }
							document.querySelector("main").append(c); return true })()`, nil)
					}
					n := requireContrast(t, b.ctx, scheme+" "+p.path, 4.5, quiet...)
					measured += n
				}
				b.open("/pipelines/ui-hello#definition")
				b.waitJS("the definition", `document.querySelector(".editor .hl .y-key") !== null`)
				for _, c := range []string{"y-key", "y-str", "y-num", "y-comment", "y-dash", "y-var", "y-anchor", "y-punct"} {
					if got := contrastOf(t, b.ctx, ".editor .hl ."+c); len(got) == 0 {
						t.Errorf("%s: the editor shows no .%s to measure", scheme, c)
					}
				}
				if got := contrastOf(t, b.ctx, ".top .tag"); len(got) != 1 || got[0].Text != "admin" {
					t.Errorf("%s: the header's ADMIN tag was not measured: %v", scheme, got)
				}
			}
			t.Logf("measured the contrast of %d elements", measured)
			if measured < 100 {
				t.Errorf("measured only %d elements: the selectors find too little", measured)
			}
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				for _, scheme := range []string{"light", "dark"} {
					b.colorScheme(scheme)
					b.open("/admin/users")
					b.waitJS("the users", `document.querySelector('#user-list tr[data-user="vera"] .badge') !== null`)
					t.Logf("screenshot: %s", b.screenshot(dir, "contrast-users-"+scheme+"-laptop", 1280, 800))
				}
			}
		})
	}
}
