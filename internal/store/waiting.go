package store

import (
	"context"
	"fmt"

	"github.com/flowd/flowd/internal/run"
)

// RunWaiting fills Job.Waiting of r's jobs that may run now (queued, of the run's current
// stage, the run neither ended nor cancel-requested) and that no live runner can take at
// once (see Waiting). It reads the nodes only when r has such a job.
func (s *Store) RunWaiting(ctx context.Context, r *run.Run) error {
	if r.Status.Terminal() || r.CancelRequested {
		return nil
	}
	var nodes []Node
	read := false
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.Status != run.Queued || j.Stage != r.Stage {
			continue
		}
		if !read {
			var err error
			if nodes, err = s.NodeList(ctx); err != nil {
				return err
			}
			read = true
		}
		j.Waiting = Waiting(nodes, j.RunsOn)
	}
	return nil
}

// Waiting says why a queued job asking for runsOn (none: any runner) waits, given every node
// (NodeList): "" when a live runner whose labels match has a free slot (the job is about to
// be claimed), or, for a job without runs-on, when some live runner that is not paused is
// busy (the job waits its turn, as any queue does). Otherwise:
//
//   - no live matching runner: "waiting for an agent with gpu=true; 0 connected" ("waiting
//     for an agent; 0 connected" without runs-on: every server runs no job, no agent is live);
//   - every live matching runner busy or paused: "waiting for a free agent with gpu=true
//     (2 connected, all busy)" ("all busy or paused" when some is paused).
//
// A runner is a live agent (its labels and capacity; paused ones count as connected but never
// free) or a live server with executors (its --labels). Busy is holding as many running or
// canceling attempts as it has slots.
func Waiting(nodes []Node, runsOn map[string]string) string {
	var connected, free, paused int
	for _, n := range nodes {
		if !n.Live {
			continue
		}
		labels, slots := n.Labels, n.Executors
		if n.Kind == NodeAgent {
			if n.Agent == nil {
				continue
			}
			labels, slots = n.Agent.Labels, n.Agent.Capacity
		}
		if slots <= 0 || !run.LabelsMatch(labels, runsOn) {
			continue
		}
		connected++
		switch {
		case n.Agent != nil && n.Agent.Paused:
			paused++
		case n.JobsHeld < slots:
			free++
		}
	}
	with := ""
	if len(runsOn) > 0 {
		with = " with " + run.FormatLabels(runsOn)
	}
	switch {
	case free > 0 || (len(runsOn) == 0 && connected > paused):
		return ""
	case connected == 0 && with == "":
		return "waiting for an agent; 0 connected"
	case connected == 0:
		return fmt.Sprintf("waiting for an agent%s; 0 connected", with)
	case paused > 0:
		return fmt.Sprintf("waiting for a free agent%s (%d connected, all busy or paused)", with, connected)
	default:
		return fmt.Sprintf("waiting for a free agent%s (%d connected, all busy)", with, connected)
	}
}
