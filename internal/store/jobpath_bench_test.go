package store_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// BenchmarkOneStepJobPath measures the job path of a one-step run on each database: its claim
// (which starts the step) and its completion (the step's end, one log line, the job's and the
// run's end), each a transaction of its own. The runs are created outside the timer. cpu-ns/op
// is this process's CPU time (the PostgreSQL server's is not in it), stmts/op the statements
// the two writes ran (Store.WriteStats).
func BenchmarkOneStepJobPath(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			ctx := context.Background()
			s := storetest.Open(b, dialect)
			u, err := s.UserCreate(ctx, "alice", "x", false)
			if err != nil {
				b.Fatal(err)
			}
			p, err := s.PipelineCreate(ctx, "p", "name: p\n", nil, u.ID)
			if err != nil {
				b.Fatal(err)
			}
			jobs := []run.Job{{Stage: 0, StageName: "s", Name: "j", Steps: []run.Step{{Name: "echo", Script: "echo hi"}}}}
			var (
				cpu   time.Duration
				stmts int64
			)
			rusage := func() time.Duration {
				var ru syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			for b.Loop() {
				b.StopTimer()
				r, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Trigger: run.TriggerWebhook, TriggeredBy: "alice",
					Variables: map[string]string{"abc": "1"}, Jobs: jobs})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				c0, s0 := rusage(), s.WriteStats().Statements
				cs, err := s.JobsClaim(ctx, store.JobsClaim{Max: 1, StartFirstStep: true})
				if err != nil {
					b.Fatal(err)
				}
				c := cs[0]
				zero := 0
				st, err := s.JobComplete(ctx, store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, RunID: c.Run.ID,
					Steps:  []store.StepResult{{StepID: c.Job.Steps[0].ID, Status: run.Success, ExitCode: &zero}},
					Logs:   []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Attempt: c.Attempt.ID, Data: []byte("── s / j ──\nhi\n")}},
					Status: run.Success})
				if err != nil || st != run.Success {
					b.Fatal(st, err)
				}
				cpu += rusage() - c0
				stmts += s.WriteStats().Statements - s0
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(stmts)/float64(b.N), "stmts/op")
		})
	}
}
