package store_test

import (
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// LogExpire deletes the log chunks of runs finished before the cut-off, and only theirs, and
// records on each when its log expired; runs still running or finished since keep their logs.
func TestLogExpire(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		now := time.Now()
		finished := func(r run.Run, at time.Time) {
			t.Helper()
			if _, err := s.ExecForTest(ctx, "UPDATE runs SET status = 'success', finished_at = ? WHERE id = ?", at, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		var old []run.Run
		for range 60 { // more than one batch
			r := mustRun(t, s, p.ID, twoStages())
			finished(r, now.Add(-100*24*time.Hour))
			old = append(old, r)
		}
		recent, running := mustRun(t, s, p.ID, twoStages()), mustRun(t, s, p.ID, twoStages())
		finished(recent, now.Add(-time.Hour))
		for _, r := range append([]run.Run{recent, running}, old...) {
			if err := s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, Data: []byte("line\n")}, {RunID: r.ID, JobID: r.Jobs[0].ID, Data: []byte("job line\n")}}); err != nil {
				t.Fatal(err)
			}
		}
		total := 0
		for {
			n, err := s.LogExpire(ctx, now.Add(-90*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != len(old) {
			t.Fatalf("expired %d runs' logs, want %d", total, len(old))
		}
		for _, r := range old {
			got, err := s.RunGet(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.LogExpiredAt == nil || got.LogExpiredAt.Before(now.Add(-time.Minute)) || got.Status != run.Success {
				t.Fatalf("run %d after its log expired: log_expired_at %v, status %s", r.ID, got.LogExpiredAt, got.Status)
			}
			if chunks, err := s.LogRead(ctx, r.ID, 0, 10); err != nil || len(chunks) != 0 {
				t.Fatalf("run %d keeps %d chunks after its log expired (%v)", r.ID, len(chunks), err)
			}
		}
		for _, r := range []run.Run{recent, running} {
			got, err := s.RunGet(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if chunks, err := s.LogRead(ctx, r.ID, 0, 10); err != nil || len(chunks) != 2 || got.LogExpiredAt != nil {
				t.Fatalf("run %d (finished %v) lost its log: %d chunks, log_expired_at %v, %v", r.ID, got.FinishedAt, len(chunks), got.LogExpiredAt, err)
			}
		}
	})
}
