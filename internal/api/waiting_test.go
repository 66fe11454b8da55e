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
