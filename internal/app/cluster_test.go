package app

import (
	"context"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// clusterNode is the shared part of one server: its store, log appender and cluster.
type clusterNode struct {
	st       *store.Store
	appender *logs.Appender
	signIn   *auth.Throttle
	cl       *cluster
	woke     chan struct{} // the scheduler's Wake
}

// startClusterNode runs the cluster part of a server on dsn until the test ends.
func startClusterNode(t *testing.T, dsn string) *clusterNode {
	t.Helper()
	st := storetest.OpenAt(t, dsn)
	n := &clusterNode{st: st, appender: logs.NewAppender(st, storetest.Logger(t)),
		signIn: auth.NewThrottle(10, time.Minute), woke: make(chan struct{}, 64)}
	n.cl = newCluster(st, config.Default(), storetest.Logger(t))
	n.cl.share(n.signIn, n.appender, []byte("secret key"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.cl.run(ctx, func() { n.woke <- struct{}{} }, n.appender, n.signIn.Window)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// await waits for ch to deliver or close.
func await[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s", what)
	}
}

// TestClusterWakesOtherServers: on PostgreSQL, new work queued on one server wakes the other's
// scheduler, and a log change on one wakes the other's followers of that run; the sign-in
// throttle counts in the database. On SQLite nothing is shared.
func TestClusterWakesOtherServers(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.DSN(t, "postgres")
		a, b := startClusterNode(t, dsn), startClusterNode(t, dsn)
		// Listen tells every subscriber to look again once it listens: the first wake-up.
		await(t, "wake-up when b listens", b.woke)
		await(t, "wake-up when a listens", a.woke)

		a.cl.wakeWork(func() {})()
		await(t, "wake-up of b's scheduler for a's new work", b.woke)

		// The first close may come from b's own "look again" at connect; the second can only
		// come from a's announcement.
		for range 2 {
			changed := b.appender.Changed(42)
			a.appender.Notify(42)
			await(t, "wake-up of b's followers of run 42", changed)
		}
		if a.signIn.Shared == nil || a.cl.webhookLimiter() == nil {
			t.Error("on PostgreSQL the sign-in throttle or the webhook rate is not shared")
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		n := startClusterNode(t, storetest.DSN(t, "sqlite"))
		if n.signIn.Shared != nil || n.appender.OnChange != nil || n.cl.webhookLimiter() != nil {
			t.Error("on SQLite something is shared")
		}
	})
}
