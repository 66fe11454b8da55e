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

// Read says which chunks Chunks passes on and whether it waits for more.
type Read struct {
	// After skips the chunks with Seq <= After: a reader that reconnects resumes after the last
	// chunk it got.
	After int64
	// Job, when OnlyJob is set, passes on only the chunks of that job (0: the run's own lines).
	Job     int64
	OnlyJob bool
	// Follow waits for new chunks until the run has ended and all of its chunks are passed on.
	Follow bool
	// Idle, when set with OnIdle, is how long a follow may pass nothing on before OnIdle is
	// called (to keep a connection open through proxies); then the count starts again.
	Idle   time.Duration
	OnIdle func() error
}

// Chunks passes runID's log chunks to write in Seq order, a page at a time, so its memory does
// not grow with the log. flush, if not nil, is called after each page that passed something on,
// so an HTTP client sees output at once. Without Follow it returns once what exists is passed
// on; with Follow it then waits for new chunks (woken by changed, which may be nil, such as
// Appender.Changed, and by a poll every second) and returns once the run is terminal and all of
// its chunks are passed on. It returns the run's status read before the last chunks: when that
// is terminal, every chunk of the run was passed on. It returns ctx's error if ctx ends first,
// and write's error if a write fails.
func Chunks(ctx context.Context, src Source, changed func(runID int64) <-chan struct{}, runID int64, rd Read, write func(run.LogChunk) error, flush func()) (run.Status, error) {
	after := rd.After
	lastOutput := time.Now()
	for {
		var wake <-chan struct{}
		// Take the wake-up channel first, then the status, then the chunks: a commit after the
		// reads closes the channel, and a run seen terminal here has all its chunks committed
		// already (the scheduler commits them before it finishes the run).
		if rd.Follow && changed != nil {
			wake = changed(runID)
		}
		status, err := src.RunStatus(ctx, runID)
		if err != nil {
			return "", fmt.Errorf("logs: stream run %d: %w", runID, err)
		}
		for {
			chunks, err := src.LogRead(ctx, runID, after, pageSize)
			if err != nil {
				return "", fmt.Errorf("logs: stream run %d: %w", runID, err)
			}
			wrote := false
			for _, c := range chunks {
				after = c.Seq
				if rd.OnlyJob && c.JobID != rd.Job {
					continue
				}
				if err := write(c); err != nil {
					return "", fmt.Errorf("logs: stream run %d: %w", runID, err)
				}
				wrote = true
			}
			if wrote {
				lastOutput = time.Now()
				if flush != nil {
					flush()
				}
			}
			if len(chunks) < pageSize {
				break
			}
		}
		if !rd.Follow || status.Terminal() {
			return status, nil
		}
		wait := pollEvery
		if rd.Idle > 0 && rd.OnIdle != nil {
			idleIn := rd.Idle - time.Since(lastOutput)
			if idleIn <= 0 {
				if err := rd.OnIdle(); err != nil {
					return "", fmt.Errorf("logs: stream run %d: %w", runID, err)
				}
				if flush != nil {
					flush()
				}
				lastOutput, idleIn = time.Now(), rd.Idle
			}
			wait = min(wait, idleIn)
		}
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		}
		t.Stop()
	}
}

// Stream writes runID's log to w from the start as Chunks passes it on (see there).
func Stream(ctx context.Context, src Source, changed func(runID int64) <-chan struct{}, runID int64, follow bool, w io.Writer, flush func()) error {
	_, err := Chunks(ctx, src, changed, runID, Read{Follow: follow}, func(c run.LogChunk) error {
		_, err := w.Write(c.Data)
		return err
	}, flush)
	return err
}
