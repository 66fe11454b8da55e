package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// livePipeline is a pipeline whose run waits, when its variable MARK names a file, until that
// file exists in dir; with MARK "none" it ends at once.
func livePipeline(name, dir string) string {
	return fmt.Sprintf(`name: %s
variables:
  MARK: none
stages:
  - name: work
    jobs:
      - name: work
        steps:
          - name: wait
            run: |
              if [ "$MARK" != none ]; then while [ ! -f %s/"$MARK" ]; do sleep 0.1; done; fi
`, name, dir)
}

// startLiveRun starts a run of pipeline on s through the API, waiting for the file mark
// ("none": not waiting), and returns its id.
func (s *server) startLiveRun(token, pipeline, mark string) int64 {
	s.t.Helper()
	var out struct {
		Run struct {
			ID int64 `json:"id"`
		} `json:"run"`
	}
	if code := s.api(token, "POST", "/api/v1/pipelines/"+pipeline+"/runs", map[string]any{"variables": map[string]string{"MARK": mark}}, &out); code != 201 {
		s.t.Fatalf("start a run of %s: %d", pipeline, code)
	}
	return out.Run.ID
}

// waitStatus waits until run id has status.
func (s *server) waitStatus(token string, id int64, status string) {
	s.t.Helper()
	waitFor(s.t, fmt.Sprintf("run %d to be %s", id, status), func() bool { return s.run(token, id).Status == status })
}

// release creates the file mark in dir: the runs waiting for it end.
func release(t *testing.T, dir, mark string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, mark), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// notReloaded marks the page open now, so stillSame can tell it was not loaded again.
func (b *browser) notReloaded() { b.eval(`window.__liveTest = true`, nil) }

func (b *browser) stillSame(what string) {
	b.t.Helper()
	if !b.truthy(`window.__liveTest === true`) {
		b.fail("the page was loaded again for %s; it should have changed in place", what)
	}
}

// listRow is the JavaScript text of the pipelines list's row of name.
func listRow(name string) string {
	return fmt.Sprintf(`(document.querySelector('#pipelines tr[data-name=%q]') || {innerText: ''}).innerText`, name)
}

