package store_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestClaimLabels: a job with runs-on is claimed only by a claimer whose labels hold each of
// its labels with the same value, a job without runs-on by any claimer; jobs a claimer may not
// take are passed over, not waited for. runs-on is stored as NULL when empty and read back by
// RunGet and the claim.
func TestClaimLabels(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		gpu := job(0, "build", 0, "gpu", "a")
		gpu.RunsOn = map[string]string{"gpu": "true"}
		plain := job(0, "build", 1, "plain", "a")
		zoned := job(0, "build", 2, "zoned", "a")
		zoned.RunsOn = map[string]string{"gpu": "true", "k8s.io/zone": "eu-1"}
		plain2 := job(0, "build", 3, "plain2", "a")
		empty := job(0, "build", 4, "empty", "a")
		empty.RunsOn = map[string]string{} // stored as none: any claimer
		r := mustRun(t, s, p.ID, []run.Job{gpu, plain, zoned, plain2, empty})
		if n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM jobs WHERE run_id = ? AND runs_on IS NULL", r.ID); err != nil || n != 3 {
			t.Errorf("jobs without runs-on stored as NULL: %d, %v; want 3", n, err)
		}
		if got := mustGet(t, s, r.ID).Jobs[2].RunsOn; !reflect.DeepEqual(got, zoned.RunsOn) {
			t.Errorf("RunGet: runs-on = %v, want %v", got, zoned.RunsOn)
		}
		if n, err := s.JobQueueDepth(ctx); err != nil || n != 5 {
			t.Errorf("JobQueueDepth = %d, %v; want 5 (every ready job, whoever may take it)", n, err)
		}

		claim := func(who string, max int, labels map[string]string) []string {
			t.Helper()
			cs, err := s.JobsClaim(ctx, store.JobsClaim{Max: max, Holder: store.Holder{Node: who, Instance: who + "-i"}, Labels: labels})
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				t.Fatalf("JobsClaim(%s): %v", who, err)
			}
			var names []string
			for _, c := range cs {
				names = append(names, c.Job.Name)
				if c.Job.Name == "zoned" && !reflect.DeepEqual(c.Job.RunsOn, zoned.RunsOn) {
					t.Errorf("claim: runs-on = %v, want %v", c.Job.RunsOn, zoned.RunsOn)
				}
			}
			return names
		}
		// A server without labels passes over the gpu job at the head of the queue.
		if got := claim("server", 1, nil); !reflect.DeepEqual(got, []string{"plain"}) {
			t.Errorf("server without labels claimed %v, want [plain]", got)
		}
		// An agent with gpu=false takes the jobs without runs-on only.
		if got := claim("cpu-agent", 3, map[string]string{"gpu": "false", "k8s.io/zone": "eu-1"}); !reflect.DeepEqual(got, []string{"plain2", "empty"}) {
			t.Errorf("gpu=false agent claimed %v, want [plain2 empty]", got)
		}
		if got := claim("cpu-agent", 3, map[string]string{"gpu": "false"}); got != nil {
			t.Errorf("gpu=false agent claimed %v, want nothing", got)
		}
		if got := claim("server", 3, nil); got != nil {
			t.Errorf("server without labels claimed %v, want nothing", got)
		}
		if got := claim("case", 3, map[string]string{"gpu": "TRUE", "GPU": "true"}); got != nil {
			t.Errorf("an agent with GPU=true and gpu=TRUE claimed %v, want nothing (labels are case-sensitive)", got)
		}
		// gpu=true takes the gpu job but not the one that also needs a zone.
		if got := claim("gpu-agent", 3, map[string]string{"gpu": "true", "os": "linux"}); !reflect.DeepEqual(got, []string{"gpu"}) {
			t.Errorf("gpu=true agent claimed %v, want [gpu]", got)
		}
		if got := claim("zoned-server", 3, map[string]string{"os": "linux", "gpu": "true", "k8s.io/zone": "eu-1"}); !reflect.DeepEqual(got, []string{"zoned"}) {
			t.Errorf("gpu=true k8s.io/zone=eu-1 server claimed %v, want [zoned]", got)
		}
	})
}

// TestNodeSlots: a server's executors and labels are stored with its node and listed.
func TestNodeSlots(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		n := server("a", "i1")
		n.Executors, n.Labels = 3, map[string]string{"gpu": "true"}
		if _, err := s.NodeRegister(t.Context(), n, ""); err != nil {
			t.Fatal(err)
		}
		if got := nodeByName(t, s, "a"); got.Executors != 3 || !reflect.DeepEqual(got.Labels, n.Labels) {
			t.Errorf("node: executors %d labels %v, want 3 %v", got.Executors, got.Labels, n.Labels)
		}
		n.Instance, n.Executors, n.Labels = "i2", 0, nil
		if _, err := s.NodeRegister(t.Context(), n, "i1"); err != nil {
			t.Fatal(err)
		}
		if got := nodeByName(t, s, "a"); got.Executors != 0 || len(got.Labels) != 0 {
			t.Errorf("node registered again: executors %d labels %v, want 0 and none", got.Executors, got.Labels)
		}
	})
}
