package scheduler

import (
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestOneStepRunWrites pins what the job path of a one-step run costs the store, from its
// queued run to its end: one write for the claim (which starts the step too) and one for the
// completion (the step's end, the job's log, the job's and the run's end), so the cost cannot
// grow back unnoticed. Each run is alone, so no two writes share a transaction. The log's
// flush delay is long, so the job's lines ride with its end, as they do whenever a job's output
// all comes within the delay.
func TestOneStepRunWrites(t *testing.T) {
	t.Parallel()
	// The claim: on SQLite pick the job, create its attempt, move the job and its run to
	// running, start the first step, read the job, its steps and its run (8); on PostgreSQL
	// one statement does the first four (5). The completion: lock the run, end the attempt
	// (fenced), finish the step, append the log (after PostgreSQL's advisory lock), finish the
	// job and settle its steps, read the stage's jobs, end the run (8; 9 on PostgreSQL). Before
	// issue 11 they were 27 and 25.
	want := map[string]store.WriteStats{
		"sqlite":   {Writes: 2, Transactions: 2, Statements: 16},
		"postgres": {Writes: 2, Transactions: 2, Statements: 14},
	}
	// The run's creation is counted too: the scheduler may claim the run before create
	// returns, so the count starts before it. It is one write of its own: on SQLite the run,
	// its number, its jobs and its steps (4); on PostgreSQL one statement.
	create := map[string]store.WriteStats{
		"sqlite":   {Writes: 1, Transactions: 1, Statements: 4},
		"postgres": {Writes: 1, Transactions: 1, Statements: 1},
	}
	forEach(t, func(t *testing.T, dialect string) {
		f := newFixtureConfig(t, dialect, 1, t.TempDir(), nil, func(c *Config) { c.Logs.FlushDelay = time.Hour })
		for i := range 3 {
			before := f.st.WriteStats()
			r := f.create(t, nil, job(0, "j", "echo hi"))
			got := f.wait(t, r.ID, terminal)
			after := f.st.WriteStats()
			if got.Status != run.Success {
				t.Fatalf("run %d: %s", i, got.Status)
			}
			c := create[dialect]
			cost := store.WriteStats{Writes: after.Writes - before.Writes - c.Writes,
				Transactions: after.Transactions - before.Transactions - c.Transactions,
				Statements:   after.Statements - before.Statements - c.Statements}
			t.Logf("run %d: %+v besides its creation", i, cost)
			if cost != want[dialect] {
				t.Errorf("run %d cost %+v besides its creation %+v, want %+v", i, cost, c, want[dialect])
			}
		}
	})
}