// TestUILive: the pipelines list, a pipeline's run history, its deliveries and the nodes page
// change as runs start and end, deliveries come in and agents change, without a reload; a
// running run shows beside a newer one that ended; the run history keeps its page and filters
// in the URL (Back from a run returns to them), says its total and jumps to a run.
func TestUILive(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			requireUI(t, s)
			admin := s.token("admin", adminPassword)
			dir := sharedDir(t)
			hook := s.enableHook(admin, livePipeline("waits", dir), "waits", "")
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)

			// The pipelines list follows runs as they start and end.
			b.open("/")
			b.waitJS("the list's stream", `document.body.dataset.live === 'open'`)
			b.notReloaded()
			first := s.startLiveRun(admin, "waits", "first")
			b.waitJS("run #1 running in the list", listRow("waits")+`.includes("running") && `+listRow("waits")+`.includes("#1")`)
			second := s.startLiveRun(admin, "waits", "none")
			s.waitStatus(admin, second, "success")
			b.waitJS("#2 done beside #1 still running", `(() => {
				const row = document.querySelector('#pipelines tr[data-name="waits"]');
				const run = row && row.querySelector('a.running-run');
				return row && row.innerText.includes('#2') && row.innerText.includes('success') && run && run.innerText.includes('#1 running')
			})()`)
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
				t.Logf("screenshots: %s %s", b.screenshot(dir, "live-pipelines-phone", 390, 844), b.screenshot(dir, "live-pipelines-laptop", 1280, 800))
			}
			release(t, dir, "first")
			s.waitStatus(admin, first, "success")
			b.waitJS("#1's end in the list", `!document.querySelector('#pipelines tr[data-name="waits"] a.running-run')`)
			b.stillSame("runs starting and ending")

			// More runs, for pages of the history (20 a page).
			for range 21 {
				s.startLiveRun(admin, "waits", "none")
			}
			waitFor(t, "23 runs to end", func() bool {
				var out struct {
					Total int `json:"total"`
				}
				s.api(admin, "GET", "/api/v1/pipelines/waits/runs?status=success&limit=1", nil, &out)
				return out.Total == 23
			})

			// The history: total, filters and page in the URL, Back from a run to them.
			b.open("/pipelines/waits")
			b.waitJS("the history's total", `document.querySelector('#runs-total').textContent === 'Runs 1–20 of 23'`)
			b.eval(`(() => { const s = document.querySelector('#run-filters select[name=status]'); s.value = 'success'; s.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, nil)
			b.waitJS("the filter in the URL", `location.search.includes('status=success') && document.querySelector('#runs-total').textContent === 'Runs 1–20 of 23 matching'`)
			b.click("#runs-older")
			b.waitJS("the older page", `location.search.includes('before=4') && document.querySelector('#runs-total').textContent === 'Runs 21–23 of 23 matching'`)
			b.click(`#run-list tr[data-number="2"] a`)
			b.waitJS("the run page", `location.pathname.startsWith('/runs/')`)
			b.eval(`history.back(), true`, nil)
			b.waitJS("Back on the same page of the history", `location.pathname === '/pipelines/waits' && location.search.includes('before=4') &&
				location.search.includes('status=success') && document.querySelector('#run-filters select[name=status]').value === 'success' &&
				document.querySelector('#runs-total').textContent === 'Runs 21–23 of 23 matching' && !!document.querySelector('#run-list tr[data-number="3"]')`)
			b.click("#runs-newer")
			b.waitJS("Newer goes back to the first page", `!location.search.includes('before=') && document.querySelector('#run-list tr[data-number="23"]')`)

			// Go to run #N: the page that starts with it, the run marked.
			b.fill(`#run-jump input[name=number]`, "7")
			b.click(`#run-jump button[type=submit]`)
			b.waitJS("the jump to #7", `location.search.includes('before=8') && document.querySelector('#run-list tbody tr').dataset.number === '7' &&
				document.querySelector('#run-list tr.hit').dataset.number === '7' && document.querySelector('#run-filters select[name=status]').value === ''`)
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
				t.Logf("screenshots: %s %s", b.screenshot(dir, "live-history-phone", 390, 844), b.screenshot(dir, "live-history-laptop", 1280, 800))
			}

			// The newest page follows runs live.
			b.click("#runs-newest")
			b.waitJS("the newest page", `document.body.dataset.live === 'open' && document.querySelector('#runs-total').textContent === 'Runs 1–20 of 23'`)
			b.notReloaded()
			live := s.startLiveRun(admin, "waits", "third")
			b.waitJS("#24 running in the history", `(() => { const row = document.querySelector('#run-list tr[data-number="24"]');
				return row && row.innerText.includes('running') })()`)
			release(t, dir, "third")
			s.waitStatus(admin, live, "success")
			b.waitJS("#24's end in the history", `document.querySelector('#run-list tr[data-number="24"]').innerText.includes('success') &&
				document.querySelector('#runs-total').textContent === 'Runs 1–20 of 24'`)
			b.stillSame("the history's live run")

			// Deliveries: a new one shows, with its run as #N.
			b.open("/pipelines/waits/deliveries")
			b.waitJS("the deliveries' stream", `document.body.dataset.live === 'open' && document.querySelector('#dl-list tbody').innerText.includes('No deliveries yet')`)
			b.notReloaded()
			id, err := deliver(hook)
			if err != nil {
				t.Fatal(err)
			}
			b.waitJS("the delivery, live", `(() => { const a = document.querySelector('#dl-list tr[data-id] a[href^="/runs/"]');
				return a && a.textContent === '#25' && a.getAttribute('href') === '/runs/`+fmt.Sprint(id)+`' })()`)
			b.stillSame("a delivery")
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
				t.Logf("screenshots: %s %s", b.screenshot(dir, "live-deliveries-phone", 390, 844), b.screenshot(dir, "live-deliveries-laptop", 1280, 800))
			}
			s.waitStatus(admin, id, "success")

			// Nodes: an agent token made elsewhere, and the job a node holds, show live.
			b.open("/admin/nodes")
			b.waitJS("the nodes page's stream", `document.body.dataset.live === 'open' && document.querySelector('#node-list tr[data-node]')`)
			b.notReloaded()
			if code := s.api(admin, "POST", "/api/v1/agent-tokens", map[string]any{"name": "live-builder"}, nil); code != 201 {
				t.Fatalf("create an agent token: %d", code)
			}
			b.waitJS("the new agent token", `!!document.querySelector('#agent-token-list tr[data-agent-token="live-builder"]')`)
			held := s.startLiveRun(admin, "waits", "fourth")
			b.waitJS("the job the server holds", `document.querySelector('#node-list').innerText.includes('waits #26')`)
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
				t.Logf("screenshots: %s %s", b.screenshot(dir, "live-nodes-phone", 390, 844), b.screenshot(dir, "live-nodes-laptop", 1280, 800))
			}
			release(t, dir, "fourth")
			s.waitStatus(admin, held, "success")
			b.waitJS("the job's end on the nodes page", `!document.querySelector('#node-list').innerText.includes('waits #26')`)
			b.stillSame("nodes and jobs changing")
		})
	}
}

