package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/flowd/flowd/internal/run"
)

// RunWaiting fills Job.Waiting of r's jobs that may run now (queued, of the run's current
// stage, the run neither ended nor cancel-requested) and that no live runner can take at
// once (see Waiting), and r.Waiting when r is queued as a whole (see RunsWaiting). It reads
// the nodes only when r has such a job.
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
	runs := []run.Run{*r}
	if err := s.runsWaiting(ctx, runs, nodes, read); err != nil {
		return err
	}
	r.Waiting = runs[0].Waiting
	return nil
}

// RunsWaiting fills Run.Waiting of the queued runs among runs (not cancel-requested; with or
// without their jobs) with why each has not started:
//
//   - its bounded concurrency group is full: `waiting for concurrency group "deploy-main":
//     run #7 holds it` (the running runs of the group, and its older queued runs, which start
//     first);
//   - no live runner can take any of the jobs of its first stage: Waiting's words for those
//     jobs ("waiting for an agent; 0 connected"), or, when they may run on any runner and
//     every one is busy, how many slots there are and that all are taken.
//
// It reads the nodes and the jobs' runs-on only for queued runs whose group lets them start.
func (s *Store) RunsWaiting(ctx context.Context, runs []run.Run) error {
	return s.runsWaiting(ctx, runs, nil, false)
}

// runsWaiting is RunsWaiting with the nodes already read when read is set.
func (s *Store) runsWaiting(ctx context.Context, runs []run.Run, nodes []Node, read bool) error {
	var open []*run.Run // queued runs whose group lets them start
	groups := map[groupKey][]groupRun{}
	for i := range runs {
		r := &runs[i]
		if r.Status != run.Queued || r.CancelRequested {
			continue
		}
		if r.ConcurrencyGroup != "" && r.MaxRunning > 0 {
			k := groupKey{r.PipelineID, r.ConcurrencyGroup}
			members, ok := groups[k]
			if !ok {
				var err error
				if members, err = s.groupRuns(ctx, k); err != nil {
					return err
				}
				groups[k] = members
			}
			if r.Waiting = groupWaiting(r, members); r.Waiting != "" {
				continue
			}
		}
		open = append(open, r)
	}
	if len(open) == 0 {
		return nil
	}
	if !read {
		var err error
		if nodes, err = s.NodeList(ctx); err != nil {
			return err
		}
	}
	asks, err := s.firstJobsRunsOn(ctx, open)
	if err != nil {
		return err
	}
	for _, r := range open {
		r.Waiting = runnersWaiting(nodes, asks[r.ID])
	}
	return nil
}

// groupKey names a concurrency group: groups are per pipeline.
type groupKey struct {
	pipeline int64
	group    string
}

// groupRun is a queued or running run of a concurrency group.
type groupRun struct {
	number  int64
	running bool
}

// groupRuns returns the queued and running runs of a group, by number.
func (s *Store) groupRuns(ctx context.Context, k groupKey) ([]groupRun, error) {
	out, err := queryAll(ctx, s.reader(), func(row scanner, g *groupRun) error {
		return row.Scan(&g.number, &g.running)
	}, `SELECT number, status = 'running' FROM runs WHERE pipeline_id = ? AND concurrency_group = ?
		AND status IN ('queued', 'running') ORDER BY number`, k.pipeline, k.group)
	if err != nil {
		return nil, wrap("read the runs of a concurrency group", err)
	}
	return out, nil
}

