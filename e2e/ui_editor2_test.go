package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestUIEditorHighlightAndIndent proves the definition editor's colours and its Enter key:
// the YAML is split into key, string, number, comment, dash, variable and anchor spans on a
// layer that holds exactly the textarea's text, line for line, with the same font, padding
// and area, and scrolls with it (also in a 2,000-line definition, where a key press renders a
// line or two anew); Enter indents for what the line opens; Ctrl+Z takes an Enter or a Tab
// back; Tab still indents and Esc then Tab still leaves.
func TestUIEditorHighlightAndIndent(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			yaml := "# the browser test's pipeline\n" + strings.Replace(uiHello, "sleep 3", "true", 1) +
				"# anchors: &who and *who\nextra: &who {a: 1, b: [x, 'y']}\n"
			if code := s.api(admin, "POST", "/api/v1/pipelines", strings.Replace(yaml, "extra: &who {a: 1, b: [x, 'y']}\n", "", 1), nil); code != 201 {
				t.Fatalf("create ui-hello: %d", code)
			}
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.open("/pipelines/ui-hello#definition")
			b.waitJS("the definition", `document.querySelector("#yaml").value.includes("name: ui-hello")`)
			b.fill("#yaml", yaml)

			// Each kind of token has its span, and a block scalar's lines are text, not keys.
			for _, c := range []struct{ class, text string }{
				{"y-key", "name"}, {"y-key", "UI_SECRET"}, {"y-str", `"123"`}, {"y-str", `"s3cret-ui-value"`},
				{"y-num", "true"}, {"y-comment", "# the browser test's pipeline"}, {"y-dash", "-"},
				{"y-var", "$abc"}, {"y-anchor", "&who"}, {"y-key", "a"}, {"y-str", "'y'"},
			} {
				if !b.truthy(fmt.Sprintf(`Array.from(document.querySelectorAll(".editor .hl .%s")).some(e => e.textContent === %s)`, c.class, jsString(c.text))) {
					t.Errorf("no .%s span reads %q; the spans: %s", c.class, c.text, b.str(`Array.from(document.querySelectorAll(".editor .hl [class^=y-]")).map(e => e.className + ":" + e.textContent).join(" ")`))
				}
			}
			if b.truthy(`Array.from(document.querySelectorAll(".editor .hl .y-key")).some(e => e.textContent.includes("printf") || e.textContent.includes("echo"))`) {
				t.Error("a line of the block scalar `run: |` is highlighted as a key")
			}
			b.checkLayer("the pipeline")

			// The layer is where the textarea's text is: the same type, padding and area.
			var mismatch []string
			b.eval(`(() => { const ta = document.querySelector("#yaml"), hl = document.querySelector(".editor .hl");
				const a = getComputedStyle(ta), l = getComputedStyle(hl), out = [];
				for (const p of ["fontFamily", "fontSize", "fontWeight", "lineHeight", "letterSpacing", "whiteSpace", "tabSize",
					"paddingTop", "paddingLeft", "fontVariantLigatures"]) if (a[p] !== l[p]) out.push(p + ": " + a[p] + " vs " + l[p]);
				const tr = ta.getBoundingClientRect(), lr = hl.getBoundingClientRect();
				if (Math.abs(tr.left - lr.left) > 0.5 || Math.abs(tr.top - lr.top) > 0.5) out.push("origin " + tr.left + "," + tr.top + " vs " + lr.left + "," + lr.top);
				if (Math.abs(ta.clientWidth - hl.clientWidth) > 0.5 || Math.abs(ta.clientHeight - hl.clientHeight) > 0.5)
					out.push("area " + ta.clientWidth + "x" + ta.clientHeight + " vs " + hl.clientWidth + "x" + hl.clientHeight);
				if (a.color !== "rgba(0, 0, 0, 0)") out.push("the textarea's text is " + a.color + ", not transparent");
				if (a.caretColor === "rgba(0, 0, 0, 0)" || a.caretColor === "transparent") out.push("the caret is invisible");
				const sel = getComputedStyle(ta, "::selection").backgroundColor;
				if (!/^rgba?\(/.test(sel) || sel === "rgba(0, 0, 0, 0)") out.push("the selection has no background: " + sel);
				const lh = parseFloat(l.lineHeight), lines = hl.querySelectorAll(".ln"), top = hl.getBoundingClientRect().top + parseFloat(l.paddingTop) - hl.scrollTop;
				for (const i of [1, 5, 10]) { const r = lines[i].getClientRects()[0]; if (Math.abs(r.top + (r.height - lh) / 2 - (top + i * lh)) > 1) out.push("line " + (i + 1) + " at " + r.top + ", want " + (top + i * lh)); }
				return out })()`, &mismatch)
			if len(mismatch) > 0 {
				t.Errorf("the layer does not line up with the textarea: %s", strings.Join(mismatch, "; "))
			}

			// Enter keeps the indentation, adds two after a key that opens a block, continues a
			// list item at its content; real key presses, each undone by Ctrl+Z.
			b.fill("#yaml", uiHello)
			b.caretAfter("    jobs:")
			b.do("press Enter after jobs:", chromedp.KeyEvent("\n"))
			b.do("type a job", chromedp.KeyEvent("- name: second\n"))
			b.do("type its steps", chromedp.KeyEvent("steps:\n"))
			b.do("type a step", chromedp.KeyEvent("- run: |\n"))
			b.do("type its script", chromedp.KeyEvent("echo hi\n"))
			want := "    jobs:\n      - name: second\n        steps:\n          - run: |\n              echo hi\n              \n      - name: say"
			if got := b.str(`document.querySelector("#yaml").value`); !strings.Contains(got, want) {
				t.Errorf("typing with Enter gave:\n%s\nwant it to contain:\n%s", got, want)
			}
			if !b.truthy(`Array.from(document.querySelectorAll(".editor .hl .ln")).some(l => l.textContent === "              echo hi\n" && l.querySelector(".y-str"))`) {
				t.Error("the typed block scalar's line is not highlighted as text")
			}
			b.checkLayer("the typed text")
			b.fill("#yaml", uiHello)
			b.caretAfter("  abc: \"123\"")
			b.do("press Enter after a plain value", chromedp.KeyEvent("\n"))
			if got := b.str(`document.querySelector("#yaml").value`); !strings.Contains(got, "  abc: \"123\"\n  \n  UI_SECRET:") {
				t.Errorf("Enter after `abc: \"123\"` gave:\n%s", got)
			}
			b.undo()
			if got := b.str(`document.querySelector("#yaml").value`); got != uiHello {
				t.Errorf("Ctrl+Z after Enter left:\n%s", got)
			}
			b.caretAfter("stages:")
			b.do("press Tab", chromedp.KeyEvent(kb.Tab))
			if got := b.str(`document.querySelector("#yaml").value`); !strings.Contains(got, "stages:  \n") {
				t.Errorf("Tab did not type two spaces:\n%s", got)
			}
			b.undo()
			if got := b.str(`document.querySelector("#yaml").value`); got != uiHello {
				t.Errorf("Ctrl+Z after Tab left:\n%s", got)
			}
			b.do("press Esc then Tab", chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent(kb.Tab))
			if b.truthy(`document.activeElement === document.querySelector("#yaml")`) || b.str(`document.querySelector("#yaml").value`) != uiHello {
				t.Error("Esc then Tab did not leave the editor untouched")
			}

			// A 2,000-line definition: the layer scrolls with the textarea to the middle and to
			// the very end, down and across; a key press renders a line or two anew.
			long := longYAML(2000)
			var ms float64
			b.eval(`(() => { const ta = document.querySelector("#yaml"); ta.focus(); const t0 = performance.now();
				ta.value = `+jsString(long)+`; ta.dispatchEvent(new Event("input", {bubbles: true})); document.querySelector(".editor .hl").getBoundingClientRect(); return performance.now() - t0 })()`, &ms)
			t.Logf("painting a 2,000-line definition: %.1f ms", ms)
			b.checkLayer("the long definition")
			for _, to := range []string{"ta.scrollHeight / 2", "ta.scrollHeight", "0"} {
				var got []float64
				b.eval(`(() => { const ta = document.querySelector("#yaml"); ta.scrollTop = `+to+`; ta.scrollLeft = ta.scrollWidth;
					return new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(() => { const hl = document.querySelector(".editor .hl");
					ok([ta.scrollTop, hl.scrollTop, ta.scrollLeft, hl.scrollLeft, document.querySelector(".editor .gutter").scrollTop]) }))) })()`, &got)
				if got[0] != got[1] || got[2] != got[3] || got[0] != got[4] {
					t.Errorf("scrolled to %s: textarea at %v,%v, layer at %v,%v, gutter at %v", to, got[0], got[2], got[1], got[3], got[4])
				}
				if to != "0" && (got[0] == 0 || got[2] == 0) {
					t.Errorf("scrolled to %s, the textarea did not move: %v", to, got)
				}
			}
			b.eval(`(() => { const ta = document.querySelector("#yaml"); const at = ta.value.indexOf("name: job-300"); ta.focus(); ta.setSelectionRange(at, at);
				window.__rendered = 0; window.__obs = new MutationObserver(rs => { for (const r of rs) window.__rendered += r.addedNodes.length });
				window.__obs.observe(document.querySelector(".editor .hl"), {childList: true}); return true })()`, nil)
			b.do("type in the long definition", chromedp.KeyEvent("x"))
			b.waitJS("the typed letter", `document.querySelector("#yaml").value.includes("xname: job-300")`)
			if n := b.str(`String(window.__rendered)`); n != "1" {
				t.Errorf("a key press rendered %s lines anew, want 1", n)
			}
			var oneKey float64
			b.eval(`(() => { const ta = document.querySelector("#yaml"); const t0 = performance.now(); document.execCommand("insertText", false, "y");
				return performance.now() - t0 })()`, &oneKey)
			t.Logf("one key in a 2,000-line definition: %.2f ms", oneKey)
			b.checkLayer("the long definition after typing")
			// A `|` turns the lines under a key into text; taking it back makes them keys again.
			b.eval(`(() => { const ta = document.querySelector("#yaml"); const at = ta.value.indexOf("steps:") + 6; ta.setSelectionRange(at, at); return true })()`, nil)
			b.do("type a block scalar", chromedp.KeyEvent(" |"))
			b.checkLayer("a block scalar typed")
			b.waitJS("the steps as text", `(() => { const ls = document.querySelectorAll(".editor .hl .ln"); const i = Array.from(ls).findIndex(l => l.textContent.includes("steps: |"));
				return i > 0 && ls[i + 1].querySelector(".y-str") && !ls[i + 1].querySelector(".y-key") })()`)
			b.do("take it back", chromedp.KeyEvent(kb.Backspace), chromedp.KeyEvent(kb.Backspace))
			b.checkLayer("the block scalar taken back")
			b.waitJS("the steps as keys", `(() => { const ls = document.querySelectorAll(".editor .hl .ln"); const i = Array.from(ls).findIndex(l => l.textContent.includes("steps:"));
				return i > 0 && ls[i + 1].querySelector(".y-key") })()`)

			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				b.fill("#yaml", yaml)
				editorScreenshot(b, "editor-highlight")
				b.colorScheme("dark")
				editorScreenshot(b, "editor-highlight-dark")
			}
		})
	}
}

