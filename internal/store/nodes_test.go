package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

const nodeTTL = time.Minute

func server(name, instance string) store.Node {
	return store.Node{Name: name, Kind: store.NodeServer, Instance: instance, Version: "v1.2.3", Addr: "http://" + name + ":8080", TTL: nodeTTL}
}

// nodeByName lists the nodes and returns the one named name, failing the test without it.
func nodeByName(t *testing.T, s *store.Store, name string) store.Node {
	t.Helper()
	ns, err := s.NodeList(t.Context())
	if err != nil {
		t.Fatalf("NodeList: %v", err)
	}
	for _, n := range ns {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("NodeList = %+v: no node %q", ns, name)
	return store.Node{}
}

// ageNode moves the node's heartbeat an hour back, as if it had stopped then.
func ageNode(t *testing.T, s *store.Store, name string) {
	t.Helper()
	if _, err := s.ExecForTest(t.Context(), "UPDATE nodes SET heartbeat_at = ?, started_at = ? WHERE name = ?",
		time.Now().Add(-time.Hour), time.Now().Add(-2*time.Hour), name); err != nil {
		t.Fatal(err)
	}
}

func TestNodeRegister(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		prev, err := s.NodeRegister(ctx, server("a", "i1"), "")
		if err != nil || !reflect.DeepEqual(prev, store.Node{}) {
			t.Fatalf("NodeRegister(new) = %+v, %v; want the zero Node", prev, err)
		}
		n := nodeByName(t, s, "a")
		if n.Kind != store.NodeServer || n.Instance != "i1" || n.Version != "v1.2.3" || n.Addr != "http://a:8080" ||
			!n.Live || n.JobsHeld != 0 || n.StartedAt.IsZero() || !n.HeartbeatAt.Equal(n.StartedAt) ||
			n.HeartbeatAge < 0 || n.HeartbeatAge >= nodeTTL {
			t.Errorf("registered node = %+v; want server a, instance i1, live, started = heartbeat, a heartbeat age within the TTL", n)
		}

		// Another process under the same name is refused while i1 lives, and i1 keeps the row.
		prev, err = s.NodeRegister(ctx, server("a", "i2"), "i0")
		if !errors.Is(err, store.ErrConflict) || prev.Instance != "i1" || !prev.Live || !prev.HeartbeatAt.Equal(n.HeartbeatAt) {
			t.Errorf("NodeRegister(i2 while i1 lives) = %+v, %v; want ErrConflict with i1's live row", prev, err)
		}
		if got := nodeByName(t, s, "a"); got.Instance != "i1" {
			t.Errorf("after the refused start the row's instance is %q, want i1", got.Instance)
		}
		if err := s.NodeHeartbeat(ctx, "a", "i1"); err != nil {
			t.Errorf("i1's heartbeat after the refused start = %v", err)
		}

		// The successor of i1 (the same data folder after kill -9) takes over at once.
		up := server("a", "i2")
		up.Version = "v1.2.4"
		prev, err = s.NodeRegister(ctx, up, "i1")
		if err != nil || prev.Instance != "i1" || !prev.Live || prev.Version != "v1.2.3" || !prev.StartedAt.Equal(n.StartedAt) {
			t.Fatalf("NodeRegister(i2 replacing i1) = %+v, %v; want i1's row as it was", prev, err)
		}
		if got := nodeByName(t, s, "a"); got.Instance != "i2" || got.Version != "v1.2.4" || !got.Live {
			t.Errorf("after the takeover the row is %+v, want live instance i2 of v1.2.4", got)
		}
		// Registering the same instance again (e.g. after its row was deleted) is no conflict.
		if _, err := s.NodeRegister(ctx, up, ""); err != nil {
			t.Errorf("NodeRegister(i2 again) = %v", err)
		}

		// Anyone may take a name whose holder stopped heartbeating longer than the TTL ago.
		ageNode(t, s, "a")
		prev, err = s.NodeRegister(ctx, server("a", "i3"), "")
		if err != nil || prev.Instance != "i2" || prev.Live {
			t.Fatalf("NodeRegister(i3 after i2 went stale) = %+v, %v; want i2's stale row", prev, err)
		}
		got := nodeByName(t, s, "a")
		if got.Instance != "i3" || !got.Live || !got.StartedAt.After(prev.StartedAt) || !got.HeartbeatAt.After(prev.HeartbeatAt) {
			t.Errorf("after the stale takeover the row is %+v; want live i3 started and heartbeating anew (previous %+v)", got, prev)
		}

		if _, err := s.NodeRegister(ctx, store.Node{Name: "b", Kind: "robot", Instance: "x", TTL: nodeTTL}, ""); err == nil {
			t.Error("NodeRegister(kind robot) succeeded")
		}
		if _, err := s.NodeRegister(ctx, store.Node{Name: "b", Kind: store.NodeServer, Instance: "x"}, ""); err == nil {
			t.Error("NodeRegister(no TTL) succeeded")
		}
	})
}

