package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Sink stores log chunks; the store implements it. LogAppend stores chunks in one transaction
// and assigns their Seq (per run, in the order given); the chunks' Seq fields are ignored.
type Sink interface {
	LogAppend(ctx context.Context, chunks []run.LogChunk) error
}

// fencedError is the error of a Sink that stored a batch except the chunks of attempts that
// are no longer their job's live attempt (the store's *FencedError): those are not retried.
type fencedError interface {
	error
	Fenced(attempt int64) bool
}

// ErrStopped is returned by writes that reach an Appender whose Run has returned.
var ErrStopped = errors.New("logs: appender stopped")

const (
	// MaxChunk is the largest chunk the Appender hands to a Sink, in bytes.
	MaxChunk = 64 << 10
	// queueLen bounds the chunks waiting for a commit; a Write blocks when it is full, so a
	// step that prints fast is slowed down rather than filling memory.
	queueLen = 64
	// maxBatchItems and maxBatchBytes bound one commit.
	maxBatchItems = 256
	maxBatchBytes = 4 << 20
	// commitTimeout bounds one LogAppend call. A failed one is tried again with a growing pause
	// (up to maxBackoff) until RetryFor has passed; while the Appender stops, commitAttempts
	// times at most.
	commitTimeout  = 30 * time.Second
	commitAttempts = 3
	maxBackoff     = 5 * time.Second
	// DefaultRetryFor is how long a failed commit is retried when RetryFor is not set.
	DefaultRetryFor = time.Minute
	// waiterMaxAge is how long a Changed channel may wait for a commit before it is closed
	// anyway (a spurious wake-up), so channels of runs that never change again are not kept.
	waiterMaxAge = time.Minute
)

// item is one entry of the Appender's queue: a chunk, or with barrier a mark that wakes done
// once everything queued before it is committed.
type item struct {
	chunk   run.LogChunk
	barrier bool
	done    chan error // nil, or buffered 1: gets the commit's outcome
	w       *Writer    // nil, or the Writer that handed the chunk over: told of the commit
}

// Appender is the one writer of log chunks: every Writer (and Line) hands chunks to it, and
// its Run goroutine commits them in batches, many chunks per transaction, so log writes stay
// off a step's hot path. After each commit it wakes the readers waiting on Changed.
type Appender struct {
	// JobLimit bounds each job's log, in bytes after masking (see Writer); 0 means
	// DefaultJobLimit. Set it before the first Writer.
	JobLimit int64
	// FlushDelay is how long a Writer keeps complete lines for more to batch with; 0 means
	// DefaultFlushDelay. A job whose output all comes within it (and less than MaxChunk) costs
	// no log commit of its own: its lines go with its end (Writer.Detach). Set it before the
	// first Writer.
	FlushDelay time.Duration
	// RetryFor is how long a commit that fails (the database down, its disk full) is retried
	// before its chunks are given up; 0 means DefaultRetryFor. Meanwhile Writes block, so a
	// step that prints waits for space rather than losing lines. Set it before Run.
	RetryFor time.Duration
	// OnChange, when set, is called by Notify with the run whose log or status changed, e.g.
	// to tell the other servers, whose readers this Appender cannot wake. It must not block.
	// Set it before Run.
	OnChange func(runID int64)

	sink   Sink
	logger *slog.Logger
	queue  chan item

	// closing guards the queue against sends after the final drain: senders hold it for
	// reading while they send; Run takes it for writing, then sets closed.
	closing sync.RWMutex
	closed  bool
	stopped chan struct{} // closed once Run has committed everything and returned

	// down is set (by Run's goroutine only) when a commit was given up, and cleared by the next
	// that succeeds: while it is set, commits are tried once, so an outage costs RetryFor once,
	// not once per batch.
	down bool

	mu      sync.Mutex
	waiters map[int64]*waiter
}

type waiter struct {
	ch    chan struct{}
	since time.Time
}

// NewAppender returns an Appender that commits to sink. Call Run to start it.
func NewAppender(sink Sink, logger *slog.Logger) *Appender {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Appender{
		sink:    sink,
		logger:  logger,
		queue:   make(chan item, queueLen),
		stopped: make(chan struct{}),
		waiters: make(map[int64]*waiter),
	}
}

