package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store/storetest"
)

// cluster is several `flowd serve` processes on one PostgreSQL database, as a team runs them
// behind a load balancer: each with a data folder (and so a step uid range) and a node name of
// its own, all with one secret key (webhook tokens and secret variables are sealed with it).
type cluster struct {
	t     *testing.T
	DSN   string
	key   string
	Nodes []*node
	Admin string // an API token of admin, good on every server
}

// node is one server of a cluster; a restart keeps its data folder, node name and options.
type node struct {
	*server
	Name string
	env  []string
	args []string
}

// nodeSpec is how to start one server of a cluster: its node name, environment and flags.
type nodeSpec struct {
	Name string
	Env  []string
	Args []string
}

// startCluster starts one server per spec on a new PostgreSQL database, one after the other:
// the first migrates the database and creates admin, the others find both done.
func startCluster(t *testing.T, specs ...nodeSpec) *cluster {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := &cluster{t: t, DSN: storetest.DSN(t, "postgres"), key: hex.EncodeToString(key)}
	for _, sp := range specs {
		n := &node{Name: sp.Name, env: append([]string{"FLOWD_SECRET_KEY=" + c.key}, sp.Env...),
			args: append([]string{"--node-name", sp.Name}, sp.Args...)}
		n.server = startServerEnv(t, t.TempDir(), c.DSN, n.env, n.args...)
		c.Nodes = append(c.Nodes, n)
	}
	c.Admin = c.Nodes[0].token("admin", adminPassword)
	return c
}

// shortLease is the lease of TestClusterLeases' servers: runners renew every second, the
// leader sweeps every second and holds its own lease for 3 s.
const shortLease = "3s"

// runnerOf returns the server that holds the current attempt of run id's running job, and
// another server of the cluster.
func (c *cluster) runnerOf(id int64) (runner, other *node) {
	c.t.Helper()
	r := c.Nodes[0].runAttempts(c.Admin, id)
	att, ok := r.job().current()
	if !ok || (att.State != "running" && att.State != "canceling") {
		c.t.Fatalf("run %d's job has no running attempt: %s", id, r)
	}
	runner = c.node(att.Node)
	return runner, c.other(runner)
}

// forTest returns c acting for t (a subtest), so its failures end the right test.
func (c *cluster) forTest(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	cc.Nodes = nil
	for _, n := range c.Nodes {
		nn := *n
		nn.server = n.server.forTest(t)
		cc.Nodes = append(cc.Nodes, &nn)
	}
	return &cc
}

// restart starts n again on its data folder after a crash or a stop.
func (c *cluster) restart(n *node) {
	c.t.Helper()
	n.server = startServerEnv(c.t, n.Data, c.DSN, n.env, n.args...)
}

// node returns the server whose node name is name.
func (c *cluster) node(name string) *node {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no server is node %q", name)
	return nil
}

// other returns a server of the cluster that is not n.
func (c *cluster) other(n *node) *node {
	for _, o := range c.Nodes {
		if o != n {
			return o
		}
	}
	c.t.Fatal("the cluster has one server")
	return nil
}

// pause stops n with SIGSTOP, as a machine that hangs or a long GC pause would; resume
// continues it. A paused server is continued at cleanup, so it can be killed and reaped.
func (n *node) pause() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = n.cmd.Process.Signal(syscall.SIGCONT) })
}

func (n *node) resume() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		n.t.Fatal(err)
	}
}

// attemptView is one claim of a job as the API shows it.
type attemptView struct {
	Number      int        `json:"number"`
	Runner      string     `json:"runner"`
	Node        string     `json:"node"`
	State       string     `json:"state"`
	Reason      string     `json:"reason"`
	StartedAt   *time.Time `json:"started_at"`
	HeartbeatAt *time.Time `json:"heartbeat_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}

// jobAttempts is a job with its attempts.
type jobAttempts struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Message  string        `json:"message"`
	Attempt  int           `json:"attempt"`
	Attempts []attemptView `json:"attempts"`
}

// clusterRunView is the part of a run the cluster tests read.
type clusterRunView struct {
	ID        int64     `json:"id"`
	Status    string    `json:"status"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"created_at"`
	Stages    []struct {
		Jobs []jobAttempts `json:"jobs"`
	} `json:"stages"`
}

// job returns the run's only job (the cluster tests' pipelines have one).
func (r clusterRunView) job() jobAttempts {
	if len(r.Stages) == 0 || len(r.Stages[0].Jobs) == 0 {
		return jobAttempts{}
	}
	return r.Stages[0].Jobs[0]
}

// current is the job's current attempt, if it has one.
func (j jobAttempts) current() (attemptView, bool) {
	for _, a := range j.Attempts {
		if a.Number == j.Attempt {
			return a, true
		}
	}
	return attemptView{}, false
}

func (r clusterRunView) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// runAttempts reads run id from s with its jobs' attempts.
func (s *server) runAttempts(token string, id int64) clusterRunView {
	s.t.Helper()
	var r clusterRunView
	if code := s.api(token, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &r); code != 200 {
		s.t.Fatalf("GET run %d from %s: %d", id, s.URL, code)
	}
	return r
}

// startRun starts a run of pipeline on s through the API; it is safe in any goroutine.
func startRun(base, token, pipeline string) (int64, error) {
	req, _ := http.NewRequest("POST", base+"/api/v1/pipelines/"+pipeline+"/runs", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return postRun(req)
}

// deliver posts an empty JSON event to a webhook URL; it is safe in any goroutine.
func deliver(url string) (int64, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	return postRun(req)
}

func postRun(req *http.Request) (int64, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Run *struct {
			ID int64 `json:"id"`
		} `json:"run"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Run == nil || out.Run.ID == 0 ||
		(resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted) {
		return 0, fmt.Errorf("POST %s: %d %s", req.URL, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return out.Run.ID, nil
}

// createPipeline creates a pipeline from yaml on s.
func (s *server) createPipeline(token, yaml string) {
	s.t.Helper()
	var out struct {
		Error *struct{ Message string } `json:"error"`
	}
	if code := s.api(token, "POST", "/api/v1/pipelines", yaml, &out); code != 201 {
		s.t.Fatalf("create pipeline: %d %+v\n%s", code, out.Error, yaml)
	}
}

// waitWithin polls cond until it holds or limit passes, and returns how long it took.
func waitWithin(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// sharedDir is a folder every step user of every server may write: steps run as users of
// their server's own uid range, so the tests' marker files live where all of them can write.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "flowd-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// terminal reports whether a run or job status is final.
func terminal(status string) bool {
	switch status {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}