// TestNodeOwnTTL: each node is judged live by its own TTL, not the TTL of whoever asks or
// registers, so a server with a short --lease-ttl cannot take the name of a live server with a
// long one.
func TestNodeOwnTTL(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		long := server("long", "i1")
		long.TTL = 3 * time.Hour
		if _, err := s.NodeRegister(ctx, long, ""); err != nil {
			t.Fatal(err)
		}
		ageNode(t, s, "long") // an hour ago: within its 3 h, past a minute
		short := server("long", "i2")
		short.TTL = time.Second
		prev, err := s.NodeRegister(ctx, short, "")
		if !errors.Is(err, store.ErrConflict) || !prev.Live || prev.TTL != 3*time.Hour {
			t.Errorf("NodeRegister(1 s TTL over a live 3 h one) = %+v, %v; want ErrConflict and the live row with its 3 h TTL", prev, err)
		}
		if got := nodeByName(t, s, "long"); !got.Live || got.TTL != 3*time.Hour || got.Instance != "i1" {
			t.Errorf("listed node = %+v; want i1, live by its own 3 h TTL", got)
		}
		// The same heartbeat age under a one-minute TTL is gone.
		if _, err := s.NodeRegister(ctx, server("minute", "i3"), ""); err != nil {
			t.Fatal(err)
		}
		ageNode(t, s, "minute")
		if got := nodeByName(t, s, "minute"); got.Live || got.TTL != nodeTTL {
			t.Errorf("listed node = %+v; want gone after an hour with a one-minute TTL", got)
		}
	})
}

func TestNodeHeartbeat(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.NodeRegister(ctx, server("a", "i1"), ""); err != nil {
			t.Fatal(err)
		}
		ageNode(t, s, "a")
		stale := nodeByName(t, s, "a")
		if stale.Live || stale.HeartbeatAge < time.Hour || stale.HeartbeatAge > 2*time.Hour {
			t.Fatalf("node with a heartbeat an hour ago = %+v; want not live, its heartbeat an hour old", stale)
		}
		if err := s.NodeHeartbeat(ctx, "a", "i1"); err != nil {
			t.Fatalf("NodeHeartbeat: %v", err)
		}
		beat := nodeByName(t, s, "a")
		if !beat.Live || !beat.HeartbeatAt.After(stale.HeartbeatAt) || !beat.StartedAt.Equal(stale.StartedAt) {
			t.Errorf("after a heartbeat the node is %+v; want live with a newer heartbeat and the same start (before %+v)", beat, stale)
		}
		ageNode(t, s, "a")
		if _, err := s.NodeRegister(ctx, server("a", "i2"), ""); err != nil {
			t.Fatal(err)
		}
		if err := s.NodeHeartbeat(ctx, "a", "i1"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("NodeHeartbeat of the replaced instance = %v, want ErrConflict", err)
		}
		if err := s.NodeHeartbeat(ctx, "nobody", "i1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("NodeHeartbeat(unknown node) = %v, want ErrNotFound", err)
		}
	})
}

func TestNodeListJobsHeld(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for _, n := range []store.Node{
			server("b", "ib"),
			server("a", "ia"),
			{Name: "agent-1", Kind: store.NodeAgent, Instance: "ig", TTL: time.Second},
		} {
			if _, err := s.NodeRegister(ctx, n, ""); err != nil {
				t.Fatal(err)
			}
		}
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		// a holds a running and a canceling attempt (one of them its previous instance's);
		// its finished and lost attempts, and b's finished one, are held by nobody.
		for i, a := range []struct {
			job             int
			node, inst, st8 string
		}{
			{0, "a", "ia", "finished"},
			{0, "a", "ia", "lost"},
			{0, "a", "ia", "running"},
			{1, "a", "old", "canceling"},
			{2, "b", "ib", "finished"},
		} {
			if _, err := s.ExecForTest(ctx, `INSERT INTO attempts (job_id, number, runner, node, instance, token_hash,
					state, created_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.Jobs[a.job].ID, i+1, a.node+"/0", a.node, a.inst, []byte{1}, a.st8,
				time.Now(), time.Now(), time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		ns, err := s.NodeList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		held := map[string]int{}
		for _, n := range ns {
			got = append(got, n.Name)
			held[n.Name] = n.JobsHeld
		}
		if want := []string{"a", "b", "agent-1"}; !slices.Equal(got, want) {
			t.Errorf("NodeList order = %v, want %v (servers first, then by name)", got, want)
		}
		if held["a"] != 2 || held["b"] != 0 || held["agent-1"] != 0 {
			t.Errorf("jobs held = %v, want a 2, b 0, agent-1 0", held)
		}
	})
}

// TestNodeRegisterRace starts two processes under one name at once, through two stores on one
// database: exactly one gets the name.
func TestNodeRegisterRace(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.DSN(t, dialect)
			var stores [2]*store.Store
			for i := range stores {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				s, err := store.Open(ctx, dsn, storetest.Logger(t))
				cancel()
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				stores[i] = s
			}
			for round := range 20 {
				name := "n" + string(rune('a'+round))
				var (
					wg   sync.WaitGroup
					errs [2]error
				)
				for i, s := range stores {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, errs[i] = s.NodeRegister(t.Context(), server(name, "i"+string(rune('0'+i))), "")
					}()
				}
				wg.Wait()
				won := 0
				for _, err := range errs {
					switch {
					case err == nil:
						won++
					case !errors.Is(err, store.ErrConflict):
						t.Fatalf("round %d: NodeRegister = %v, want nil or ErrConflict", round, err)
					}
				}
				if won != 1 {
					t.Fatalf("round %d: %d of 2 racing registrations won (%v), want exactly 1", round, won, errs)
				}
				winner := "i0"
				if errs[0] != nil {
					winner = "i1"
				}
				if got := nodeByName(t, stores[0], name); got.Instance != winner {
					t.Errorf("round %d: the row's instance is %q, want the winner %q", round, got.Instance, winner)
				}
			}
		})
	}
}
