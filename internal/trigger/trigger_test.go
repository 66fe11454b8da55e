package trigger_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

const definition = `name: hello
variables:
  abc: "123"
  TARGET:
    default: staging
    options: [staging, production]
  API_KEY:
    secret: true
    default: "***"
stages:
  - name: build
    jobs:
      - name: compile
        timeout: 5m
        env: {GREETING: hi}
        steps:
          - name: one
            run: echo one
          - run: echo two
      - name: lint
        steps:
          - run: echo lint
  - name: deploy
    jobs:
      - name: ship
        steps:
          - run: echo "$TARGET"
`

func forEachDialect(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, storetest.Open(t, d))
		})
	}
}

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// setup stores the definition with the secret API_KEY = "s3cr3t-value".
func setup(t *testing.T, st *store.Store, box *secret.Box) store.Pipeline {
	t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPasswordCost("password1", 4)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UserCreate(ctx, "alice", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := trigger.SealSecrets(box, map[string]string{"API_KEY": "s3cr3t-value"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.PipelineCreate(ctx, "hello", definition, sealed, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStart(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		p := setup(t, st, box)
		var wakes atomic.Int32
		svc := &trigger.Service{Store: st, Box: box, Wake: func() { wakes.Add(1) }}

		overrides := map[string]json.RawMessage{"abc": json.RawMessage(`456`), "nope": json.RawMessage(`"x"`)}
		r, resolved, err := svc.Start(ctx, p, run.TriggerManual, "alice", overrides)
		if err != nil {
			t.Fatal(err)
		}
		if wakes.Load() != 1 {
			t.Errorf("Wake called %d times, want 1", wakes.Load())
		}
		if !reflect.DeepEqual(resolved.Ignored, []string{"nope"}) {
			t.Errorf("ignored = %v, want [nope]", resolved.Ignored)
		}
		got, err := st.RunGet(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Number != 1 || got.Status != run.Queued || got.Trigger != run.TriggerManual || got.TriggeredBy != "alice" || got.Revision != p.Revision {
			t.Errorf("run = number %d status %s trigger %s by %q revision %d", got.Number, got.Status, got.Trigger, got.TriggeredBy, got.Revision)
		}
		wantVars := map[string]string{"abc": "456", "TARGET": "staging"}
		if !reflect.DeepEqual(got.Variables, wantVars) {
			t.Errorf("variables = %v, want %v (no secret among them)", got.Variables, wantVars)
		}
		secrets, err := trigger.OpenSecrets(box, got.SecretVariables)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(secrets, map[string]string{"API_KEY": "s3cr3t-value"}) {
			t.Errorf("secret variables = %v", secrets)
		}
		if strings.Contains(string(got.SecretVariables), "s3cr3t") {
			t.Error("the run's secret variables are stored in clear")
		}

		type jobShape struct {
			Stage     int
			StageName string
			Name      string
			Timeout   time.Duration
			Scripts   []string
		}
		var shape []jobShape
		for _, j := range got.Jobs {
			js := jobShape{Stage: j.Stage, StageName: j.StageName, Name: j.Name, Timeout: j.Timeout}
			for _, s := range j.Steps {
				js.Scripts = append(js.Scripts, s.Script)
			}
			shape = append(shape, js)
		}
		want := []jobShape{
			{0, "build", "compile", 5 * time.Minute, []string{"echo one", "echo two"}},
			{0, "build", "lint", pipeline.DefaultJobTimeout, []string{"echo lint"}},
			{1, "deploy", "ship", pipeline.DefaultJobTimeout, []string{`echo "$TARGET"`}},
		}
		if !reflect.DeepEqual(shape, want) {
			t.Errorf("jobs = %+v\nwant %+v", shape, want)
		}
		if got.Jobs[0].Env["GREETING"] != "hi" {
			t.Errorf("job env = %v", got.Jobs[0].Env)
		}

		// A second run is number 2; a secret may be overridden and stays sealed.
		r2, _, err := svc.Start(ctx, p, run.TriggerWebhook, "alice", map[string]json.RawMessage{"API_KEY": json.RawMessage(`"other"`)})
		if err != nil {
			t.Fatal(err)
		}
		if r2.Number != 2 {
			t.Errorf("second run number = %d", r2.Number)
		}
		secrets, err = trigger.OpenSecrets(box, r2.SecretVariables)
		if err != nil || secrets["API_KEY"] != "other" {
			t.Errorf("overridden secret = %v, %v", secrets, err)
		}
		if _, ok := r2.Variables["API_KEY"]; ok {
			t.Error("a secret override reached the run's plain variables")
		}
	})
}

func TestStartBadVariables(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		p := setup(t, st, box)
		var wakes atomic.Int32
		svc := &trigger.Service{Store: st, Box: box, Wake: func() { wakes.Add(1) }}
		_, _, err := svc.Start(ctx, p, run.TriggerManual, "alice", map[string]json.RawMessage{
			"TARGET": json.RawMessage(`"moon"`), "abc": json.RawMessage(`{}`), "FLOWD_X": json.RawMessage(`"1"`),
		})
		var verr *pipeline.VariableError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v, want *pipeline.VariableError", err)
		}
		var keys []string
		for _, p := range verr.Problems {
			keys = append(keys, p.Key)
		}
		if !reflect.DeepEqual(keys, []string{"FLOWD_X", "TARGET", "abc"}) {
			t.Errorf("problem keys = %v", keys)
		}
		runs, err := st.RunList(ctx, p.ID, store.RunListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 0 || wakes.Load() != 0 {
			t.Errorf("a rejected start stored %d runs and woke the scheduler %d times", len(runs), wakes.Load())
		}
	})
}

func TestStartWrongKey(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t, "sqlite")
	p := setup(t, st, newBox(t))
	other, err := secret.New([]byte(strings.Repeat("x", 32)))
	if err != nil {
		t.Fatal(err)
	}
	svc := &trigger.Service{Store: st, Box: other}
	if _, _, err := svc.Start(context.Background(), p, run.TriggerManual, "alice", nil); err == nil || !strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("err = %v, want a wrong-key error", err)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	p, err := pipeline.Parse([]byte(definition))
	if err != nil {
		t.Fatal(err)
	}
	jobs := trigger.Plan(p)
	if len(jobs) != 3 {
		t.Fatalf("%d jobs, want 3", len(jobs))
	}
	j := jobs[0]
	if j.Stage != 0 || j.Index != 0 || j.StageName != "build" || j.Name != "compile" || j.Status != run.Queued || len(j.Steps) != 2 {
		t.Errorf("job 0 = %+v", j)
	}
	if s := j.Steps[1]; s.Index != 1 || s.Name != "echo two" || s.Script != "echo two" || s.Status != run.Queued {
		t.Errorf("step 1 = %+v", s)
	}
	if j := jobs[1]; j.Stage != 0 || j.Index != 1 || j.Name != "lint" {
		t.Errorf("job 1 = %+v", j)
	}
	if j := jobs[2]; j.Stage != 1 || j.Index != 0 || j.StageName != "deploy" {
		t.Errorf("job 2 = %+v", j)
	}
}
