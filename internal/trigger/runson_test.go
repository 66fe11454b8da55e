package trigger_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// runsOnDefinition has a pipeline runs-on, a job taking it and a job adding to it.
const runsOnDefinition = `name: labeled
runs-on: {os: linux}
stages:
  - name: build
    jobs:
      - name: inherit
        steps: [{run: make}]
      - name: gpu
        runs-on: {gpu: true}
        steps: [{run: nvidia-smi}]
`

// TestRunsOnReachRuns: a manual run and a webhook run store each job's runs-on, the
// pipeline's applied, and RunGet reads them back; a job without labels stores none (nil).
func TestRunsOnReachRuns(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, runs, hooks, token := hookedPipeline(t, st, "labeled", runsOnDefinition)
		u, err := st.UserGet(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		plain, err := st.PipelineCreate(ctx, "plain", "name: plain\nstages: [{name: s, jobs: [{name: j, steps: [{run: a}]}]}]\n", nil, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []map[string]string{{"os": "linux"}, {"os": "linux", "gpu": "true"}}
		r, _, err := runs.Start(ctx, p, run.TriggerManual, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, j := range r.Jobs {
			if !reflect.DeepEqual(j.RunsOn, want[i]) {
				t.Errorf("created job %s: runs-on = %v, want %v", j.Name, j.RunsOn, want[i])
			}
		}
		ids := []int64{r.ID}
		out := hooks.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{}`), Headers: http.Header{"Content-Type": {"application/json"}}})
		if out.Code != trigger.CodeStarted {
			t.Fatalf("webhook: %s %s", out.Code, out.Body)
		}
		ids = append(ids, out.RunID)
		for _, id := range ids {
			got, err := st.RunGet(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for i, j := range got.Jobs {
				if !reflect.DeepEqual(j.RunsOn, want[i]) {
					t.Errorf("run %d (%s) job %s: runs-on = %v, want %v", got.Number, got.Trigger, j.Name, j.RunsOn, want[i])
				}
			}
		}
		r, _, err = runs.Start(ctx, plain, run.TriggerManual, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.RunGet(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Jobs[0].RunsOn != nil || r.Jobs[0].RunsOn != nil {
			t.Errorf("a job without runs-on: runs-on = %v (read) %v (created), want nil", got.Jobs[0].RunsOn, r.Jobs[0].RunsOn)
		}
	})
}

// TestPlanJobFields: Plan knows every field of pipeline.Job (a field added there and not
// copied into run.Job by Plan would be lost between the definition and the runner).
func TestPlanJobFields(t *testing.T) {
	t.Parallel()
	known := []string{"Name", "Timeout", "CancelGrace", "Env", "RetryRunnerLost", "Container", "RunsOn", "Steps", "Pos"}
	typ := reflect.TypeFor[pipeline.Job]()
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; !slices.Contains(known, name) {
			t.Errorf("pipeline.Job.%s is new: copy it into run.Job in trigger.Plan (and store it), then add it here", name)
		}
	}
}
