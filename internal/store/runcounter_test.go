package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// TestRunCounterMigration stores runs under the schema before 0005, applies 0005 (the counter
// column) and 0010 (the counter table that replaces it) by opening the store again, and checks
// that numbering continues after the highest existing number.
func TestRunCounterMigration(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.DSN(t, dialect)
			open := func() *store.Store {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := store.Open(ctx, dsn, storetest.Logger(t))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			}
			ctx := t.Context()
			s := open()
			_, p := fixture(t, s)
			_, other := fixture2(t, s)
			for range 3 {
				mustRun(t, s, p.ID, twoStages())
			}
			mustRun(t, s, other.ID, nil)
			// Runs numbered 11..13, as a database that lived before the counter could hold,
			// then the schema as it was before 0005.
			for _, q := range []string{
				"UPDATE runs SET number = number + 10 WHERE pipeline_id = ?",
				"DROP TABLE run_counters",
				"DELETE FROM schema_migrations WHERE version IN (5, 10)",
			} {
				var args []any
				if q[0] == 'U' {
					args = []any{p.ID}
				}
				if _, err := s.ExecForTest(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			s.Close()

			s = open()
			defer s.Close()
			for pid, want := range map[int64]int64{p.ID: 13, other.ID: 1} {
				if got, err := s.CountForTest(ctx, "SELECT last_number FROM run_counters WHERE pipeline_id = ?", pid); err != nil || got != want {
					t.Errorf("counter of pipeline %d after 0005 and 0010 = %d, %v; want %d", pid, got, err, want)
				}
			}
			for _, want := range []int64{14, 15} {
				if r := mustRun(t, s, p.ID, twoStages()); r.Number != want {
					t.Errorf("new run number = %d, want %d", r.Number, want)
				}
			}
			if r := mustRun(t, s, other.ID, nil); r.Number != 2 {
				t.Errorf("other pipeline's new run number = %d, want 2", r.Number)
			}
		})
	}
}

// fixture2 is a second user and pipeline.
func fixture2(t *testing.T, s *store.Store) (store.User, store.Pipeline) {
	u := mustUser(t, s, "bob")
	return u, mustPipeline(t, s, "other", u.ID)
}

// TestRunCounterGaps: a counter behind the runs (runs stored by other means) still gives a
// number above all of them; a counter ahead leaves a gap, never a repeat.
func TestRunCounterGaps(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		mustRun(t, s, p.ID, nil)
		mustRun(t, s, p.ID, nil)
		if _, err := s.ExecForTest(ctx, "UPDATE run_counters SET last_number = 0 WHERE pipeline_id = ?", p.ID); err != nil {
			t.Fatal(err)
		}
		if r := mustRun(t, s, p.ID, nil); r.Number != 3 {
			t.Errorf("number with the counter behind = %d, want 3", r.Number)
		}
		if _, err := s.ExecForTest(ctx, "UPDATE run_counters SET last_number = 40 WHERE pipeline_id = ?", p.ID); err != nil {
			t.Fatal(err)
		}
		if r := mustRun(t, s, p.ID, nil); r.Number != 41 {
			t.Errorf("number with the counter ahead = %d, want 41", r.Number)
		}
		if _, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID + 1000, Trigger: run.TriggerManual}); err == nil {
			t.Error("RunCreate of a missing pipeline: no error")
		}
	})
}

// TestRunCreateReturnsStored: the run RunCreate returns (built from what it inserted) is the
// run RunGet reads back.
func TestRunCreateReturnsStored(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		unordered := []run.Job{
			job(2, "deploy", 0, "ship", "push"),
			job(0, "build", 1, "b1", "x", "y"),
			job(0, "build", 0, "b0"),
			{Stage: 1, StageName: "test", Index: 0, Name: "t", Timeout: 1500*time.Millisecond + 7*time.Microsecond,
				Steps: []run.Step{{Index: 1, Name: "second", Script: "two"}, {Index: 0, Name: "first", Script: "one"}}},
		}
		many := make([]run.Job, 0, 40)
		for i := range 40 {
			many = append(many, job(i%3, "s", i, "j", "a", "b"))
		}
		// Over 256 jobs and steps: stored in batches of INSERTs on PostgreSQL too, not by one
		// statement.
		huge := make([]run.Job, 0, 100)
		for i := range 100 {
			huge = append(huge, job(i%2, "s", i, fmt.Sprintf("h%d", i), "a", "b"))
		}
		for name, c := range map[string]store.RunCreate{
			"unordered jobs": {PipelineID: p.ID, Trigger: run.TriggerManual, TriggeredBy: "alice", Jobs: unordered,
				Variables: map[string]string{"A": "1"}, SecretVariables: []byte{9}},
			"no jobs":   {PipelineID: p.ID, Trigger: run.TriggerWebhook},
			"many jobs": {PipelineID: p.ID, Trigger: run.TriggerWebhook, Jobs: many, MaxRunning: 2, ConcurrencyGroup: "g"},
			"huge run":  {PipelineID: p.ID, Trigger: run.TriggerWebhook, Jobs: huge},
			"git": {PipelineID: p.ID, Revision: 1, Trigger: run.TriggerPush, Jobs: twoStages(),
				Git: &run.Git{RepoURL: "https://example.com/r.git", SHA: "0123456789abcdef0123456789abcdef01234567", Branch: "main", CredentialsVar: "TOKEN"}},
		} {
			created, err := s.RunCreate(ctx, c)
			if err != nil {
				t.Fatalf("%s: RunCreate: %v", name, err)
			}
			got := mustGet(t, s, created.ID)
			if !reflect.DeepEqual(created, got) {
				t.Errorf("%s: RunCreate returned\n%+v\nRunGet reads\n%+v", name, created, got)
			}
		}
	})
}

// TestDeliveryRecordReturnsStored: the delivery DeliveryRecord returns is the one DeliveryGet
// reads back, with and without a run, and for a replay.
func TestDeliveryRecordReturnsStored(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		bare := store.Delivery{PipelineID: p.ID, StatusCode: 401, ErrorCode: "invalid_signature"}
		redelivery := delivery(p.ID, "k")
		one := int64(1)
		redelivery.RedeliveryOf, redelivery.DryRun = &one, true
		for i, rec := range []store.DeliveryRecord{
			{Delivery: delivery(p.ID, ""), NewRun: webhookRun(p.ID), Answer: answer},
			{Delivery: delivery(p.ID, "key"), NewRun: webhookRun(p.ID), Answer: answer},
			{Delivery: delivery(p.ID, "key"), NewRun: webhookRun(p.ID), Answer: answer}, // replayed
			{Delivery: bare},
			{Delivery: redelivery},
		} {
			var answered *run.Run // the run Answer was given: the one stored
			if rec.Answer != nil {
				rec.Answer = func(r run.Run) (int, []byte) { answered = &r; return answer(r) }
			}
			d, replayed, err := s.DeliveryRecord(ctx, rec)
			if err != nil {
				t.Fatalf("%d: DeliveryRecord: %v", i, err)
			}
			if answered != nil && !replayed {
				if stored := mustGet(t, s, answered.ID); !reflect.DeepEqual(*answered, stored) {
					t.Errorf("%d: Answer was given\n%+v\nRunGet reads\n%+v", i, *answered, stored)
				}
			}
			got, err := s.DeliveryGet(ctx, d.ID)
			if err != nil {
				t.Fatalf("%d: DeliveryGet: %v", i, err)
			}
			if !reflect.DeepEqual(d, got) {
				t.Errorf("%d: DeliveryRecord returned\n%+v\nDeliveryGet reads\n%+v", i, d, got)
			}
		}
	})
}
