package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/client"
)

// nodes lists the nodes through s's API, by name.
func (s *server) nodes(token string) map[string]client.Node {
	s.t.Helper()
	var out struct{ Nodes []client.Node }
	if code := s.api(token, "GET", "/api/v1/nodes", nil, &out); code != 200 {
		s.t.Fatalf("GET /api/v1/nodes from %s: %d", s.URL, code)
	}
	m := map[string]client.Node{}
	for _, n := range out.Nodes {
		m[n.Name] = n
	}
	return m
}

// TestNodes: two servers on one PostgreSQL database register under their --node-name, and
// `flowd nodes` and GET /api/v1/nodes on either list both, live, with their heartbeats. A third
// server taking a name that a live server holds (from another data folder) is refused and
// changes nothing; a server killed with kill -9 restarts on its data folder at once, although
// its heartbeat is fresh, as a new instance of its name.
func TestNodes(t *testing.T) {
	t.Parallel()
	// node-b heartbeats every second (a 3 s lease), so the test can watch a heartbeat land;
	// node-a keeps the default 60 s lease, so its name stays held while the test runs. Each is
	// judged live by its own lease, whichever server answers.
	c := startCluster(t, nodeSpec{Name: "node-a"}, nodeSpec{Name: "node-b", Args: []string{"--lease-ttl", "3s"}})
	a, b := c.Nodes[0], c.Nodes[1]

	stdout, stderr, code := a.cli(c.Admin, "nodes")
	if code != 0 {
		t.Fatalf("flowd nodes: exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME KIND VERSION STARTED HEARTBEAT JOBS LIVE LABELS CAPACITY PAUSED RUNNING" {
		t.Fatalf("flowd nodes printed:\n%s\nwant a header and two servers", stdout)
	}
	for i, name := range []string{"node-a", "node-b"} {
		f := strings.Fields(lines[i+1])
		heard := strings.Contains(lines[i+1], " ago ") || strings.Contains(lines[i+1], " just now ")
		// ... JOBS LIVE LABELS CAPACITY PAUSED RUNNING: a server without labels, its --executors
		// (4 by default) as its capacity, never paused, running nothing.
		if f[0] != name || f[1] != "server" || strings.Join(f[len(f)-6:], " ") != "0 yes - 4 - -" || !heard {
			t.Errorf("flowd nodes row %d = %q; want %s, a live server of 4 executors holding no jobs, its heartbeat some seconds ago", i+1, lines[i+1], name)
		}
	}

	// Either server answers for both; the heartbeat of node-b moves on.
	before := b.nodes(c.Admin)
	na, nb := before["node-a"], before["node-b"]
	if len(before) != 2 || !na.Live || !nb.Live || na.Kind != "server" || na.Version == "" || na.Instance == nb.Instance ||
		na.LeaseTTL != 60 || nb.LeaseTTL != 3 ||
		na.Instance == "" || na.StartedAt.IsZero() || na.HeartbeatAge < 0 || na.HeartbeatAge > 60 {
		t.Fatalf("GET /api/v1/nodes on node-b = %+v; want node-a and node-b, live servers with instances of their own", before)
	}
	waitWithin(t, "a heartbeat of node-b", 30*time.Second, func() bool {
		return a.nodes(c.Admin)["node-b"].HeartbeatAt.After(nb.HeartbeatAt)
	})
	// The lease counters are on /metrics from the start, at 0 or more.
	code, body := metricsStatus(t, a.URL+"/metrics", c.Admin)
	for _, name := range []string{"flowd_leases_renewed_total", "flowd_leases_expired_total", "flowd_rescues_total", "flowd_attempts_lost_total"} {
		if code != 200 || !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("GET /metrics = %d without %s", code, name)
		}
	}
	vera := a.user(c.Admin, "vera")
	if _, stderr, code := a.cli(vera, "nodes"); code != 1 || !strings.Contains(stderr, "only global administrators may list the nodes") {
		t.Errorf("flowd nodes as a user: exit %d, %q; want 1 and a refusal", code, stderr)
	}

	// A server from another data folder under node-a's name is refused while node-a lives.
	other := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowdBin, "serve", "--addr", "127.0.0.1:0", "--data", other,
		"--database", c.DSN, "--step-user", stepUIDs(other), "--node-name", "node-a")
	cmd.Env = append(baseEnv(t), "FLOWD_SECRET_KEY="+c.key)
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("a second server named node-a: %v (want exit status 1)\n%s", err, out)
	}
	for _, want := range []string{"another live server uses the node name", "node-a", "give each server its own --node-name"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "listening on") {
		t.Errorf("the refused server listened:\n%s", out)
	}
	if got := a.nodes(c.Admin)["node-a"]; got.Instance != na.Instance || !got.Live {
		t.Errorf("after the refusal node-a is %+v; want the live instance %s still", got, na.Instance)
	}

	// kill -9, then a restart on the same data folder: node-a's heartbeat is fresh (60 s
	// lease), yet the restart is its successor and starts at once, as a new instance.
	a.crash()
	c.restart(a)
	after := b.nodes(c.Admin)
	if got := after["node-a"]; got.Instance == na.Instance || !got.Live || !got.StartedAt.After(na.StartedAt) {
		t.Errorf("after kill -9 and a restart node-a is %+v; want a new live instance (was %s)", got, na.Instance)
	}
	if got := after["node-b"]; got.Instance != nb.Instance || !got.Live {
		t.Errorf("after node-a's restart node-b is %+v; want its instance %s, live", got, nb.Instance)
	}
}

// TestUINodes: the admin's Nodes page lists the server under its --node-name, live, from the
// API; a user who is not a global admin has no link to it and is refused the page.
func TestUINodes(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn, "--node-name", "ui-node")
	requireUI(t, s)
	admin := s.token("admin", adminPassword)
	s.user(admin, "vera")

	b := newBrowser(t, s.URL)
	b.signIn("admin", adminPassword)
	b.click(`nav a[href="/admin/nodes"]`)
	b.waitJS("the node list", `document.querySelector('#node-list tr[data-node="ui-node"]') !== null`)
	row := b.str(`document.querySelector('#node-list tr[data-node="ui-node"]').innerText`)
	// The heartbeat reads "just now" within seconds of it, "…s ago" after.
	if !containsAll(row, "ui-node", "server", "live") || !strings.Contains(row, "ago") && !strings.Contains(row, "just now") || strings.Contains(row, "gone") {
		t.Errorf("the node's row reads %q; want ui-node, a server, when its last heartbeat was, live", row)
	}
	if got := b.str(`document.querySelector('#node-list tr[data-node="ui-node"] td:nth-child(6)').innerText`); got != "0" {
		t.Errorf("jobs held = %q, want 0", got)
	}
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		t.Logf("screenshot: %s", b.screenshot(dir, "nodes-laptop", 1280, 800))
	}
	b.signOut()

	b.signIn("vera", "vera-password")
	if b.truthy(`document.querySelector('a[href="/admin/nodes"]')`) {
		t.Error("a user who is not a global admin has a link to the nodes page")
	}
	b.open("/admin/nodes")
	if text := b.str(`document.body.innerText`); !strings.Contains(text, "Only global administrators see the nodes") || b.truthy(`document.querySelector("#node-list")`) {
		t.Errorf("a user's /admin/nodes shows %q", text)
	}
}