// Run commits queued chunks until ctx is done, then commits everything still queued (with a
// fresh, bounded context) and returns nil. Writes that arrive later fail with ErrStopped. Run
// must be called once.
func (a *Appender) Run(ctx context.Context) error {
	sweep := time.NewTicker(waiterMaxAge / 2)
	defer sweep.Stop()
	commitCtx := context.WithoutCancel(ctx)
	for {
		select {
		case it := <-a.queue:
			a.commit(commitCtx, it, true)
		case <-sweep.C:
			a.sweep(time.Now())
		case <-ctx.Done():
			a.shutdown(commitCtx)
			return nil
		}
	}
}

// shutdown stops new sends, commits everything queued and wakes every reader.
func (a *Appender) shutdown(ctx context.Context) {
	locked := make(chan struct{})
	go func() {
		a.closing.Lock()
		a.closed = true
		a.closing.Unlock()
		close(locked)
	}()
	// Keep receiving so blocked senders can finish and release the read lock.
	for {
		select {
		case it := <-a.queue:
			a.commit(ctx, it, false)
			continue
		case <-locked:
		}
		break
	}
	for {
		select {
		case it := <-a.queue:
			a.commit(ctx, it, false)
			continue
		default:
		}
		break
	}
	close(a.stopped)
	a.sweep(time.Now().Add(2 * waiterMaxAge))
}

// commit commits first and whatever else is queued now, up to one batch; patient: see append.
func (a *Appender) commit(ctx context.Context, first item, patient bool) {
	batch := []item{first}
	size := len(first.chunk.Data)
gather:
	for len(batch) < maxBatchItems && size < maxBatchBytes {
		select {
		case it := <-a.queue:
			batch = append(batch, it)
			size += len(it.chunk.Data)
		default:
			break gather
		}
	}
	chunks := make([]run.LogChunk, 0, len(batch))
	for _, it := range batch {
		if !it.barrier {
			chunks = append(chunks, it.chunk)
		}
	}
	var err error
	if len(chunks) > 0 {
		err = a.append(ctx, chunks, patient)
	}
	// A sink that refuses the chunks of attempts no longer live (fencing) stores the others:
	// only the Writers of the refused ones hear of it.
	var fenced fencedError
	partial := errors.As(err, &fenced)
	for _, it := range batch {
		itErr := err
		if partial && (it.barrier || !fenced.Fenced(it.chunk.Attempt)) {
			itErr = nil
		}
		if it.done != nil {
			it.done <- itErr
		}
		if it.w != nil {
			it.w.committed(itErr)
		}
	}
	if err == nil || partial {
		runs := make(map[int64]bool)
		for _, c := range chunks {
			if !runs[c.RunID] {
				runs[c.RunID] = true
				a.Notify(c.RunID)
			}
		}
	}
}

// Notify wakes the readers waiting on Changed(runID), and tells OnChange. The Appender calls it
// after each commit; the scheduler calls it after it moves a run to a final status, so
// following readers end at once instead of at their next poll.
func (a *Appender) Notify(runID int64) {
	a.Wake(runID)
	if a.OnChange != nil {
		a.OnChange(runID)
	}
}

// Wake wakes the readers waiting on Changed(runID) in this process, and nothing else: for a
// change another server announced.
func (a *Appender) Wake(runID int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.waiters[runID]; ok {
		close(w.ch)
		delete(a.waiters, runID)
	}
}

// WakeAll wakes every reader waiting on Changed, so each reads again: for when announcements of
// other servers may have been missed.
func (a *Appender) WakeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, w := range a.waiters {
		close(w.ch)
		delete(a.waiters, id)
	}
}