// checkLayer fails unless the highlight layer holds exactly the textarea's text, one .ln per
// line.
func (b *browser) checkLayer(what string) {
	b.t.Helper()
	b.waitJS(what+": the layer holds the text", `(() => { const ta = document.querySelector("#yaml"), hl = document.querySelector(".editor .hl");
		return hl.textContent === ta.value && hl.querySelectorAll(".ln").length === ta.value.split("\n").length })()`)
}

// caretAfter focuses the editor with the caret right after the first text in it.
func (b *browser) caretAfter(text string) {
	b.t.Helper()
	b.eval(`(() => { const ta = document.querySelector("#yaml"); ta.focus(); const at = ta.value.indexOf(`+jsString(text)+`) + `+fmt.Sprint(len(text))+`;
		ta.setSelectionRange(at, at); return true })()`, nil)
}

// undo presses Ctrl+Z.
func (b *browser) undo() {
	b.t.Helper()
	b.do("press Ctrl+Z", chromedp.KeyEvent("z", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
}

// longYAML is a pipeline definition of about n lines: one stage of many jobs, each with a
// step whose script is a block scalar.
func longYAML(n int) string {
	var sb strings.Builder
	sb.WriteString("name: ui-hello\ndescription: a long definition\nstages:\n  - name: build\n    jobs:\n")
	for i := 0; strings.Count(sb.String(), "\n") < n-8; i++ {
		fmt.Fprintf(&sb, "      - name: job-%d\n        steps:\n          - name: step # the only one\n            run: |\n              echo \"job %d of $FLOWD_PIPELINE\" && test %d -ge 0\n", i, i, i)
	}
	sb.WriteString("      - name: last\n        steps:\n          - run: echo '" + strings.Repeat("a very long line, ", 20) + "'\n")
	return sb.String()
}
