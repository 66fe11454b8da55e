package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// TestStalledServerDoesNotBlockRescue: a server that stops in the middle of a lease renewal
// (SIGSTOP, a frozen VM) leaves its transaction open on PostgreSQL, holding the attempt's row.
// PostgreSQL ends that session after a few seconds, so another server's rescuer, which waits for
// the row, goes on and rescues the attempt instead of waiting until the stopped server returns.
func TestStalledServerDoesNotBlockRescue(t *testing.T) {
	t.Parallel()
	dsn := storetest.DSN(t, "postgres")
	stalled, rescuer := openAt(t, dsn), openAt(t, dsn)
	_, p := fixture(t, stalled)
	mustRun(t, stalled, p.ID, twoStages())
	c := claimAs(t, stalled, store.Holder{Node: "web-1", Instance: "i1"}, "web-1/1", time.Hour)
	expire(t, stalled)
	rollback, err := stalled.HoldForTest(t.Context(), "UPDATE attempts SET heartbeat_at = heartbeat_at WHERE id = ?", c.Attempt.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rollback()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	got, err := rescuer.AttemptsRescue(ctx)
	if err != nil || len(got) != 1 || got[0].JobID != c.Job.ID {
		t.Fatalf("AttemptsRescue while a stopped server holds the attempt = %+v, %v; want job %d rescued", got, err, c.Job.ID)
	}
	t.Logf("rescued %v after the stopped server's transaction began", time.Since(start).Round(time.Millisecond))
}
