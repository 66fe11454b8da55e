package store

import (
	"context"
	"time"
)

// The two counts of the backlog; each reads one index only (see migration 0013).
const queuedQuery = "SELECT pipeline_id, COUNT(*) FROM runs WHERE status = 'queued' GROUP BY pipeline_id"

// endedQuery is RunsEnded's count. SQLite, which keeps no statistics here, would rather walk
// runs_pipeline_number for the GROUP BY than range over the recent ends, so it is told which
// index to use (and fails loudly if the index is ever gone).
func endedQuery(pg bool) string {
	from := "runs"
	if !pg {
		from = "runs INDEXED BY runs_log_kept"
	}
	return `SELECT pipeline_id, COUNT(*), MIN(finished_at) FROM ` + from + `
		WHERE log_expired_at IS NULL AND finished_at IS NOT NULL AND finished_at >= ?
		GROUP BY pipeline_id`
}

// RunsQueued counts the runs waiting to start (status queued), per pipeline id: pipelines
// with none are absent. It reads the index runs_status only.
func (s *Store) RunsQueued(ctx context.Context) (map[int64]int64, error) {
	counts, err := queryAll(ctx, s.reader(), func(row scanner, c *pipelineCount) error {
		return row.Scan(&c.pipeline, &c.n)
	}, queuedQuery)
	if err != nil {
		return nil, wrap("count queued runs", err)
	}
	out := make(map[int64]int64, len(counts))
	for _, c := range counts {
		out[c.pipeline] = c.n
	}
	return out, nil
}

// pipelineCount is one row of a count per pipeline.
type pipelineCount struct {
	pipeline, n int64
}

// Ended is how many runs of a pipeline ended within a window, and when the first of them did.
type Ended struct {
	N     int64
	First time.Time
}

// RunsEnded counts the runs that ended within window before now (this process's clock, which
// stamps finished_at), per pipeline id, with the earliest end of each; pipelines with none are
// absent. It also returns the now it counted back from. It reads the index runs_log_kept only,
// whose condition it repeats (log retention is at least an hour, so a run that ended within
// the window has its log).
func (s *Store) RunsEnded(ctx context.Context, window time.Duration) (map[int64]Ended, time.Time, error) {
	at := now()
	d := s.reader()
	type row struct {
		pipeline int64
		ended    Ended
	}
	rows, err := queryAll(ctx, d, func(r scanner, v *row) error {
		return r.Scan(&v.pipeline, &v.ended.N, timeScan{&v.ended.First})
	}, endedQuery(d.pg), d.ts(at.Add(-window)))
	if err != nil {
		return nil, at, wrap("count ended runs", err)
	}
	out := make(map[int64]Ended, len(rows))
	for _, r := range rows {
		out[r.pipeline] = r.ended
	}
	return out, at, nil
}
