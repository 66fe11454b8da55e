package store

import (
	"context"
	"fmt"
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

// appendLogs numbers chunks after each run's highest seq and inserts them: one statement per
// run (per logInsertBatch chunks) that reads the highest seq and inserts after it. On
// PostgreSQL an advisory lock per run (taken in run id order) keeps two servers appending to
// one run from picking the same numbers; on SQLite the one writer does.
func appendLogs(ctx context.Context, tx db, chunks []run.LogChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	byRun := map[int64][]int{} // run → the indexes of its chunks, in order
	var runs []int64
	at := now()
	for i := range chunks {
		c := &chunks[i]
		if _, ok := byRun[c.RunID]; !ok {
			runs = append(runs, c.RunID)
		}
		byRun[c.RunID] = append(byRun[c.RunID], i)
		if c.At.IsZero() {
			c.At = at
		}
		c.At = c.At.UTC()
	}
	slices.Sort(runs)
	for _, id := range runs {
		if tx.pg {
			if _, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock(?, ?)", advisoryLogs, int32(id)); err != nil {
				return err
			}
		}
		idx := byRun[id]
		for start := 0; start < len(idx); start += logInsertBatch {
			if err := insertChunks(ctx, tx, id, chunks, idx[start:min(start+logInsertBatch, len(idx))]); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertChunks inserts chunks[i] for each i of idx (chunks of run runID, in order), numbered
// after the run's highest seq in the same statement, and sets their Seq.
func insertChunks(ctx context.Context, tx db, runID int64, chunks []run.LogChunk, idx []int) error {
	var b strings.Builder
	b.WriteString("INSERT INTO log_chunks (run_id, seq, job_id, data, at, attempt_id) SELECT m.run_id, m.last + v.column1, v.column2, v.column3, v.column4, v.column5 FROM (VALUES ")
	args := make([]any, 0, 5*len(idx)+1)
	for k, i := range idx {
		switch {
		case k > 0:
			b.WriteString(", (?, ?, ?, ?, ?)")
		case tx.pg: // the first row types the columns
			b.WriteString("(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BYTEA), CAST(? AS TIMESTAMPTZ), CAST(? AS BIGINT))")
		default:
			b.WriteString("(?, ?, ?, ?, ?)")
		}
		c := chunks[i]
		data := c.Data
		if data == nil {
			data = []byte{}
		}
		args = append(args, k+1, nullID(c.JobID), data, tx.ts(c.At), nullID(c.Attempt))
	}
	runArg := "?"
	if tx.pg {
		runArg = "CAST(? AS BIGINT)"
	}
	b.WriteString(") AS v CROSS JOIN (SELECT " + runArg + " AS run_id, COALESCE(MAX(seq), 0) AS last FROM log_chunks WHERE run_id = ?) AS m RETURNING seq")
	args = append(args, runID, runID)
	seqs, err := queryAll(ctx, tx, func(row scanner, seq *int64) error { return row.Scan(seq) }, b.String(), args...)
	if err != nil {
		return err
	}
	if len(seqs) != len(idx) {
		return fmt.Errorf("inserted %d log chunks of run %d, want %d", len(seqs), runID, len(idx))
	}
	first := slices.Min(seqs)
	for k, i := range idx {
		chunks[i].Seq = first + int64(k)
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
