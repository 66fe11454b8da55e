package logs

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/internal/run"
)

const (
	// DefaultFlushDelay is how long complete lines wait in a Writer for more to batch with
	// (Appender.FlushDelay); with the commit that follows, output is in the store within about
	// 250 ms of being written.
	DefaultFlushDelay = 100 * time.Millisecond
	// idleFlush is how long a partial line (no newline yet) waits for the rest before it is
	// handed over on its own, so prompts and progress output show up.
	idleFlush = 500 * time.Millisecond
)

// ErrClosed is returned by a Write after Close.
var ErrClosed = errors.New("logs: writer closed")

// Writer is an io.WriteCloser for one job's output. It cuts the stream into whole lines, masks
// secret values and hands chunks of at most MaxChunk bytes to its Appender. Complete lines are
// handed over within about 100 ms; a partial line after about 500 ms without output, or when it
// reaches MaxChunk. When the end of a partial line could be the start of a secret, those bytes
// wait for the rest of the line (or Close), so a secret printed in two pieces is still masked.
// Write blocks while the Appender is behind (or retrying a failed commit), so memory stays flat
// however much a step prints; once a commit of its chunks has failed for good, Write returns
// that error. Writes and Close may come from different goroutines.
//
// The log is limited to the Appender's JobLimit: past its first half the output is held in a
// ring of the other half, and stored after a marker line when the Writer ends (see limit.go).
type Writer struct {
	a            *Appender
	runID, jobID int64
	attempt      int64           // the job attempt whose output this is; see SetAttempt
	onCommitErr  func(err error) // called once, on the first failed commit
	pats         [][]byte
	limit        int64
	flushDelay   time.Duration

	headLeft int64  // bytes the head may still store
	tail     *ring  // nil until the head is full
	scratch  []byte // masked output on its way into tail

	mu        sync.Mutex
	buf       []byte // output not handed over yet, at most MaxChunk bytes
	lastWrite time.Time
	timer     *time.Timer
	armed     bool
	closed    bool
	err       error // the first failure to hand over a chunk

	commitErr atomic.Pointer[error] // the first failed commit of one of its chunks
	inFlight  atomic.Int64          // chunks handed over whose commit has not ended yet
}

// Writer returns a Writer for the output of job jobID of run runID (jobID 0: the run's own
// lines), masking the values in secrets (see Mask). The caller must Close it.
func (a *Appender) Writer(runID, jobID int64, secrets []string) *Writer {
	limit := a.JobLimit
	if limit <= 0 {
		limit = DefaultJobLimit
	}
	delay := a.FlushDelay
	if delay <= 0 {
		delay = DefaultFlushDelay
	}
	w := &Writer{a: a, runID: runID, jobID: jobID, pats: patterns(secrets), limit: limit, flushDelay: delay,
		headLeft: limit - tailSize(limit), buf: make([]byte, 0, MaxChunk)}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// SetAttempt makes the Writer's chunks those of job attempt id, which the store refuses once
// that attempt is no longer live, and sets a function called (once, from the Appender's
// goroutine; it must not block) with the first error that kept a chunk from being committed:
// the runner stops the job when it is the store's ErrFenced. Call it before the first Write.
func (w *Writer) SetAttempt(id int64, onCommitErr func(error)) {
	w.attempt, w.onCommitErr = id, onCommitErr
}

// Write buffers p and hands over whatever it completes; see Writer. It returns len(p) unless
// the Writer is closed or the Appender has stopped.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	if p := w.commitErr.Load(); p != nil {
		// Lines were lost: stop taking output, so the job ends with the error rather than
		// running on with a log that has a hole.
		return 0, *p
	}
	n := len(p)
	w.lastWrite = time.Now()
	for len(p) > 0 {
		k := min(MaxChunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == MaxChunk {
			cut := bytes.LastIndexByte(w.buf, '\n') + 1
			if cut == 0 {
				cut = len(w.buf) - heldBack(w.buf, w.pats, MaxChunk/2)
			}
			if err := w.handOver(cut); err != nil {
				return 0, err
			}
		}
	}
	if len(w.buf) > 0 && !w.armed {
		w.armed = true
		w.timer.Reset(w.flushDelay)
	}
	return n, nil
}

// tick runs the flush delay after output arrived: it hands over complete lines, and a partial line
// that has been idle for idleFlush.
func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if w.closed || w.err != nil {
		return
	}
	if cut := bytes.LastIndexByte(w.buf, '\n') + 1; cut > 0 {
		if w.handOver(cut) != nil {
			return
		}
	}
	if len(w.buf) == 0 {
		return
	}
	if time.Since(w.lastWrite) >= idleFlush {
		// Hand over the partial line, but keep what may be the start of a secret; it waits
		// for the next Write (which arms the timer again) or Close.
		if cut := len(w.buf) - heldBack(w.buf, w.pats, MaxChunk/2); cut > 0 {
			w.handOver(cut)
		}
		return
	}
	w.armed = true
	w.timer.Reset(w.flushDelay)
}

