package store

import (
	"context"

	"github.com/flowd/flowd/internal/run"
)

// MaxListedRunning bounds PipelineSummary.Running.
const MaxListedRunning = 5

// activeRuns fills the Running, RunningCount and QueuedCount of each of ps: two queries on
// the runs_status index (status, pipeline_id), whatever the number of pipelines.
func (s *Store) activeRuns(ctx context.Context, ps []PipelineSummary) error {
	if len(ps) == 0 {
		return nil
	}
	byID := make(map[int64]*PipelineSummary, len(ps))
	for i := range ps {
		byID[ps[i].ID] = &ps[i]
	}
	type count struct {
		pipeline int64
		status   run.Status
		n        int
	}
	counts, err := queryAll(ctx, s.reader(), func(row scanner, c *count) error { return row.Scan(&c.pipeline, &c.status, &c.n) },
		"SELECT pipeline_id, status, COUNT(*) FROM runs WHERE status IN ('queued', 'running') GROUP BY pipeline_id, status")
	if err != nil {
		return err
	}
	running := false
	for _, c := range counts {
		p := byID[c.pipeline]
		if p == nil {
			continue
		}
		if c.status == run.Running {
			p.RunningCount, running = c.n, true
		} else {
			p.QueuedCount = c.n
		}
	}
	if !running {
		return nil
	}
	runs, err := queryAll(ctx, s.reader(), func(row scanner, r *run.Run) (err error) {
		*r, err = scanRun(row)
		return err
	}, runSelect+" WHERE r.status = 'running' ORDER BY r.pipeline_id, r.number DESC")
	if err != nil {
		return err
	}
	for _, r := range runs {
		if p := byID[r.PipelineID]; p != nil && len(p.Running) < MaxListedRunning {
			p.Running = append(p.Running, r)
		}
	}
	return nil
}

// RunCount counts a pipeline's runs that match p's Status and Trigger, and, when p.Before is
// set, have a number below it (Limit is not used).
func (s *Store) RunCount(ctx context.Context, pipelineID int64, p RunListParams) (int64, error) {
	cond, args := runFilter(pipelineID, p)
	var n int64
	if err := s.reader().queryRow(ctx, "SELECT COUNT(*) FROM runs r"+cond, args...).Scan(&n); err != nil {
		return 0, wrap("count runs", err)
	}
	return n, nil
}

// runFilter is the WHERE clause (on alias r) of RunList and RunCount, and its arguments.
func runFilter(pipelineID int64, p RunListParams) (string, []any) {
	q, args := " WHERE r.pipeline_id = ?", []any{pipelineID}
	if p.Before > 0 {
		q, args = q+" AND r.number < ?", append(args, p.Before)
	}
	if p.Status != "" {
		q, args = q+" AND r.status = ?", append(args, p.Status)
	}
	if p.Trigger != "" {
		q, args = q+" AND r.trigger_kind = ?", append(args, p.Trigger)
	}
	return q, args
}

// RunRef is what names a run to a person: its pipeline and its number there.
type RunRef struct {
	PipelineID, Number int64
}

// RunRefs returns the pipeline id and number of each run of ids that exists (deleted ones are
// left out): for the pages that follow runs (TopicRuns names runs by id), and for lists that
// show a run as #N.
func (s *Store) RunRefs(ctx context.Context, ids []int64) (map[int64]RunRef, error) {
	out := make(map[int64]RunRef, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		type row struct {
			id int64
			RunRef
		}
		rows, err := queryAll(ctx, s.reader(), func(sc scanner, r *row) error { return sc.Scan(&r.id, &r.PipelineID, &r.Number) },
			"SELECT id, pipeline_id, number FROM runs WHERE id IN ("+placeholders(len(batch))+")", args...)
		if err != nil {
			return nil, wrap("find runs", err)
		}
		for _, r := range rows {
			out[r.id] = r.RunRef
		}
	}
	return out, nil
}

// PipelineRole is a pipeline's name and a user's role on it ("admin" for a global admin).
type PipelineRole struct {
	Name, Role string
}

// PipelineRoles returns, for each pipeline of ids that exists and that user userID may see (a
// member; every pipeline when all), its name and the user's role: what a page following
// changes may be told of.
func (s *Store) PipelineRoles(ctx context.Context, ids []int64, userID int64, all bool) (map[int64]PipelineRole, error) {
	out := make(map[int64]PipelineRole, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		args := make([]any, 0, len(batch)+1)
		q := "SELECT p.id, p.name, 'admin' FROM pipelines p WHERE p.id IN (" + placeholders(len(batch)) + ")"
		if !all {
			q = "SELECT p.id, p.name, m.role FROM pipelines p JOIN members m ON m.pipeline_id = p.id AND m.user_id = ? WHERE p.id IN (" + placeholders(len(batch)) + ")"
			args = append(args, userID)
		}
		for _, id := range batch {
			args = append(args, id)
		}
		type row struct {
			id int64
			PipelineRole
		}
		rows, err := queryAll(ctx, s.reader(), func(sc scanner, r *row) error { return sc.Scan(&r.id, &r.Name, &r.Role) }, q, args...)
		if err != nil {
			return nil, wrap("pipeline roles", err)
		}
		for _, r := range rows {
			out[r.id] = r.PipelineRole
		}
	}
	return out, nil
}
