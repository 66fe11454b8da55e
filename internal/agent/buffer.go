package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/flowd/flowd/internal/run"
)

// pool bounds the log bytes the agent holds that the server has not acknowledged, across its
// jobs: a job's log writes wait while the bound is reached (its steps are slowed, no byte is
// dropped), and go on as uploads are acknowledged.
type pool struct {
	limit int64

	mu      sync.Mutex
	pending int64
	freed   chan struct{} // closed (and replaced) whenever pending goes down
}

func newPool(limit int64) *pool { return &pool{limit: limit, freed: make(chan struct{})} }

// reserve waits until n more bytes fit (or nothing is pending: a batch larger than the bound
// still goes) and counts them, or returns when stop is closed (then nothing is counted).
func (p *pool) reserve(n int64, stop <-chan struct{}) bool {
	for {
		p.mu.Lock()
		if p.pending == 0 || p.pending+n <= p.limit {
			p.pending += n
			p.mu.Unlock()
			return true
		}
		freed := p.freed
		p.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			return false
		}
	}
}

// add counts delta more pending bytes (negative: acknowledged or dropped).
func (p *pool) add(delta int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending += delta
	if delta < 0 {
		close(p.freed)
		p.freed = make(chan struct{})
	}
}

// logBuffer is one job attempt's log on its way to the server: an append-only file in the
// agent's work folder holding every byte of the log as masked by the job's logs.Writer, and
// the length the server has acknowledged. The whole log stays in the file until the job is
// finished (a log_mismatch asks for all of it again); a log is at most --max-job-log bytes
// and a little, since the Writer keeps its head and tail. It is the logs.Sink of the job's
// Appender: LogAppend appends, and the uploader reads from the acknowledged length on.
type logBuffer struct {
	path string
	f    *os.File
	pool *pool

	mu      sync.Mutex
	size    int64         // bytes in the file
	acked   int64         // bytes the server has stored, as it last said
	closed  bool          // the log is complete: no more LogAppend
	dropped bool          // the job was given up: appends are discarded
	drop    chan struct{} // closed with dropped
	changed chan struct{} // closed (and replaced) whenever size, acked or closed change
}

// newLogBuffer creates the buffer file path (an earlier one is replaced).
func newLogBuffer(path string, p *pool) (*logBuffer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: log buffer: %w", err)
	}
	return &logBuffer{path: path, f: f, pool: p, drop: make(chan struct{}), changed: make(chan struct{})}, nil
}

// LogAppend appends the chunks' bytes, in order, once the pool has room for them all; see
// logs.Sink. It appends all of them or none (a failed write is cut off again), so the
// Appender's retry of a failed batch never stores bytes twice.
func (b *logBuffer) LogAppend(ctx context.Context, chunks []run.LogChunk) error {
	var n int64
	for _, c := range chunks {
		n += int64(len(c.Data))
	}
	if n == 0 {
		return nil
	}
	// ctx is not waited on: its deadline is the Appender's per-commit one, and a log that
	// waits for the server must wait as long as it takes (the job is slowed meanwhile).
	if !b.pool.reserve(n, b.drop) {
		return nil // the job was given up: nothing more is sent
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped || b.closed {
		b.pool.add(-n)
		if b.dropped {
			return nil
		}
		return errors.New("agent: log buffer: append after the log was closed")
	}
	off := b.size
	for _, c := range chunks {
		if _, err := b.f.WriteAt(c.Data, off); err != nil {
			b.pool.add(-n)
			_ = b.f.Truncate(b.size)
			return fmt.Errorf("agent: log buffer %s: %w", b.path, err)
		}
		off += int64(len(c.Data))
	}
	b.size = off
	b.signal()
	return nil
}

// signal wakes whoever waits on changed; b.mu is held.
func (b *logBuffer) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// close marks the log complete: the uploader ends once the server has all of it.
func (b *logBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.signal()
}

// setAcked records that the server has n bytes (it may go back: a gap, a mismatch).
func (b *logBuffer) setAcked(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = max(0, min(n, b.size))
	if n == b.acked {
		return
	}
	if !b.dropped {
		b.pool.add(b.acked - n)
	}
	b.acked = n
	b.signal()
}

// next waits until there are bytes past the acknowledged length, and returns up to max of
// them with their offset; done is true when the log is closed and the server has all of it.
func (b *logBuffer) next(ctx context.Context, max int) (off int64, data []byte, done bool, err error) {
	for {
		b.mu.Lock()
		off, size, closed, changed := b.acked, b.size, b.closed, b.changed
		b.mu.Unlock()
		if off < size {
			data = make([]byte, min(int64(max), size-off))
			if _, err := b.f.ReadAt(data, off); err != nil {
				return 0, nil, false, fmt.Errorf("agent: log buffer %s: %w", b.path, err)
			}
			return off, data, false, nil
		}
		if closed {
			return off, nil, true, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, nil, false, context.Cause(ctx)
		}
	}
}

// length is the log's length.
func (b *logBuffer) length() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size
}

// sum is the SHA-256 (hex) of the whole log, the bytes the uploader sent.
func (b *logBuffer) sum() (length int64, sha string, err error) {
	b.mu.Lock()
	size := b.size
	b.mu.Unlock()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b.f, 0, size)); err != nil {
		return 0, "", fmt.Errorf("agent: log buffer %s: %w", b.path, err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// abandon gives the log up (the attempt is no longer live, or the agent stops): writers
// waiting for room go on, and later appends are discarded.
func (b *logBuffer) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return
	}
	b.dropped = true
	close(b.drop)
	b.pool.add(b.acked - b.size)
	b.signal()
}

// remove abandons the buffer and deletes its file.
func (b *logBuffer) remove() error {
	b.abandon()
	b.f.Close()
	if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