// groupWaiting says why queued run r waits for its bounded group (members: the group's queued
// and running runs), or "" when it may start: the group's running runs and its queued runs
// older than r (which start first) are fewer than its bound (as JobClaim counts).
func groupWaiting(r *run.Run, members []groupRun) string {
	var running, before []int64
	for _, m := range members {
		switch {
		case m.running:
			running = append(running, m.number)
		case m.number < r.Number:
			before = append(before, m.number)
		}
	}
	if len(running)+len(before) < r.MaxRunning {
		return ""
	}
	var parts []string
	switch n := len(running); {
	case n == 1 && r.MaxRunning == 1:
		parts = append(parts, fmt.Sprintf("run %s holds it", numbers(running)))
	case n == 1:
		parts = append(parts, fmt.Sprintf("run %s holds 1 of its %d slots", numbers(running), r.MaxRunning))
	case n > 1 && n >= r.MaxRunning:
		parts = append(parts, fmt.Sprintf("runs %s hold its %d slots", numbers(running), r.MaxRunning))
	case n > 1:
		parts = append(parts, fmt.Sprintf("runs %s hold %d of its %d slots", numbers(running), n, r.MaxRunning))
	}
	switch len(before) {
	case 0:
	case 1:
		parts = append(parts, fmt.Sprintf("run %s, queued before this one, starts first", numbers(before)))
	default:
		parts = append(parts, fmt.Sprintf("runs %s, queued before this one, start first", numbers(before)))
	}
	return fmt.Sprintf("waiting for concurrency group %q: %s", r.ConcurrencyGroup, strings.Join(parts, "; "))
}

// numbers formats run numbers as "#1, #2".
func numbers(ns []int64) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprintf("#%d", n)
	}
	return strings.Join(parts, ", ")
}

// firstJobsRunsOn returns, per run, the runs-on of each queued job of the run's current stage:
// from the run's jobs when it has them, else read in one query for all such runs.
func (s *Store) firstJobsRunsOn(ctx context.Context, runs []*run.Run) (map[int64][]map[string]string, error) {
	out := map[int64][]map[string]string{}
	var ids []any
	for _, r := range runs {
		if r.Jobs == nil {
			ids = append(ids, r.ID)
			continue
		}
		for _, j := range r.Jobs {
			if j.Status == run.Queued && j.Stage == r.Stage {
				out[r.ID] = append(out[r.ID], j.RunsOn)
			}
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	type ask struct {
		run    int64
		runsOn map[string]string
	}
	asks, err := queryAll(ctx, s.reader(), func(row scanner, a *ask) error {
		return row.Scan(&a.run, labelsScan{&a.runsOn})
	}, `SELECT j.run_id, j.runs_on FROM jobs j JOIN runs r ON r.id = j.run_id
		WHERE j.run_id IN (`+placeholders(len(ids))+`) AND j.stage = r.stage AND j.status = 'queued'`, ids...)
	if err != nil {
		return nil, wrap("read the runs-on of queued jobs", err)
	}
	for _, a := range asks {
		out[a.run] = append(out[a.run], a.runsOn)
	}
	return out, nil
}

// runnersWaiting says why a queued run whose jobs ask for asks (each job's runs-on) has not
// started for want of a runner: "" when some job has a runner with a free slot (or the run has
// no queued job), Waiting's words when no job has one (the distinct ones, joined by "; "), and
// for jobs any runner may take, when every live runner's slots are taken, how many are.
func runnersWaiting(nodes []Node, asks []map[string]string) string {
	var why []string
	for _, runsOn := range asks {
		w := Waiting(nodes, runsOn)
		if w == "" && len(runsOn) == 0 {
			w = allBusy(nodes)
		}
		if w == "" {
			return ""
		}
		if !slices.Contains(why, w) {
			why = append(why, w)
		}
	}
	return strings.Join(why, "; ")
}

// allBusy says, when every live runner that is not paused has all its slots taken, how many
// jobs they run ("waiting for a free runner: every job slot is taken (4 jobs running on 2
// runners)"); "" when one has a free slot or there is none.
func allBusy(nodes []Node) string {
	var runners, held int
	for _, n := range nodes {
		if !n.Live {
			continue
		}
		k := n.Executors
		if n.Kind == NodeAgent {
			if n.Agent == nil || n.Agent.Paused {
				continue
			}
			k = n.Agent.Capacity
		}
		if k <= 0 {
			continue
		}
		if n.JobsHeld < k {
			return ""
		}
		runners++
		held += n.JobsHeld
	}
	if runners == 0 {
		return ""
	}
	return fmt.Sprintf("waiting for a free runner: every job slot is taken (%d %s running on %d %s)",
		held, plural(held, "job", "jobs"), runners, plural(runners, "runner", "runners"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
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
