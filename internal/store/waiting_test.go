package store_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// TestWaiting: why a queued job waits, from the nodes: live servers with executors and live
// agents count when their labels match; stopped nodes, servers without executors and
// unmatched labels do not; busy is holding as many jobs as slots; paused agents are never free.
func TestWaiting(t *testing.T) {
	t.Parallel()
	srv := func(executors, held int, live bool, labels map[string]string) store.Node {
		return store.Node{Kind: store.NodeServer, Executors: executors, JobsHeld: held, Live: live, Labels: labels}
	}
	agent := func(capacity, held int, paused bool, labels map[string]string) store.Node {
		return store.Node{Kind: store.NodeAgent, Live: true, JobsHeld: held,
			Agent: &store.Agent{Capacity: capacity, Paused: paused, Labels: labels}}
	}
	gpu := map[string]string{"gpu": "true"}
	cpu := map[string]string{"gpu": "false", "os": "linux"}
	both := map[string]string{"gpu": "true", "os": "linux"}
	tests := []struct {
		name   string
		nodes  []store.Node
		runsOn map[string]string
		want   string
	}{
		{"nothing at all", nil, nil, "waiting for an agent; 0 connected"},
		{"a server with free slots", []store.Node{srv(2, 1, true, nil)}, nil, ""},
		{"a busy server: its turn", []store.Node{srv(2, 2, true, nil)}, nil, ""},
		{"a server with --executors 0", []store.Node{srv(0, 0, true, nil)}, nil, "waiting for an agent; 0 connected"},
		{"a stopped server", []store.Node{srv(4, 0, false, nil)}, nil, "waiting for an agent; 0 connected"},
		{"only a paused agent", []store.Node{srv(0, 0, true, nil), agent(2, 0, true, cpu)}, nil, "waiting for a free agent (1 connected, all busy or paused)"},
		{"gpu: a server without labels", []store.Node{srv(4, 0, true, nil)}, gpu, "waiting for an agent with gpu=true; 0 connected"},
		{"gpu: a cpu agent", []store.Node{agent(2, 0, false, cpu)}, gpu, "waiting for an agent with gpu=true; 0 connected"},
		{"gpu: a free gpu agent", []store.Node{agent(2, 1, false, both)}, gpu, ""},
		{"gpu: a server with gpu=true", []store.Node{srv(1, 0, true, gpu)}, gpu, ""},
		{"gpu: busy gpu runners", []store.Node{agent(2, 2, false, both), srv(1, 1, true, gpu), agent(1, 0, false, cpu)}, gpu,
			"waiting for a free agent with gpu=true (2 connected, all busy)"},
		{"gpu and os: one busy, one paused", []store.Node{agent(1, 1, false, both), agent(1, 0, true, both)}, both,
			"waiting for a free agent with gpu=true,os=linux (2 connected, all busy or paused)"},
		{"gpu and os: a gpu agent without os", []store.Node{agent(1, 0, false, gpu)}, both,
			"waiting for an agent with gpu=true,os=linux; 0 connected"},
	}
	for _, tt := range tests {
		if got := store.Waiting(tt.nodes, tt.runsOn); got != tt.want {
			t.Errorf("%s: Waiting = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestRunsWaitingForGroup: queued runs of a group bounded to 2 whose two slots are held say
// which runs hold them and which queued runs go first; the claim agrees (none of them starts),
// and once a slot is free the next run in line says nothing about the group.
func TestRunsWaitingForGroup(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		for range 4 {
			groupRun(t, s, p.ID, "deploy-main", 2, "ship")
		}
		c1 := mustClaim(t, s)
		mustClaim(t, s)
		if _, err := s.JobClaim(t.Context()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a third claim: %v, want ErrNotFound (the group is full)", err)
		}
		waiting := func() map[int64]string {
			t.Helper()
			runs, err := s.RunList(t.Context(), p.ID, store.RunListParams{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.RunsWaiting(t.Context(), runs); err != nil {
				t.Fatal(err)
			}
			out := map[int64]string{}
			for _, r := range runs {
				out[r.Number] = r.Waiting
			}
			return out
		}
		const g = `waiting for concurrency group "deploy-main": `
		want := map[int64]string{1: "", 2: "",
			3: g + "runs #1, #2 hold its 2 slots",
			4: g + "runs #1, #2 hold its 2 slots; run #3, queued before this one, starts first"}
		if got := waiting(); !maps.Equal(got, want) {
			t.Errorf("waiting = %v\nwant %v", got, want)
		}
		if _, err := s.JobFinish(t.Context(), c1.Attempt.ID, c1.Job.ID, run.Success, ""); err != nil {
			t.Fatal(err)
		}
		// #3 may start now: it waits only for a runner (the store has no node), #4 for #2 and #3.
		want = map[int64]string{1: "", 2: "", 3: "waiting for an agent; 0 connected",
			4: g + "run #2 holds 1 of its 2 slots; run #3, queued before this one, starts first"}
		if got := waiting(); !maps.Equal(got, want) {
			t.Errorf("after #1 ended: waiting = %v\nwant %v", got, want)
		}
	})
}
