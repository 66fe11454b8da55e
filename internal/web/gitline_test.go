package web_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/web"
)

// hostileGit is a commit whose message and author are markup, as a Git host's payload may carry.
var hostileGit = run.Git{
	RepoURL: "https://git.example.com/acme/app.git",
	SHA:     "0123456789abcdef0123456789abcdef01234567",
	Ref:     "refs/heads/feature/<b>x</b>",
	Branch:  "feature/<b>x</b>",
	Event:   "push", Provider: "github",
	Message: `<img src=x onerror="alert(1)"> fix the build` + "\n\nsecond line <script>alert(2)</script>",
	Author:  `Eve <eve@example.com>`,
}

// TestWebRunPageShowsCommit: the run page has the place for the commit, keeps its CSP (no
// inline script or style), and the run it reads carries git and concurrency_group.
func TestWebRunPageShowsCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", "http://flowd.test")
	u := e.user("alice", false)
	ctx := context.Background()
	p, err := e.st.PipelineCreate(ctx, "hello", "name: hello\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", nil, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	g := hostileGit
	r, err := e.st.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Revision: p.Revision, Trigger: run.TriggerPush, TriggeredBy: "alice",
		Git: &g, ConcurrencyGroup: "deploy-main",
		Jobs: []run.Job{{Name: "j", StageName: "s", Steps: []run.Step{{Name: "one", Script: "true"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := e.browser()
	e.signIn(c, "alice")
	id := strconv.FormatInt(r.ID, 10)
	resp, page := get(t, c, e.srv.URL+"/runs/"+id)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="run-git"`) {
		t.Fatalf("GET /runs/%s = %d; want the page with #run-git:\n%s", id, resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("run page CSP %q", csp)
	}
	checkNoInline(t, "/runs/"+id, page)
	if strings.Contains(page, "onerror") || strings.Contains(page, hostileGit.SHA) {
		t.Errorf("the run page renders commit data on the server; the script shows it as text")
	}
	_, pipelinePage := get(t, c, e.srv.URL+"/pipelines/hello")
	checkNoInline(t, "/pipelines/hello", pipelinePage)

	// What the script reads: the run with its commit and group.
	_, body := get(t, c, e.srv.URL+"/api/v1/runs/"+id)
	var got struct {
		Git              *run.Git `json:"git"`
		ConcurrencyGroup string   `json:"concurrency_group"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Git == nil || got.Git.SHA != hostileGit.SHA || got.Git.Message != hostileGit.Message || got.ConcurrencyGroup != "deploy-main" {
		t.Errorf("GET /api/v1/runs/%s = %s (%v)", id, body, err)
	}
	_, body = get(t, c, e.srv.URL+"/api/v1/pipelines/hello/runs")
	if !strings.Contains(body, `"commit_sha":"`+hostileGit.SHA+`"`) {
		t.Errorf("the run history lacks the commit: %s", body)
	}
}

// checkNoInline fails when a page has an inline script, an inline style or an event handler
// attribute, which the CSP would block.
func checkNoInline(t *testing.T, path, page string) {
	t.Helper()
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(scripts) == 0 {
		t.Errorf("%s loads no script", path)
	}
	for _, m := range scripts {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("%s has an inline script: %q", path, m[0])
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle=`),
		regexp.MustCompile(`(?i)\son[a-z]+=`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("%s has inline markup the CSP blocks: %q", path, m)
		}
	}
}

// TestAppJSNeverParsesMarkup: the script builds every node with textContent and attributes;
// nothing it shows can become markup.
func TestAppJSNeverParsesMarkup(t *testing.T) {
	t.Parallel()
	src := readAppJS(t)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"} {
		if strings.Contains(src, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, want := range []string{"function gitParts(", "gitParts(run.git, false)", "gitParts(run.git, true)", "$('#run-git')"} {
		if !strings.Contains(src, want) {
			t.Errorf("app.js lacks %s: the run page and the run history must show the commit", want)
		}
	}
}

// TestAppJSGitParts runs app.js's gitParts in Node against a tiny DOM that has no HTML parser
// (setting innerHTML throws): the short SHA with the full one in its title, the branch, the
// event, the message's first line and the author, all as text; markup in the payload stays text.
func TestAppJSGitParts(t *testing.T) {
	t.Parallel()
	gitJSON, _ := json.Marshal(hostileGit)
	b := runHelpers(t, `
const git = `+string(gitJSON)+`;
const out = {
  full: gitParts(git, false).map(dump),
  compact: gitParts(git, true).map(dump),
  tag: gitParts({ commit_sha: 'abc', tag: 'v1.2.0', ref: 'refs/tags/v1.2.0', event: 'tag' }, false).map(dump),
  none: gitParts(null, false).length + gitParts({}, false).length,
  created: created,
};
process.stdout.write(JSON.stringify(out));
`)
	type el struct {
		Tag   string            `json:"tag"`
		Attrs map[string]string `json:"attrs"`
		Class string            `json:"class"`
		Text  string            `json:"text"`
	}
	var out struct {
		Full, Compact, Tag []el
		None               int
		Created            []string
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("node printed %s: %v", b, err)
	}
	texts := func(es []el) []string {
		var s []string
		for _, e := range es {
			s = append(s, e.Text)
		}
		return s
	}
	wantFull := []string{"0123456789ab", "branch ⎇ feature/<b>x</b>", "push · github", `<img src=x onerror="alert(1)"> fix the build`, "by Eve <eve@example.com>"}
	if got := texts(out.Full); strings.Join(got, "|") != strings.Join(wantFull, "|") {
		t.Errorf("gitParts(git) texts = %q, want %q", got, wantFull)
	}
	if len(out.Full) > 0 && (out.Full[0].Tag != "code" || out.Full[0].Attrs["title"] != hostileGit.SHA) {
		t.Errorf("the SHA part = %+v, want <code> with the full SHA as its title", out.Full[0])
	}
	wantCompact := []string{"0123456789ab", "branch ⎇ feature/<b>x</b>", `<img src=x onerror="alert(1)"> fix the build`}
	if got := texts(out.Compact); strings.Join(got, "|") != strings.Join(wantCompact, "|") {
		t.Errorf("gitParts(git, compact) texts = %q, want %q", got, wantCompact)
	}
	if got := texts(out.Tag); len(got) < 3 || got[1] != "tag v1.2.0" || got[2] != "tag" {
		t.Errorf("a tag's parts = %q, want the tag and the event", got)
	}
	if out.None != 0 {
		t.Errorf("a run without git gives %d parts, want none", out.None)
	}
	for _, tag := range out.Created {
		if tag != "code" && tag != "span" {
			t.Errorf("gitParts made a <%s>: payload markup became an element", tag)
		}
	}
}

// TestAppJSJobImage runs app.js's jobImage in Node: a job in a container shows " in IMAGE",
// the image as text in a <code>; a job on the host shows nothing.
func TestAppJSJobImage(t *testing.T) {
	t.Parallel()
	if !strings.Contains(readAppJS(t), "jobImage(j)") {
		t.Error("the run page does not call jobImage for its jobs")
	}
	b := runHelpers(t, `
const boxed = jobImage({ name: 'build', container: { image: 'golang:1.26<b>' } });
process.stdout.write(JSON.stringify({
  boxed: dump(boxed),
  code: boxed.kids.filter(k => k.tagName).map(k => k.tagName),
  host: jobImage({ name: 'lint' }),
  nullContainer: jobImage({ name: 'lint', container: null }),
}));
`)
	var out struct {
		Boxed struct {
			Tag, Class, Text string
		}
		Code                []string
		Host, NullContainer string
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("node printed %s: %v", b, err)
	}
	if out.Boxed.Tag != "span" || out.Boxed.Class != "image" || out.Boxed.Text != " in golang:1.26<b>" || strings.Join(out.Code, ",") != "code" {
		t.Errorf("jobImage of a job in a container = %+v (children %v)", out.Boxed, out.Code)
	}
	if out.Host != "" || out.NullContainer != "" {
		t.Errorf("jobImage of a host job = %q, %q; want nothing", out.Host, out.NullContainer)
	}
}

// runHelpers runs script in Node after fakeDOM and app.js's small helpers, and returns what it
// printed; it skips t when Node is not installed (fails under FLOWD_TEST_REQUIRE_ALL=1).
func runHelpers(t *testing.T, script string) []byte {
	t.Helper()
	node := nodeOrSkip(t)
	b, err := os.ReadFile(filepath.Join("static", "js", "core.js"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := strings.Index(src, "// ---- small helpers")
	if start < 0 {
		t.Fatal("core.js: cannot find its small helpers section")
	}
	f := filepath.Join(t.TempDir(), "helpers.js")
	if err := os.WriteFile(f, []byte(fakeDOM+src[start:]+script), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = exec.Command(node, f).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, b)
	}
	return b
}

// nodeOrSkip returns Node's path; it skips t when Node is not installed (fails under
// FLOWD_TEST_REQUIRE_ALL=1).
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("FLOWD_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("node is not installed and FLOWD_TEST_REQUIRE_ALL=1: install Debian's nodejs")
		}
		t.Skip("node is not installed; app.js's helpers are checked in the browser tests")
	}
	return node
}

func readAppJS(t *testing.T) string {
	t.Helper()
	return string(web.AppJS())
}

// fakeDOM is just enough of a DOM for app.js's h(): elements with attributes, classes and text
// children, and no way to parse markup.
const fakeDOM = `'use strict';
const created = [];
class Node {}
class Text extends Node { constructor(s) { super(); this.data = String(s); } get textContent() { return this.data; } }
class Element extends Node {
  constructor(tag) { super(); this.tagName = tag; this.attrs = {}; this.kids = []; this.className = ''; this.listeners = {}; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  addEventListener(k, f) { this.listeners[k] = f; }
  append(...xs) { for (const x of xs) this.kids.push(x instanceof Node ? x : new Text(x)); }
  set textContent(s) { this.kids = [new Text(s)]; }
  get textContent() { return this.kids.map(k => k.textContent).join(''); }
  set innerHTML(s) { throw new Error('innerHTML set to ' + s); }
  insertAdjacentHTML() { throw new Error('insertAdjacentHTML'); }
}
const document = { createElement(tag) { created.push(tag); return new Element(tag); } };
function dump(el) { return { tag: el.tagName, attrs: el.attrs, class: el.className, text: el.textContent }; }
`

// TestAppJSParses: the scripts of static/js, joined as /static/app.js, are one valid script
// (a part that leaves a brace open breaks every page).
func TestAppJSParses(t *testing.T) {
	t.Parallel()
	node := nodeOrSkip(t)
	f := filepath.Join(t.TempDir(), "app.js")
	if err := os.WriteFile(f, web.AppJS(), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
		t.Fatalf("node --check app.js: %v\n%s", err, b)
	}
}
