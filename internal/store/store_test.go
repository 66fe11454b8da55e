package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// forEachStore runs fn against a fresh SQLite store and a fresh PostgreSQL store, as parallel
// subtests "sqlite" and "postgres": the one suite both databases must pass.
func forEachStore(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			s := storetest.Open(t, dialect)
			if got := s.Dialect(); got != dialect {
				t.Fatalf("Dialect() = %q, want %q", got, dialect)
			}
			fn(t, s)
		})
	}
}

func mustUser(t *testing.T, s *store.Store, name string) store.User {
	t.Helper()
	u, err := s.UserCreate(t.Context(), name, "hash-"+name, false)
	if err != nil {
		t.Fatalf("UserCreate(%q): %v", name, err)
	}
	return u
}

func mustPipeline(t *testing.T, s *store.Store, name string, creator int64) store.Pipeline {
	t.Helper()
	p, err := s.PipelineCreate(t.Context(), name, "name: "+name+"\n", nil, creator)
	if err != nil {
		t.Fatalf("PipelineCreate(%q): %v", name, err)
	}
	return p
}

func job(stage int, stageName string, idx int, name string, steps ...string) run.Job {
	j := run.Job{Stage: stage, StageName: stageName, Index: idx, Name: name, Env: map[string]string{"J": name}}
	for i, st := range steps {
		j.Steps = append(j.Steps, run.Step{Index: i, Name: st, Script: "echo " + st})
	}
	return j
}

// twoStages is build/compile, then test/unit and test/lint in parallel.
func twoStages() []run.Job {
	return []run.Job{
		job(0, "build", 0, "compile", "fetch", "make"),
		job(1, "test", 0, "unit", "go test"),
		job(1, "test", 1, "lint", "vet"),
	}
}

func mustRun(t *testing.T, s *store.Store, pipelineID int64, jobs []run.Job) run.Run {
	t.Helper()
	r, err := s.RunCreate(t.Context(), store.RunCreate{
		PipelineID: pipelineID, Trigger: run.TriggerManual, TriggeredBy: "alice",
		Variables: map[string]string{"abc": "123"}, SecretVariables: []byte{1, 2, 3}, Jobs: jobs,
	})
	if err != nil {
		t.Fatalf("RunCreate: %v", err)
	}
	return r
}

// fixture is a user, a pipeline and nothing else.
func fixture(t *testing.T, s *store.Store) (store.User, store.Pipeline) {
	u := mustUser(t, s, "alice")
	return u, mustPipeline(t, s, "hello", u.ID)
}

func mustClaim(t *testing.T, s *store.Store) store.Claim {
	t.Helper()
	c, err := s.JobClaim(t.Context())
	if err != nil {
		t.Fatalf("JobClaim: %v", err)
	}
	return c
}

func wantNoClaim(t *testing.T, s *store.Store) {
	t.Helper()
	c, err := s.JobClaim(t.Context())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("JobClaim = job %d %q, %v; want ErrNotFound", c.Job.ID, c.Job.Name, err)
	}
}

func mustFinish(t *testing.T, s *store.Store, jobID int64, st run.Status, msg string) run.Run {
	t.Helper()
	attempt, err := s.JobAttempt(t.Context(), jobID)
	if err != nil {
		t.Fatalf("JobAttempt(%d): %v", jobID, err)
	}
	r, err := s.JobFinish(t.Context(), attempt, jobID, st, msg)
	if err != nil {
		t.Fatalf("JobFinish(%d, %s): %v", jobID, st, err)
	}
	return r
}

func mustGet(t *testing.T, s *store.Store, id int64) run.Run {
	t.Helper()
	r, err := s.RunGet(t.Context(), id)
	if err != nil {
		t.Fatalf("RunGet(%d): %v", id, err)
	}
	return r
}

// statuses is "name=status" of each job, in order, for comparisons.
func statuses(r run.Run) map[string]run.Status {
	out := map[string]run.Status{}
	for _, j := range r.Jobs {
		out[j.Name] = j.Status
		for _, st := range j.Steps {
			out[j.Name+"/"+st.Name] = st.Status
		}
	}
	return out
}

func wantStatuses(t *testing.T, r run.Run, want map[string]run.Status) {
	t.Helper()
	got := statuses(r)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("run %d: %s is %q, want %q (all: %v)", r.ID, k, got[k], w, got)
		}
	}
}

func TestUnsupportedDSN(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"", "mysql://x", "/tmp/flowd.db", "sqlite:"} {
		if s, err := store.Open(context.Background(), dsn, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", dsn)
		}
	}
}