// TestUILiveCluster: on two servers sharing PostgreSQL, the pipelines list open on server A
// follows a run started through server B, from its start to its end, and A's nodes page shows
// an agent token made through B.
func TestUILiveCluster(t *testing.T) {
	c := startCluster(t, nodeSpec{Name: "live-a"}, nodeSpec{Name: "live-b"})
	a, srvB := c.Nodes[0], c.Nodes[1]
	requireUI(t, a.server)
	dir := sharedDir(t)
	a.createPipeline(c.Admin, livePipeline("far", dir))
	b := newBrowser(t, a.URL)
	b.signIn("admin", adminPassword)
	b.open("/")
	b.waitJS("the list's stream", `document.body.dataset.live === 'open' && !!document.querySelector('#pipelines tr[data-name="far"]')`)
	b.notReloaded()
	id := srvB.startLiveRun(c.Admin, "far", "go")
	b.waitJS("B's run, running, on A's page", listRow("far")+`.includes("running") && `+listRow("far")+`.includes("#1")`)
	release(t, dir, "go")
	srvB.waitStatus(c.Admin, id, "success")
	b.waitJS("B's run's end on A's page", listRow("far")+`.includes("success")`)
	b.stillSame("a run of another server")
	if strings.Contains(b.str(listRow("far")), "running") {
		t.Errorf("A's list still says running: %q", b.str(listRow("far")))
	}

	// A's nodes page shows both servers, and an agent token made through B.
	b.open("/admin/nodes")
	b.waitJS("A's nodes page", `document.body.dataset.live === 'open' && !!document.querySelector('#node-list tr[data-node="live-a"]') &&
		!!document.querySelector('#node-list tr[data-node="live-b"]') && document.querySelector('#agent-token-list').innerText.includes('No agent token yet')`)
	b.notReloaded()
	if code := srvB.api(c.Admin, "POST", "/api/v1/agent-tokens", map[string]any{"name": "made-on-b"}, nil); code != 201 {
		t.Fatalf("create an agent token on B: %d", code)
	}
	b.waitJS("B's agent token on A's page", `!!document.querySelector('#agent-token-list tr[data-agent-token="made-on-b"]')`)
	b.stillSame("an agent token made on another server")
}

// TestEventsShutdown: open event streams, one of a client that never reads, do not hold up a
// server's stop: the streams end at once (the reading client sees the end), and the server
// does not have to cut connections when its grace runs out.
func TestEventsShutdown(t *testing.T) {
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			s := startServer(t, data, dsn)
			admin := s.token("admin", adminPassword)
			stuck, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer stuck.Close()
			fmt.Fprintf(stuck, "GET /api/v1/events HTTP/1.1\r\nHost: flowd\r\nAuthorization: Bearer %s\r\n\r\n", admin)
			req, _ := http.NewRequest("GET", s.URL+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("events: %d", resp.StatusCode)
			}
			ended := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
			s.stop()
			if err := <-ended; err != nil {
				t.Errorf("the stream broke off instead of ending: %v", err)
			}
			if out := s.out.String(); strings.Contains(out, "closing open connections") {
				t.Errorf("the server had to cut connections at its stop:\n%s", out)
			}
		})
	}
}
