package logs

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Source reads logs and run status; the store implements it.
type Source interface {
	// LogRead returns up to limit chunks of runID with Seq > afterSeq, in Seq order.
	LogRead(ctx context.Context, runID, afterSeq int64, limit int) ([]run.LogChunk, error)
	// RunStatus returns the run's status.
	RunStatus(ctx context.Context, runID int64) (run.Status, error)
}

const (
	// pageSize is how many chunks Stream reads at a time (at most pageSize*MaxChunk bytes).
	pageSize = 64
	// pollEvery is how often a following Stream looks for new chunks without a wake-up, for
	// chunks written by another process (an agent's server, another flowd on PostgreSQL).
	pollEvery = time.Second
)

// Stream writes runID's log to w from the start, a page of chunks at a time, so its memory does
// not grow with the log. flush, if not nil, is called after each page that wrote something, so
// an HTTP client sees output at once. Without follow it returns once what exists is written.
// With follow it then waits for new chunks (woken by changed, which may be nil, such as
// Appender.Changed, and by a poll every second) and returns once the run is terminal and all of
// its chunks are written. It returns ctx's error if ctx ends first, and w's error if a write
// fails.
func Stream(ctx context.Context, src Source, changed func(runID int64) <-chan struct{}, runID int64, follow bool, w io.Writer, flush func()) error {
	var after int64
	for {
		var wake <-chan struct{}
		var status run.Status
		if follow {
			// Take the wake-up channel first, then the status, then the chunks: a commit
			// after the reads closes the channel, and a run seen terminal here has all its
			// chunks committed already (the scheduler commits them before it finishes the run).
			if changed != nil {
				wake = changed(runID)
			}
			var err error
			if status, err = src.RunStatus(ctx, runID); err != nil {
				return fmt.Errorf("logs: stream run %d: %w", runID, err)
			}
		}
		for {
			chunks, err := src.LogRead(ctx, runID, after, pageSize)
			if err != nil {
				return fmt.Errorf("logs: stream run %d: %w", runID, err)
			}
			for _, c := range chunks {
				if _, err := w.Write(c.Data); err != nil {
					return fmt.Errorf("logs: stream run %d: %w", runID, err)
				}
				after = c.Seq
			}
			if len(chunks) > 0 && flush != nil {
				flush()
			}
			if len(chunks) < pageSize {
				break
			}
		}
		if !follow || status.Terminal() {
			return nil
		}
		t := time.NewTimer(pollEvery)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}
