package api_test

import (
	"net/http"
	"testing"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// TestPipelineDeleteEverything deletes a pipeline with runs, a delivery, a webhook trigger and
// members: each is gone, a running run's processes are stopped, and a new pipeline of the same
// name starts empty.
func TestPipelineDeleteEverything(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice, bob, mallory := e.user("alice", false), e.user("bob", false), e.user("mallory", false)
		e.createPipeline("hello", alice, map[*testUser]auth.Role{&bob: auth.Developer})
		runID := e.startRun("hello", bob.Token)
		tr := e.enable("hello", alice, nil)
		hook := e.hook(tr.token(), "application/json", `{"abc":"9"}`).answer(t)
		if hook.Run == nil || hook.Delivery == 0 {
			t.Fatalf("delivery = %+v, want a run", hook)
		}
		if _, err := e.st.JobsClaim(t.Context(), store.JobsClaim{Max: 1}); err != nil { // the first run's job is running
			t.Fatal(err)
		}

		if r := e.call("DELETE", "/api/v1/pipelines/hello", bob.Token, nil); r.Status != http.StatusForbidden {
			t.Errorf("developer delete = %s, want 403", r)
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello", mallory.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("non-member delete = %s, want 404", r)
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello", alice.Token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("admin delete = %s, want 204", r)
		}
		if got := e.canceler.canceled(); len(got) != 1 || got[0] != runID {
			t.Errorf("canceled after delete = %v, want the running run %d", got, runID)
		}
		for _, path := range []string{"/api/v1/pipelines/hello", "/api/v1/runs/" + itoa(runID), "/api/v1/runs/" + itoa(hook.Run.ID),
			"/api/v1/runs/" + itoa(runID) + "/log", "/api/v1/deliveries/" + itoa(hook.Delivery)} {
			if r := e.call("GET", path, alice.Token, nil); r.Status != http.StatusNotFound {
				t.Errorf("GET %s after delete = %s, want 404", path, r)
			}
		}
		if r := e.hook(tr.token(), "application/json", `{}`); r.Status != http.StatusNotFound {
			t.Errorf("the old webhook URL after delete = %s, want 404", r)
		}
		if r := e.call("DELETE", "/api/v1/pipelines/hello", alice.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("second delete = %s, want 404", r)
		}

		// The name is free again, and nothing of the old pipeline comes back with it.
		e.createPipeline("hello", alice, nil)
		var runs struct {
			Runs []any `json:"runs"`
		}
		r := e.call("GET", "/api/v1/pipelines/hello/runs", alice.Token, nil)
		r.json(t, &runs)
		if len(runs.Runs) != 0 {
			t.Errorf("runs of the new pipeline = %s", r)
		}
		var members struct {
			Members []struct {
				Username string `json:"username"`
			} `json:"members"`
		}
		r = e.call("GET", "/api/v1/pipelines/hello/members", alice.Token, nil)
		r.json(t, &members)
		if len(members.Members) != 1 || members.Members[0].Username != "alice" {
			t.Errorf("members of the new pipeline = %s, want alice alone", r)
		}
		if r := e.call("GET", "/api/v1/pipelines/hello", bob.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("the old developer sees the new pipeline: %s", r)
		}
		var trig triggerOut
		r = e.call("GET", "/api/v1/pipelines/hello/triggers/webhook", alice.Token, nil)
		r.json(t, &trig)
		if trig.Enabled || trig.URL != nil {
			t.Errorf("webhook of the new pipeline = %s, want never enabled", r)
		}
	})
}
