package trigger_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook"
)

// containerDefinition has a pipeline image, a job taking it, a job with its own image,
// options and a service, and nothing that runs on the host.
const containerDefinition = `name: boxed
image: golang:1.26
stages:
  - name: build
    jobs:
      - name: inherit
        steps: [{run: go build}]
      - name: own
        image: alpine:3
        container: {user: "1000", network: bridge, cpus: 0.5, memory: 64Mi, pull: never}
        services: [postgres:16]
        steps: [{run: psql -h postgres}]
`

// TestContainersReachRuns: every way of starting a run (manual, webhook with and without an
// idempotency key) stores each job's container, the pipeline's image applied.
func TestContainersReachRuns(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, runs, hooks, token := hookedPipeline(t, st, "boxed", containerDefinition)
		want := []*run.Container{
			{Image: "golang:1.26"},
			{Image: "alpine:3", User: "1000", Network: run.NetworkBridge, CPUs: 0.5, Memory: 64 << 20, Pull: run.PullNever,
				Services: []run.Service{{Name: "postgres", Image: "postgres:16"}}},
		}
		var ids []int64
		r, _, err := runs.Start(ctx, p, run.TriggerManual, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		for _, key := range []string{"", "k1"} {
			out := hooks.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{}`), IdempotencyKey: key,
				Headers: http.Header{"Content-Type": {"application/json"}}})
			if out.Code != trigger.CodeStarted {
				t.Fatalf("webhook (key %q): %s %s", key, out.Code, out.Body)
			}
			ids = append(ids, out.RunID)
		}
		for _, id := range ids {
			got, err := st.RunGet(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for i, j := range got.Jobs {
				if !reflect.DeepEqual(j.Container, want[i]) {
					t.Errorf("run %d (%s) job %s: container = %+v, want %+v", got.Number, got.Trigger, j.Name, j.Container, want[i])
				}
			}
		}
	})
}

// hookedPipeline stores definition as the pipeline name of a user alice, with its webhook
// enabled: the pipeline, a trigger service and webhooks over st, and the webhook's token.
func hookedPipeline(t *testing.T, st *store.Store, name, definition string) (store.Pipeline, *trigger.Service, *trigger.Webhooks, string) {
	t.Helper()
	ctx := context.Background()
	box := newBox(t)
	hash, err := auth.HashPasswordCost("password1", 4)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UserCreate(ctx, "alice", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.PipelineCreate(ctx, name, definition, nil, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	runs := &trigger.Service{Store: st, Box: box}
	hooks := &trigger.Webhooks{Store: st, Runs: runs, Box: box, MaxBody: 1000, Limiter: webhook.NewLimiter(1000, 1000, 10)}
	token, tokenHash, err := trigger.NewWebhookToken()
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := box.Seal([]byte(token))
	if _, err := st.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID, TokenHash: tokenHash, TokenSealed: sealed}); err != nil {
		t.Fatal(err)
	}
	return p, runs, hooks, token
}
