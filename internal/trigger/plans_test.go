package trigger_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// oneJob is a pipeline of one job whose one step runs script, with a secret variable TOKEN.
func oneJob(script string) string {
	return fmt.Sprintf(`name: cached
variables:
  TOKEN:
    secret: true
    default: none
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: %q
`, script)
}

func script(t *testing.T, b *trigger.Built) string {
	t.Helper()
	if len(b.Create.Jobs) != 1 || len(b.Create.Jobs[0].Steps) != 1 {
		t.Fatalf("jobs = %+v, want one job of one step", b.Create.Jobs)
	}
	return b.Create.Jobs[0].Steps[0].Script
}

// TestBuildPlanCache: Build caches a revision's plan, but a new revision, another source under
// the same id and revision, or new secrets are never answered from the cache, and changing
// what Build returned does not change the next build.
func TestBuildPlanCache(t *testing.T) {
	t.Parallel()
	box := newBox(t)
	seal := func(v string) []byte {
		t.Helper()
		b, err := trigger.SealSecrets(box, map[string]string{"TOKEN": v})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	svc := &trigger.Service{Box: box}
	build := func(p store.Pipeline) *trigger.Built {
		t.Helper()
		b, err := svc.Build(p, run.TriggerManual, "alice", map[string]json.RawMessage{})
		if err != nil {
			t.Fatalf("Build(revision %d): %v", p.Revision, err)
		}
		return b
	}
	p := store.Pipeline{ID: 7, Name: "cached", Revision: 1, Source: oneJob("echo one"), Secrets: seal("first")}

	b := build(p)
	if got := script(t, b); got != "echo one" {
		t.Fatalf("revision 1 script = %q", got)
	}
	b.Create.Jobs[0].Steps[0].Script = "changed by a caller"
	b.Create.Jobs[0].Name = "renamed"
	delete(b.Secret, "TOKEN")
	b = build(p)
	if got := script(t, b); got != "echo one" || b.Create.Jobs[0].Name != "j" || !b.Secret["TOKEN"] {
		t.Errorf("second build of revision 1 = %q job %q secret %v: a caller's change leaked into the cache", got, b.Create.Jobs[0].Name, b.Secret)
	}
	if got := b.Resolved.Values["TOKEN"]; got != "first" {
		t.Errorf("TOKEN = %q, want first", got)
	}

	p2 := p
	p2.Revision, p2.Source = 2, oneJob("echo two")
	if got := script(t, build(p2)); got != "echo two" {
		t.Errorf("revision 2 script = %q, want echo two (served revision 1 from the cache?)", got)
	}
	// The same id and revision with another source (another store, a recreated pipeline).
	p3 := p
	p3.Source = oneJob("echo three")
	if got := script(t, build(p3)); got != "echo three" {
		t.Errorf("new source under revision 1: script = %q, want echo three", got)
	}
	// New secrets without a new revision.
	p4 := p
	p4.Secrets = seal("second")
	if got := build(p4).Resolved.Values["TOKEN"]; got != "second" {
		t.Errorf("TOKEN after the secret changed = %q, want second", got)
	}
	// Many pipelines: the cache stays bounded and every build is still right.
	for i := range 200 {
		q := store.Pipeline{ID: int64(100 + i), Name: "cached", Revision: 1, Source: oneJob(fmt.Sprintf("echo %d", i))}
		if got := script(t, build(q)); got != fmt.Sprintf("echo %d", i) {
			t.Fatalf("pipeline %d script = %q", q.ID, got)
		}
	}
	if got := script(t, build(p)); got != "echo one" {
		t.Errorf("revision 1 after eviction = %q", got)
	}
}
