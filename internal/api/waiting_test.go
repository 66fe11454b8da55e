package api_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
)

// TestRunWaiting: GET /api/v1/runs/{id} says why each queued job waits when no live runner
// can take it now: no agent with its labels, or all of them busy or paused; a job that some
// runner can take says nothing.
func TestRunWaiting(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root := e.user("root", true)
		const src = "name: gpu\nstages:\n  - name: s\n    jobs:\n" +
			"      - {name: train, runs-on: {gpu: true, os: linux}, steps: [{run: nvidia-smi}]}\n" +
			"      - {name: plain, steps: [{run: make}]}\n"
		if r := e.yaml("POST", "/api/v1/pipelines", root.Token, src); r.Status != http.StatusCreated {
			t.Fatalf("create pipeline: %s", r)
		}
		runID := e.startRun("gpu", root.Token)
		waiting := func(want map[string]string) {
			t.Helper()
			r := e.call("GET", "/api/v1/runs/"+itoa(runID), root.Token, nil)
			var out struct {
				Stages []struct {
					Jobs []struct {
						Name    string            `json:"name"`
						RunsOn  map[string]string `json:"runs_on"`
						Waiting *string           `json:"waiting"`
					} `json:"jobs"`
				} `json:"stages"`
			}
			r.json(t, &out)
			got := map[string]string{}
			for _, j := range out.Stages[0].Jobs {
				if j.Waiting != nil {
					got[j.Name] = *j.Waiting
				}
				if j.Name == "train" && (j.RunsOn["gpu"] != "true" || j.RunsOn["os"] != "linux" || len(j.RunsOn) != 2) {
					t.Errorf("train: runs_on = %v", j.RunsOn)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("waiting = %q, want %q", got, want)
			}
		}
		// No server slot (the test server registers no node) and no agent.
		waiting(map[string]string{"train": "waiting for an agent with gpu=true,os=linux; 0 connected", "plain": "waiting for an agent; 0 connected"})

		tok := e.newAgentToken("build", nil)
		agent := func(name string, labels map[string]string) int64 {
			t.Helper()
			r := e.agentCall("POST", "register", tok, "", map[string]any{"name": name, "instance": strings.Repeat(name[:1], 32),
				"labels": labels, "capacity": 1, "version": "1.0.0"})
			if r.Status != http.StatusOK {
				t.Fatalf("register %s: %s", name, r)
			}
			var out registered
			r.json(t, &out)
			return out.Agent.ID
		}
		claim := func(id int64, want string) {
			t.Helper()
			r := e.agentCall("POST", "claim", tok, "", map[string]any{"agent_id": id, "free": 1, "wait_seconds": 0})
			if want == "" {
				if r.Status != http.StatusNoContent {
					t.Fatalf("claim of agent %d = %s, want 204", id, r)
				}
				return
			}
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"job":"`+want+`"`) {
				t.Fatalf("claim of agent %d = %s, want the job %s", id, r, want)
			}
		}
		// An agent without gpu=true: train still has nobody; plain has a free agent.
		cpu := agent("cpu", map[string]string{"gpu": "false", "os": "linux"})
		waiting(map[string]string{"train": "waiting for an agent with gpu=true,os=linux; 0 connected"})
		claim(cpu, "plain")
		claim(cpu, "")
		// A gpu agent connects: train is about to be claimed, so it waits for nothing.
		gpu := agent("gpu", map[string]string{"gpu": "true", "os": "linux", "cuda": "12"})
		waiting(map[string]string{})
		// Another run while both agents are busy: plain waits its turn (no reason), train for
		// a free gpu agent.
		claim(gpu, "train")
		runID = e.startRun("gpu", root.Token)
		waiting(map[string]string{"train": "waiting for a free agent with gpu=true,os=linux (1 connected, all busy)"})
		if err := e.st.AgentPause(t.Context(), "gpu", true); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AgentPause(t.Context(), "cpu", true); err != nil {
			t.Fatal(err)
		}
		waiting(map[string]string{"train": "waiting for a free agent with gpu=true,os=linux (1 connected, all busy or paused)",
			"plain": "waiting for a free agent (2 connected, all busy or paused)"})
		// A canceled run's jobs wait for nothing.
		if r := e.call("POST", "/api/v1/runs/"+itoa(runID)+"/cancel", root.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("cancel: %s", r)
		}
		waiting(map[string]string{})
	})
}

// TestRunWaitingAsAWhole: a queued run says why it has not started: its concurrency group is
// held by a running run (and older queued runs go first), no runner is connected, or every
// runner's slots are taken; in the run, the run list, the pipeline list and the answer that
// created it. A run that may start, or is running, says nothing.
func TestRunWaitingAsAWhole(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root := e.user("root", true)
		const deploy = "name: deploy\nconcurrency: {group: deploy-main, max_running: 1}\nstages:\n  - name: s\n    jobs:\n" +
			"      - {name: ship, steps: [{run: ./ship}]}\n"
		const other = "name: other\nstages:\n  - name: s\n    jobs:\n      - {name: build, steps: [{run: make}]}\n"
		for _, src := range []string{deploy, other} {
			if r := e.yaml("POST", "/api/v1/pipelines", root.Token, src); r.Status != http.StatusCreated {
				t.Fatalf("create pipeline: %s", r)
			}
		}
		type runOut struct {
			Number  int64   `json:"number"`
			Status  string  `json:"status"`
			Waiting *string `json:"waiting"`
		}
		check := func(what string, got runOut, want string) {
			t.Helper()
			switch {
			case want == "" && got.Waiting != nil:
				t.Errorf("%s: run #%d (%s) waiting = %q, want none", what, got.Number, got.Status, *got.Waiting)
			case want != "" && (got.Waiting == nil || *got.Waiting != want):
				t.Errorf("%s: run #%d (%s) waiting = %v, want %q", what, got.Number, got.Status, got.Waiting, want)
			}
		}
		get := func(id int64, want string) {
			t.Helper()
			var out runOut
			e.call("GET", "/api/v1/runs/"+itoa(id), root.Token, nil).json(t, &out)
			check("GET", out, want)
		}
		start := func(pipeline, want string) int64 {
			t.Helper()
			r := e.call("POST", "/api/v1/pipelines/"+pipeline+"/runs", root.Token, nil)
			var out struct {
				Run struct {
					runOut
					ID int64 `json:"id"`
				} `json:"run"`
			}
			r.json(t, &out)
			if r.Status != http.StatusCreated {
				t.Fatalf("start %s: %s", pipeline, r)
			}
			check("POST", out.Run.runOut, want)
			return out.Run.ID
		}

		// No runner at all: the run waits for one, in the words of its job's waiting.
		first := start("deploy", "waiting for an agent; 0 connected")
		get(first, "waiting for an agent; 0 connected")
		tok := e.newAgentToken("build", nil)
		r := e.agentCall("POST", "register", tok, "", map[string]any{"name": "b1", "instance": strings.Repeat("b", 32),
			"capacity": 1, "version": "1.0.0"})
		if r.Status != http.StatusOK {
			t.Fatalf("register: %s", r)
		}
		var reg registered
		r.json(t, &reg)
		get(first, "") // a free agent takes it at its next claim
		r = e.agentCall("POST", "claim", tok, "", map[string]any{"agent_id": reg.Agent.ID, "free": 1, "wait_seconds": 0})
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"run_id":`+itoa(first)+`,`) {
			t.Fatalf("claim: %s", r)
		}
		get(first, "") // running

		// Run #1 holds the group: #2 waits for it, #3 also for #2.
		const group = `waiting for concurrency group "deploy-main": `
		second := start("deploy", group+"run #1 holds it")
		get(second, group+"run #1 holds it")
		third := start("deploy", group+"run #1 holds it; run #2, queued before this one, starts first")
		var list struct {
			Runs []runOut `json:"runs"`
		}
		e.call("GET", "/api/v1/pipelines/deploy/runs", root.Token, nil).json(t, &list)
		if len(list.Runs) != 3 {
			t.Fatalf("runs: %+v", list.Runs)
		}
		check("list", list.Runs[0], group+"run #1 holds it; run #2, queued before this one, starts first")
		check("list", list.Runs[1], group+"run #1 holds it")
		check("list", list.Runs[2], "")
		var pipes struct {
			Pipelines []struct {
				Name    string `json:"name"`
				LastRun runOut `json:"last_run"`
			} `json:"pipelines"`
		}
		e.call("GET", "/api/v1/pipelines", root.Token, nil).json(t, &pipes)
		if len(pipes.Pipelines) != 2 || pipes.Pipelines[0].Name != "deploy" {
			t.Fatalf("pipelines: %+v", pipes)
		}
		check("pipelines", pipes.Pipelines[0].LastRun, group+"run #1 holds it; run #2, queued before this one, starts first")

		// A run of another pipeline waits for a slot: the one agent's is taken by run #1.
		start("other", "waiting for a free runner: every job slot is taken (1 job running on 1 runner)")

		// Once #2 is canceled, #3 waits for #1 alone.
		if r := e.call("POST", "/api/v1/runs/"+itoa(second)+"/cancel", root.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("cancel: %s", r)
		}
		get(second, "")
		get(third, group+"run #1 holds it")
	})
}
