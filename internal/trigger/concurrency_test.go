package trigger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// pushBody is a GitHub push of branch to sha in repository url.
func pushBody(url, branch, sha string) []byte {
	return fmt.Appendf(nil, `{"ref":"refs/heads/%s","before":"%s","after":"%s","repository":{"full_name":"acme/app","clone_url":%q},
		"pusher":{"name":"ann"},"head_commit":{"id":"%s","message":"change","author":{"name":"Ann"}},
		"commits":[{"id":"%s","message":"change","author":{"name":"Ann"}}]}`,
		branch, strings.Repeat("1", 40), sha, url, sha, sha)
}

// TestConcurrencySupersede: with concurrency {group: branch, cancel_previous: true} a push
// cancels the older queued run of its branch, stops the older running one through Cancel, and
// leaves other branches alone; the trace names the superseded runs.
func TestConcurrencySupersede(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const url = "https://git.example.com/acme/app.git"
		svc, _, token := hook(t, st, `name: cc
source: {url: "`+url+`"}
concurrency: {group: branch, cancel_previous: true, max_running: 1}
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`, "")
		var mu sync.Mutex
		var canceled []int64
		svc.Runs.Cancel = func(id int64) { mu.Lock(); canceled = append(canceled, id); mu.Unlock() }
		push := func(branch string, n int) reply {
			body := pushBody(url, branch, strings.Repeat(fmt.Sprint(n), 40))
			out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: hostRequest(githost.GitHub, "push", "", body, ""), Body: body})
			if out.Code != trigger.CodeStarted {
				t.Fatalf("push %d: %s %s", n, out.Code, out.Body)
			}
			return r
		}
		r1 := push("main", 1)
		if got, _ := st.RunGet(ctx, r1.Run.ID); got.ConcurrencyGroup != "main" || got.MaxRunning != 1 {
			t.Errorf("run 1 group %q max %d", got.ConcurrencyGroup, got.MaxRunning)
		}
		if s, _ := step(r1.Trace, "concurrency"); !strings.Contains(s.Detail, `group "main" (the run's branch)`) ||
			!strings.Contains(s.Detail, "no older run of the group") {
			t.Errorf("run 1 concurrency step %+v", s)
		}
		// Run 1 starts running: the scheduler claims its job.
		c, err := st.JobClaim(ctx)
		if err != nil || c.Run.ID != r1.Run.ID {
			t.Fatalf("claim: %+v %v", c.Run, err)
		}
		r2 := push("main", 2)   // queued: the group's one slot is taken
		other := push("dev", 3) // another group
		r4 := push("main", 4)
		if s, _ := step(r4.Trace, "concurrency"); !strings.Contains(s.Detail, "superseded runs #1, #2") {
			t.Errorf("run 4 concurrency step %+v", s)
		}
		got1, _ := st.RunGet(ctx, r1.Run.ID)
		got2, _ := st.RunGet(ctx, r2.Run.ID)
		got3, _ := st.RunGet(ctx, other.Run.ID)
		if !got1.CancelRequested || got1.Message != "superseded by run #2" {
			// run #2 superseded run #1 first; run #4 keeps that message.
			t.Errorf("run 1: status %s cancel requested %v message %q", got1.Status, got1.CancelRequested, got1.Message)
		}
		if got2.Status != run.Canceled || got2.Message != "superseded by run #4" {
			t.Errorf("run 2: %s %q", got2.Status, got2.Message)
		}
		if got3.Status != run.Queued || got3.ConcurrencyGroup != "dev" {
			t.Errorf("run 3 (dev): %s group %q", got3.Status, got3.ConcurrencyGroup)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(canceled, []int64{r1.Run.ID, r1.Run.ID}) {
			t.Errorf("Cancel called for %v, want run 1 (by run 2 and by run 4)", canceled)
		}
	})
}

// TestConcurrencyGroupExpression: a group that compiles as CEL is evaluated over the payload;
// one that does not is the group's name as written; a manual run's body is its variables.
func TestConcurrencyGroupExpression(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	ctx := context.Background()
	yaml := func(name, group string) string {
		return `name: ` + name + `
variables: {ENV: staging}
concurrency: {group: '` + group + `'}
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`
	}
	cases := []struct {
		name, group, body string
		want              string
		code              trigger.Code
	}{
		{"expr", `"deploy-" + body.ENV`, `{"ENV":"production"}`, "deploy-production", trigger.CodeStarted},
		{"header", `headers["x-env"]`, `{}`, "from-header", trigger.CodeStarted},
		{"literal", `deploy-db`, `{}`, "deploy-db", trigger.CodeStarted},
		{"error", `body.missing`, `{}`, "", trigger.CodeInvalidVariables},
	}
	for _, c := range cases {
		svc, p, token := hook(t, st, yaml(c.name, c.group), "")
		out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: http.Header{"X-Env": {"from-header"}}, Body: []byte(c.body)})
		if out.Code != c.code {
			t.Errorf("%s: %s %s", c.name, out.Code, out.Body)
			continue
		}
		if c.code != trigger.CodeStarted {
			if r.Error == nil || !strings.Contains(r.Error.Message, "concurrency.group") || !strings.Contains(r.Error.Message, "no such key") {
				t.Errorf("%s: %s", c.name, out.Body)
			}
			continue
		}
		got, _ := st.RunGet(ctx, r.Run.ID)
		if got.ConcurrencyGroup != c.want {
			t.Errorf("%s: group %q, want %q", c.name, got.ConcurrencyGroup, c.want)
		}
		if c.name == "expr" { // a manual run: body is its variables
			m, _, err := svc.Runs.Start(ctx, p, run.TriggerManual, "alice", map[string]json.RawMessage{"ENV": json.RawMessage(`"qa"`)})
			if err != nil || m.ConcurrencyGroup != "deploy-qa" {
				t.Errorf("manual run: group %q, %v", m.ConcurrencyGroup, err)
			}
		}
	}
}

// TestConcurrencyGroupHidesSecrets: a group computed from a secret variable's value is stored
// under a name that does not reveal it, and runs with the same value still share that group.
func TestConcurrencyGroupHidesSecrets(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	ctx := context.Background()
	svc, _, token := hook(t, st, `name: secretgroup
variables:
  DB_PASSWORD: {secret: true, default: "hunter2-db"}
concurrency: {group: '"db-" + body.DB_PASSWORD'}
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`, "")
	var groups []string
	for range 2 {
		out, r := deliver(t, svc, trigger.Incoming{Token: token, Body: []byte(`{"DB_PASSWORD":"hunter2-db"}`)})
		if out.Code != trigger.CodeStarted {
			t.Fatalf("%s %s", out.Code, out.Body)
		}
		if strings.Contains(string(out.Body), "hunter2") {
			t.Fatalf("the answer shows the secret: %s", out.Body)
		}
		got, err := st.RunGet(ctx, r.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got.ConcurrencyGroup, "hunter2") || got.ConcurrencyGroup == "" {
			t.Fatalf("group %q", got.ConcurrencyGroup)
		}
		groups = append(groups, got.ConcurrencyGroup)
	}
	if groups[0] != groups[1] {
		t.Fatalf("the same secret value gave two groups: %v", groups)
	}
}