// handOver masks w.buf[:n], stores it (see store) and keeps the rest in w.buf.
func (w *Writer) handOver(n int) error {
	if n == 0 {
		return nil
	}
	if w.tail != nil {
		w.scratch = maskAppend(w.scratch[:0], w.buf[:n], w.pats)
		w.tail.write(w.scratch)
	} else if err := w.store(maskAppend(make([]byte, 0, n), w.buf[:n], w.pats)); err != nil {
		return err
	}
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	return nil
}

// store queues masked output as chunks while the head has room; the part that does not fit
// starts the tail, after the head's last whole line and the limit notice.
func (w *Writer) store(masked []byte) error {
	if w.tail != nil {
		w.tail.write(masked)
		return nil
	}
	if cut := headCut(masked, w.headLeft); cut < len(masked) {
		w.tail = &ring{size: int(tailSize(w.limit))}
		w.tail.write(masked[cut:])
		head := masked[:cut:cut]
		if cut > 0 && head[cut-1] != '\n' {
			head = append(head, '\n')
		}
		masked = append(head, limitNotice(w.limit)...)
	}
	w.headLeft -= int64(len(masked))
	return w.queue(masked)
}

// storeTail queues a limited log's tail, after the marker when output was dropped.
func (w *Writer) storeTail() error {
	if w.tail == nil {
		return nil
	}
	marker, kept := w.tail.tail(w.limit)
	w.tail = nil
	if marker != "" {
		if err := w.queue([]byte(marker)); err != nil {
			return err
		}
	}
	return w.queue(kept)
}

// queue hands data (masked) to the Appender as chunks.
func (w *Writer) queue(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	for _, c := range w.chunks(data) {
		w.inFlight.Add(1)
		if err := w.a.send(context.Background(), item{chunk: c, w: w}); err != nil {
			w.inFlight.Add(-1)
			w.err = err
			return err
		}
	}
	return nil
}

// chunks cuts masked output into chunks.
func (w *Writer) chunks(masked []byte) []run.LogChunk {
	now := time.Now()
	pieces := split(masked)
	out := make([]run.LogChunk, len(pieces))
	for i, piece := range pieces {
		out[i] = run.LogChunk{RunID: w.runID, JobID: w.jobID, Attempt: w.attempt, Data: piece, At: now}
	}
	return out
}

// Close hands over everything written and returns once it is committed to the store, or with
// the error that kept it from being committed. Close again returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.timer.Stop()
	err := w.err
	if err == nil {
		err = w.handOver(len(w.buf))
	}
	if err == nil {
		err = w.storeTail()
	}
	w.buf, w.scratch = nil, nil
	w.mu.Unlock()
	if err != nil {
		return err
	}
	// Once the Appender has stopped, everything queued before was committed by its drain.
	if err := w.a.sync(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
		return err
	}
	if p := w.commitErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Detach ends the Writer like Close, except that the output not handed over yet is returned,
// masked and cut into chunks of at most MaxChunk bytes, instead of being committed: the caller
// commits it (the scheduler, in the transaction that finishes the job: store.JobEnd.Logs), so a
// job's last lines cost no commit of their own. It returns once every chunk handed over before
// is committed (at once when there is none, as for a job whose whole output came within the
// flush delay), or with the error that kept one from being committed (the chunks returned are
// still the rest of the output). A log that reached its limit is ended as Close ends it, and
// Detach returns no chunks. After Detach, Close returns nil and Write fails.
func (w *Writer) Detach() ([]run.LogChunk, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, nil
	}
	w.closed = true
	w.timer.Stop()
	var rest []run.LogChunk
	err := w.err
	if masked := maskAppend(nil, w.buf, w.pats); err == nil && (w.tail != nil || int64(len(masked)) > w.headLeft) {
		// A limited log's tail is too large to ride along with the job's end.
		if err = w.store(masked); err == nil {
			err = w.storeTail()
		}
	} else if len(masked) > 0 {
		rest = w.chunks(masked)
	}
	w.buf, w.scratch = nil, nil
	w.mu.Unlock()
	if err != nil {
		return rest, err
	}
	if w.inFlight.Load() > 0 {
		// Once the Appender has stopped, everything queued before was committed by its drain.
		if err := w.a.sync(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
			return rest, err
		}
	}
	if p := w.commitErr.Load(); p != nil {
		return rest, *p
	}
	return rest, nil
}

// committed records the end of one chunk's commit, and a failure.
func (w *Writer) committed(err error) {
	if err != nil && w.commitErr.CompareAndSwap(nil, &err) && w.onCommitErr != nil {
		w.onCommitErr(err)
	}
	w.inFlight.Add(-1)
}
