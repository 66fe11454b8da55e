package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// labeledJobs has a job for a gpu=true runner and one for any runner, in one stage.
const labeledJobs = `name: train
stages:
  - name: s
    jobs:
      - name: train
        runs-on: {gpu: "true"}
        steps: [{run: echo trained}]
      - name: prep
        steps: [{run: echo prepped}]
`

// labeledJob is a job as the labels test reads it from the run API.
type labeledJob struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Waiting  string            `json:"waiting"`
	RunsOn   map[string]string `json:"runs_on"`
	Attempts []attemptView     `json:"attempts"`
}

// labeledJobs reads run id's jobs by name.
func (s *server) labeledJobs(token string, id int64) map[string]labeledJob {
	s.t.Helper()
	var r struct {
		Stages []struct {
			Jobs []labeledJob `json:"jobs"`
		} `json:"stages"`
	}
	if code := s.api(token, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &r); code != 200 {
		s.t.Fatalf("GET run %d: %d", id, code)
	}
	out := map[string]labeledJob{}
	for _, st := range r.Stages {
		for _, j := range st.Jobs {
			out[j.Name] = j
		}
	}
	return out
}

// TestLabels (issue 13, "Labels"): a job for gpu=true waits, saying why in the run API and
// flowd show, while only a server without labels and an agent with gpu=false are connected
// (the job for any runner runs meanwhile), and runs on the gpu=true agent as soon as it
// connects.
func TestLabels(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			testLabels(t, dialect)
		})
	}
}

func testLabels(t *testing.T, dialect string) {
	data, dsn := newDatabase(t, dialect)
	srv := startServer(t, data, dsn, "--executors", "1")
	admin := srv.token("admin", adminPassword)
	token := srv.agentToken(admin, "pool")
	startAgent(t, srv, token, "cpu-1", "--labels", "gpu=false,os=linux")
	srv.createPipeline(admin, labeledJobs)
	id := srv.startRun(admin, "train")

	const reason = "waiting for an agent with gpu=true; 0 connected"
	waitFor(t, "the job for any runner to end and the gpu job to say why it waits", func() bool {
		jobs := srv.labeledJobs(admin, id)
		return jobs["prep"].Status == "success" && jobs["train"].Waiting == reason
	})
	// Claims go on (the server's scheduler polls every second, the agent long-polls): the
	// gpu job stays queued with its reason.
	time.Sleep(1500 * time.Millisecond)
	train := srv.labeledJobs(admin, id)["train"]
	if train.Status != "queued" || train.Waiting != reason || train.RunsOn["gpu"] != "true" {
		t.Fatalf("the gpu job while no gpu runner is connected: %+v", train)
	}
	out, errOut, code := srv.cli(admin, "show", fmt.Sprint(id))
	if code != 0 || !strings.Contains(out, "job train on gpu=true") || !strings.Contains(out, reason) {
		t.Errorf("flowd show: exit %d, want the job's labels and %q:\n%s%s", code, reason, out, errOut)
	}

	connected := time.Now()
	startAgent(t, srv, token, "gpu-1", "--labels", "gpu=true,os=linux")
	r, log := srv.endedRun(admin, id)
	t.Logf("the gpu job ended %v after its agent started", time.Since(connected).Round(10*time.Millisecond))
	if r.Status != "success" || !strings.Contains(log, "trained") {
		t.Fatalf("run %s %q\n%s", r.Status, r.Message, log)
	}
	train = srv.labeledJobs(admin, id)["train"]
	if len(train.Attempts) != 1 || train.Attempts[0].Node != "gpu-1" || train.Waiting != "" {
		t.Errorf("the gpu job: %+v, want one attempt on gpu-1 and no reason", train)
	}
}

// TestServerLabels: a server started with --labels runs the jobs whose runs-on its labels
// match on its own slots; a job asking for another value waits with the reason, counting the
// server as no match.
func TestServerLabels(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--executors", "1", "--labels", "gpu=true,os=linux")
	admin := srv.token("admin", adminPassword)
	srv.createPipeline(admin, `name: mixed
stages:
  - name: s
    jobs:
      - name: train
        runs-on: {gpu: "true"}
        steps: [{run: echo trained}]
      - name: cpu
        runs-on: {gpu: "false"}
        steps: [{run: echo never}]
`)
	id := srv.startRun(admin, "mixed")
	const reason = "waiting for an agent with gpu=false; 0 connected"
	waitFor(t, "the gpu job to run on the server and the other to say why it waits", func() bool {
		jobs := srv.labeledJobs(admin, id)
		return jobs["train"].Status == "success" && jobs["cpu"].Status == "queued" && jobs["cpu"].Waiting == reason
	})
	var nodes struct {
		Nodes []struct {
			Name   string `json:"name"`
			Kind   string `json:"kind"`
			Server *struct {
				Executors int               `json:"executors"`
				Labels    map[string]string `json:"labels"`
			} `json:"server"`
		} `json:"nodes"`
	}
	if code := srv.api(admin, "GET", "/api/v1/nodes", nil, &nodes); code != 200 || len(nodes.Nodes) != 1 || nodes.Nodes[0].Kind != "server" {
		t.Fatalf("GET /api/v1/nodes: %d %+v, want the one server", code, nodes)
	}
	if sv := nodes.Nodes[0].Server; sv == nil || sv.Executors != 1 || len(sv.Labels) != 2 || sv.Labels["gpu"] != "true" || sv.Labels["os"] != "linux" {
		t.Errorf("the server's slots in GET /api/v1/nodes: %+v, want 1 executor with gpu=true,os=linux", sv)
	}
	if out, _, code := srv.cli(admin, "nodes"); code != 0 || !strings.Contains(out, "gpu=true,os=linux") {
		t.Errorf("flowd nodes: exit %d, want the server's labels:\n%s", code, out)
	}
	if a := srv.labeledJobs(admin, id)["train"].Attempts; len(a) != 1 || a[0].Node != nodes.Nodes[0].Name {
		t.Errorf("the gpu job's attempts: %+v, want one on the server %s", a, nodes.Nodes[0].Name)
	}
}