// append calls the sink, retrying a failed call with a growing pause: for RetryFor when
// patient, else commitAttempts times (while stopping, so a dead database cannot hold up a
// shutdown), and once after an earlier commit was given up (see down). It gives up (and the
// chunks are lost) only when the store stays unavailable or full that long; the error is
// logged once per attempt, with what was tried.
func (a *Appender) append(ctx context.Context, chunks []run.LogChunk, patient bool) error {
	if a.down {
		cctx, cancel := context.WithTimeout(ctx, commitTimeout)
		err := a.sink.LogAppend(cctx, chunks)
		cancel()
		var fenced fencedError
		if errors.As(err, &fenced) {
			a.down = false // the store took the rest
			return err
		}
		if err != nil {
			a.logger.Error("append log chunks: the store still fails, log lines lost", "chunks", len(chunks), "err", err)
			return fmt.Errorf("logs: append: %w", err)
		}
		a.down = false
		a.logger.Info("append log chunks: the store takes log lines again")
		return nil
	}
	retryFor := a.RetryFor
	if retryFor <= 0 {
		retryFor = DefaultRetryFor
	}
	start := time.Now()
	pause := 200 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, commitTimeout)
		err = a.sink.LogAppend(cctx, chunks)
		cancel()
		var fenced fencedError
		if errors.As(err, &fenced) {
			return err // the rest is stored; the refused chunks must never be
		}
		if err == nil {
			if attempt > 1 {
				a.logger.Info("append log chunks: committed after retrying", "chunks", len(chunks), "attempts", attempt)
			}
			return nil
		}
		if patient && time.Since(start)+pause > retryFor || !patient && attempt == commitAttempts {
			break
		}
		a.logger.Warn("append log chunks failed; log writes wait and retry", "chunks", len(chunks), "attempt", attempt,
			"retry_in", pause, "err", err)
		time.Sleep(pause)
		pause = min(2*pause, maxBackoff)
	}
	a.logger.Error("append log chunks: giving up, log lines lost; the jobs they belong to fail", "chunks", len(chunks),
		"tried_for", time.Since(start).Round(time.Millisecond), "err", err)
	a.down = true
	return fmt.Errorf("logs: append: %w", err)
}

// sweep closes the Changed channels that were made before now-waiterMaxAge.
func (a *Appender) sweep(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, w := range a.waiters {
		if now.Sub(w.since) >= waiterMaxAge {
			close(w.ch)
			delete(a.waiters, id)
		}
	}
}

// send queues it, blocking while the queue is full. It fails with ErrStopped once Run has
// stopped, or with ctx's error.
func (a *Appender) send(ctx context.Context, it item) error {
	a.closing.RLock()
	defer a.closing.RUnlock()
	if a.closed {
		return ErrStopped
	}
	select {
	case a.queue <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sync waits until everything the caller queued before is committed. It returns the error of
// the commit that carried the barrier, if that one failed.
func (a *Appender) sync(ctx context.Context) error {
	done := make(chan error, 1)
	if err := a.send(ctx, item{barrier: true, done: done}); err != nil {
		return err
	}
	return await(ctx, done)
}

// await returns the error of the commit that carries done, or ctx's error if that comes first.
func await(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendAll queues chunks (at least one) in order and returns once the last is committed.
func (a *Appender) sendAll(ctx context.Context, chunks []run.LogChunk) error {
	var done chan error
	for _, c := range chunks {
		done = make(chan error, 1)
		if err := a.send(ctx, item{chunk: c, done: done}); err != nil {
			return err
		}
	}
	return await(ctx, done)
}

// Line appends one line of the server's own to runID's log (jobID 0 for the run itself) and
// returns once it is committed. A newline is added if text lacks one; text is not masked.
func (a *Appender) Line(ctx context.Context, runID, jobID int64, text string) error {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		text += "\n"
	}
	now := time.Now()
	var chunks []run.LogChunk
	for _, piece := range split([]byte(text)) {
		chunks = append(chunks, run.LogChunk{RunID: runID, JobID: jobID, Data: piece, At: now})
	}
	return a.sendAll(ctx, chunks)
}

// Append queues chunks (already masked, each at most MaxChunk bytes) and returns once they are
// committed, in order. The scheduler uses it for a job's last chunks (Writer.Detach) when it
// could not commit them with the job's end.
func (a *Appender) Append(ctx context.Context, chunks []run.LogChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	return a.sendAll(ctx, chunks)
}

// Changed returns a channel that is closed the next time chunks of runID are committed. It is a
// broadcast: every caller until then gets the same channel. It may also be closed without new
// chunks (at least once a minute, and when the Appender stops), so a reader re-checks.
func (a *Appender) Changed(runID int64) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.waiters[runID]
	if !ok {
		w = &waiter{ch: make(chan struct{}), since: time.Now()}
		select {
		case <-a.stopped:
			close(w.ch) // nobody will close it
			return w.ch
		default:
		}
		a.waiters[runID] = w
	}
	return w.ch
}

// split cuts data into pieces of at most MaxChunk bytes, after a newline where it can.
func split(data []byte) [][]byte { return run.SplitLog(data, MaxChunk) }
