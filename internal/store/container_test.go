package store_test

import (
	"reflect"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// testContainer is a container with every field set.
func testContainer() *run.Container {
	return &run.Container{
		Image: "golang:1.26", User: "1000:1000", Network: run.NetworkBridge, CPUs: 1.5, Memory: 512 << 20, Pull: run.PullNever,
		Services: []run.Service{
			{Name: "db", Image: "postgres:16", Env: map[string]string{"POSTGRES_PASSWORD": "pw"}, Command: []string{"postgres", "-c", "fsync=off"}},
			{Name: "redis", Image: "redis:7"},
		},
	}
}

// TestJobContainer: a job's container is stored with it (NULL for a job on the host) and read
// back by RunGet and by the claim, as RunCreate returned it; in one statement and in batches.
func TestJobContainer(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		jobs := twoStages()
		jobs[0].Container = testContainer()
		jobs[2].Container = &run.Container{Image: "alpine"}
		r := mustRun(t, s, p.ID, jobs)
		want := []*run.Container{testContainer(), nil, {Image: "alpine"}}
		for i, j := range r.Jobs {
			if !reflect.DeepEqual(j.Container, want[i]) {
				t.Errorf("RunCreate: job %s container = %+v, want %+v", j.Name, j.Container, want[i])
			}
		}
		if r.Jobs[0].Container == jobs[0].Container {
			t.Errorf("RunCreate returned the caller's container, not a copy")
		}
		got := mustGet(t, s, r.ID)
		for i, j := range got.Jobs {
			if !reflect.DeepEqual(j.Container, want[i]) {
				t.Errorf("RunGet: job %s container = %+v, want %+v", j.Name, j.Container, want[i])
			}
		}
		if n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM jobs WHERE run_id = ? AND container IS NULL", r.ID); err != nil || n != 1 {
			t.Errorf("jobs without a container stored as NULL: %d, %v; want 1", n, err)
		}
		c := mustClaim(t, s)
		if c.Job.Name != "compile" || !reflect.DeepEqual(c.Job.Container, testContainer()) {
			t.Errorf("claim: job %s container = %+v, want %+v", c.Job.Name, c.Job.Container, testContainer())
		}

		// A run too large for one statement on PostgreSQL: its jobs are inserted in batches.
		var many []run.Job
		for i := range 300 {
			j := job(0, "build", i, "j"+string(rune('a'+i%26))+string(rune('a'+i/26)), "s")
			if i%2 == 0 {
				j.Container = &run.Container{Image: "busybox", Memory: int64(i+10) << 20}
			}
			many = append(many, j)
		}
		big := mustRun(t, s, p.ID, many)
		for _, rr := range []run.Run{big, mustGet(t, s, big.ID)} {
			for i, j := range rr.Jobs {
				var w *run.Container
				if i%2 == 0 {
					w = &run.Container{Image: "busybox", Memory: int64(i+10) << 20}
				}
				if !reflect.DeepEqual(j.Container, w) {
					t.Fatalf("large run: job %d container = %+v, want %+v", i, j.Container, w)
				}
			}
		}
	})
}
