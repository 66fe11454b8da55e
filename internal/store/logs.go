package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// logInsertBatch is how many chunks one INSERT carries (5 parameters each).
const logInsertBatch = 200

// LogAppend stores chunks in one transaction; Seq is assigned per run, in order. After it
// returns without error, chunks[i].Seq holds the number given (and a zero At the time used).
//
// A chunk of an attempt that is no longer its job's live one (Attempt set; see fence) is not
// stored: the others are, and LogAppend returns a *FencedError naming the attempts refused
// (their chunks keep Seq 0).
func (s *Store) LogAppend(ctx context.Context, chunks []run.LogChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	var (
		kept    []run.LogChunk
		refused []int64
	)
	err := s.writeRelaxed(ctx, func(tx db) error {
		var err error
		if kept, refused, err = fenceChunks(ctx, tx, slices.Clone(chunks)); err != nil {
			return err
		}
		return appendLogs(ctx, tx, kept)
	})
	if err != nil {
		return wrap("append log", err)
	}
	k := 0
	for i := range chunks {
		if k < len(kept) && !slices.Contains(refused, chunks[i].Attempt) {
			chunks[i] = kept[k]
			k++
		}
	}
	if len(refused) > 0 {
		return &FencedError{Attempts: refused}
	}
	return nil
}

// appendLogs numbers chunks after each run's highest seq and inserts them. On PostgreSQL an
// advisory lock per run (taken in run id order) keeps two servers appending to one run from
// picking the same numbers; on SQLite the one writer does.
func appendLogs(ctx context.Context, tx db, chunks []run.LogChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	var runs []int64
	for _, c := range chunks {
		if !slices.Contains(runs, c.RunID) {
			runs = append(runs, c.RunID)
		}
	}
	slices.Sort(runs)
	next := make(map[int64]int64, len(runs))
	for _, id := range runs {
		if tx.pg {
			if _, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock(?, ?)", advisoryLogs, int32(id)); err != nil {
				return err
			}
		}
		var last int64
		if err := tx.queryRow(ctx, "SELECT COALESCE(MAX(seq), 0) FROM log_chunks WHERE run_id = ?", id).Scan(&last); err != nil {
			return err
		}
		next[id] = last
	}
	at := now()
	for i := range chunks {
		c := &chunks[i]
		next[c.RunID]++
		c.Seq = next[c.RunID]
		if c.At.IsZero() {
			c.At = at
		}
		c.At = c.At.UTC()
	}
	for start := 0; start < len(chunks); start += logInsertBatch {
		batch := chunks[start:min(start+logInsertBatch, len(chunks))]
		values := make([]string, len(batch))
		args := make([]any, 0, 5*len(batch))
		for i, c := range batch {
			values[i] = "(?, ?, ?, ?, ?)"
			data := c.Data
			if data == nil {
				data = []byte{}
			}
			args = append(args, c.RunID, c.Seq, nullID(c.JobID), data, tx.ts(c.At))
		}
		if _, err := tx.exec(ctx, "INSERT INTO log_chunks (run_id, seq, job_id, data, at) VALUES "+
			strings.Join(values, ", "), args...); err != nil {
			return err
		}
	}
	return nil
}

// LogRead returns up to limit chunks of a run with Seq > afterSeq, in order. A limit of 0 or
// less means 1000; more than 10000 is read as 10000.
func (s *Store) LogRead(ctx context.Context, runID, afterSeq int64, limit int) ([]run.LogChunk, error) {
	switch {
	case limit <= 0:
		limit = 1000
	case limit > 10000:
		limit = 10000
	}
	out, err := queryAll(ctx, s.reader(), func(row scanner, c *run.LogChunk) error {
		return row.Scan(&c.RunID, &c.Seq, &c.JobID, &c.Data, timeScan{&c.At})
	}, `SELECT run_id, seq, COALESCE(job_id, 0), data, at FROM log_chunks
		WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`, runID, afterSeq, limit)
	if err != nil {
		return nil, wrap("read log", err)
	}
	return out, nil
}

// logExpireBatch is how many runs one LogExpire transaction handles.
const logExpireBatch = 50

// LogExpire deletes the log chunks of up to logExpireBatch runs that finished before before and
// whose log is still kept, and records on each run when its log expired. It returns how many
// runs it expired: call it again until that is 0. Each call is one relaxed transaction
// (nothing is acknowledged to anybody), so a long backlog is worked off in short steps.
func (s *Store) LogExpire(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.writeRelaxed(ctx, func(tx db) error {
		ids, err := queryAll(ctx, tx, func(row scanner, id *int64) error { return row.Scan(id) },
			`SELECT id FROM runs WHERE log_expired_at IS NULL AND finished_at IS NOT NULL AND finished_at < ?
			ORDER BY finished_at LIMIT ?`, tx.ts(before), logExpireBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if _, err := tx.exec(ctx, "DELETE FROM log_chunks WHERE run_id IN "+in, args...); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE runs SET log_expired_at = ? WHERE id IN "+in, append([]any{tx.ts(now())}, args...)...); err != nil {
			return err
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, wrap("expire logs", err)
	}
	return n, nil
}
