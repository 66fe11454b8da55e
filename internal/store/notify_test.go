package store_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// openAt opens another store on dsn, closed at cleanup: a second server on the same database.
func openAt(t *testing.T, dsn string) *store.Store { return storetest.OpenAt(t, dsn) }

// listening subscribes to topics, starts s.Listen until the test ends, and waits until it
// listens: after it (re)connects to PostgreSQL every subscriber hears "". It returns the
// subscriptions, one per topic.
func listening(t *testing.T, s *store.Store, topics ...string) []<-chan string {
	t.Helper()
	var subs []<-chan string
	for _, topic := range topics {
		ch, stop := s.Subscribe(topic)
		t.Cleanup(stop)
		subs = append(subs, ch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	if s.Dialect() == "postgres" {
		for i, ch := range subs {
			if got := receive(t, ch); got != "" {
				t.Fatalf("first %s notification after Listen connected = %q, want \"\" (look again)", topics[i], got)
			}
		}
	}
	return subs
}

// receive waits for the next payload on ch.
func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatal("the subscription was closed")
		}
		return p
	case <-time.After(30 * time.Second):
		t.Fatal("no notification within 30 s")
		return ""
	}
}

// TestNotifyAcrossStores: on PostgreSQL, a notification sent by one store reaches the
// subscribers of another store opened separately on the same schema (another server), with
// its topic and payload, and never a store on another schema of the same database. On SQLite
// (one server per database) it reaches the store's own subscribers.
func TestNotifyAcrossStores(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := storetest.Open(t, "sqlite")
		subs := listening(t, s, store.TopicLog, store.TopicCancel)
		logs, cancels := subs[0], subs[1]
		if err := s.Notify(t.Context(), store.TopicLog, "42"); err != nil {
			t.Fatal(err)
		}
		if err := s.Notify(t.Context(), store.TopicCancel, "7"); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, logs); got != "42" {
			t.Errorf("log notification = %q, want 42", got)
		}
		if got := receive(t, cancels); got != "7" {
			t.Errorf("cancel notification = %q, want 7", got)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.DSN(t, "postgres")
		a, b := openAt(t, dsn), openAt(t, dsn)
		other := storetest.Open(t, "postgres") // another schema of the same database
		subs := listening(t, b, store.TopicWork, store.TopicLog)
		bWork, bLog := subs[0], subs[1]
		otherWork := listening(t, other, store.TopicWork)[0]

		if err := a.Notify(t.Context(), store.TopicWork, "from-a"); err != nil {
			t.Fatal(err)
		}
		if err := a.Notify(t.Context(), store.TopicLog, "42"); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, bWork); got != "from-a" {
			t.Errorf("b heard work %q, want from-a", got)
		}
		if got := receive(t, bLog); got != "42" {
			t.Errorf("b heard log %q, want 42", got)
		}
		// PostgreSQL delivers notifications in commit order: had the other schema's store heard
		// a's, it would come before this one of its own.
		if err := other.Notify(t.Context(), store.TopicWork, "own"); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, otherWork); got != "own" {
			t.Errorf("a store on another schema heard %q; want only its own notification", got)
		}
	})
}

// TestSubscribeNeverBlocks: a subscriber that reads nothing does not hold up Notify; it keeps
// what fits in its buffer, and unsubscribing closes its channel.
func TestSubscribeNeverBlocks(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, "sqlite")
	ch, stop := s.Subscribe(store.TopicWork)
	for range 10000 {
		if err := s.Notify(t.Context(), store.TopicWork, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(ch) == 0 || len(ch) != cap(ch) {
		t.Errorf("an unread subscriber holds %d of %d notifications; want its buffer full", len(ch), cap(ch))
	}
	stop()
	stop() // idempotent
	for range ch {
	}
}

// TestListenReconnects: when the listening connection is killed (a database restart, a
// network cut), Listen connects again, tells subscribers to look again (""), and notifications
// sent after that arrive.
func TestListenReconnects(t *testing.T) {
	t.Parallel()
	dsn := storetest.DSN(t, "postgres")
	a, b := openAt(t, dsn), openAt(t, dsn)
	work := listening(t, b, store.TopicWork)[0]
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	n, err := a.CountForTest(t.Context(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'flowd listen' AND query LIKE ?`, `LISTEN "flowd.`+schema+`.%`)
	if err != nil || n != 1 {
		t.Fatalf("terminate the listening connection: %d terminated, %v; want 1", n, err)
	}
	if got := receive(t, work); got != "" {
		t.Fatalf("first notification after the connection was killed = %q, want \"\" (look again)", got)
	}
	if err := a.Notify(t.Context(), store.TopicWork, "after"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, work); got != "after" {
		t.Errorf("after reconnecting b heard %q, want after", got)
	}
}
