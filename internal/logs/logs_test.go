package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

func TestMask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		secrets []string
		want    string
	}{
		{"none", "hello world", nil, "hello world"},
		{"empty secret ignored", "hello", []string{""}, "hello"},
		{"one", "token=abc123;", []string{"abc123"}, "token=***;"},
		{"every occurrence", "abc abc abc", []string{"abc"}, "*** *** ***"},
		{"longest first", "pass=hunter2!", []string{"hunter", "hunter2"}, "pass=***!"},
		{"shorter inside longer", "xx hunter xx hunter2", []string{"hunter", "hunter2"}, "xx *** xx ***"},
		{"overlapping", "abcdef", []string{"abcd", "cdef"}, "***"},
		{"overlapping self", "aaaaa", []string{"aaa"}, "***"},
		{"adjacent", "[s1s2]", []string{"s1", "s2"}, "[***]"},
		{"multi-line whole", "k=line1\nline2\n", []string{"line1\nline2"}, "k=***\n"},
		{"multi-line each line", "a: line1\nb:   line2  \n", []string{"line1\r\n  line2\n\n"}, "a: ***\nb:   ***  \n"},
		{"no match", "nothing here", []string{"secret"}, "nothing here"},
		{"regexp characters are literal", "a.b a*b", []string{"a*b"}, "a.b ***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := []byte(tt.data)
			got := Mask(data, tt.secrets)
			if string(got) != tt.want {
				t.Errorf("Mask(%q, %q) = %q, want %q", tt.data, tt.secrets, got, tt.want)
			}
			if string(data) != tt.data {
				t.Errorf("Mask changed its input")
			}
		})
	}
}

// memSink is an in-memory Sink and Source, a test double of interfaces this package owns (the
// real store passes its own tests).
type memSink struct {
	mu      sync.Mutex
	chunks  []run.LogChunk
	seq     map[int64]int64
	status  map[int64]run.Status
	commits int
	discard bool // keep nothing, only count

	bytes    int64
	maxChunk int

	gate    chan struct{} // if set, LogAppend signals entered and waits on it
	entered chan struct{}

	failing  bool // LogAppend fails with errFull, as a store with a full disk does
	attempts int  // calls to LogAppend

	afterRead func(s *memSink, got []run.LogChunk) // called (unlocked) after LogRead
}

func newSink() *memSink {
	return &memSink{seq: map[int64]int64{}, status: map[int64]run.Status{}}
}

func (s *memSink) LogAppend(ctx context.Context, chunks []run.LogChunk) error {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.failing {
		return errFull
	}
	s.commits++
	for _, c := range chunks {
		s.bytes += int64(len(c.Data))
		s.maxChunk = max(s.maxChunk, len(c.Data))
		if s.discard {
			continue
		}
		s.seq[c.RunID]++
		c.Seq = s.seq[c.RunID]
		c.Data = bytes.Clone(c.Data)
		s.chunks = append(s.chunks, c)
	}
	return nil
}

func (s *memSink) LogRead(ctx context.Context, runID, afterSeq int64, limit int) ([]run.LogChunk, error) {
	s.mu.Lock()
	var out []run.LogChunk
	for _, c := range s.chunks {
		if c.RunID == runID && c.Seq > afterSeq && len(out) < limit {
			out = append(out, c)
		}
	}
	hook := s.afterRead
	s.mu.Unlock()
	if hook != nil {
		hook(s, out)
	}
	return out, nil
}

func (s *memSink) RunStatus(ctx context.Context, runID int64) (run.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[runID]
	if !ok {
		return "", fmt.Errorf("run %d: not found", runID)
	}
	return st, nil
}

func (s *memSink) setStatus(runID int64, st run.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[runID] = st
}

// text returns the log of runID (job jobID, or every job when jobID < 0) and its chunks.
func (s *memSink) text(runID, jobID int64) (string, []run.LogChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	var cs []run.LogChunk
	for _, c := range s.chunks {
		if c.RunID == runID && (jobID < 0 || c.JobID == jobID) {
			b.Write(c.Data)
			cs = append(cs, c)
		}
	}
	return b.String(), cs
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startAppender runs an Appender over sink until the test ends, after calling each of configure.
func startAppender(t *testing.T, sink Sink, configure ...func(*Appender)) *Appender {
	t.Helper()
	a := NewAppender(sink, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	for _, f := range configure {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("appender: %v", err)
		}
	})
	return a
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeInPieces writes data to w cut at random points.
func writeInPieces(t *testing.T, w *Writer, data []byte, rng *rand.Rand) {
	t.Helper()
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(300))
		if rng.IntN(50) == 0 {
			n = min(len(data), 1+rng.IntN(100_000))
		}
		if k, err := w.Write(data[:n]); err != nil || k != n {
			t.Fatalf("write: %d, %v", k, err)
		}
		data = data[n:]
	}
}

func TestWriterLinesInOrder(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	want := map[int64]string{}
	var wg sync.WaitGroup
	for job := int64(1); job <= 3; job++ {
		var b strings.Builder
		for i := range 5000 {
			fmt.Fprintf(&b, "job %d line %d %s\n", job, i, strings.Repeat("x", i%97))
		}
		b.WriteString(strings.Repeat("L", 200_000) + "\n") // a line longer than a chunk
		b.WriteString("last line\n")
		text := b.String()
		want[job] = text
		wg.Go(func() {
			w := a.Writer(7, job, nil)
			writeInPieces(t, w, []byte(text), rand.New(rand.NewPCG(uint64(job), 1)))
			if err := w.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	wg.Wait()
	for job, w := range want {
		got, chunks := sink.text(7, job)
		if got != w {
			t.Errorf("job %d: log differs from what was written (%d bytes, want %d)", job, len(got), len(w))
		}
		for i, c := range chunks {
			if len(c.Data) > MaxChunk {
				t.Errorf("job %d chunk %d: %d bytes, over %d", job, i, len(c.Data), MaxChunk)
			}
			if i > 0 && c.Seq <= chunks[i-1].Seq {
				t.Errorf("job %d: seq %d after %d", job, c.Seq, chunks[i-1].Seq)
			}
		}
		if len(chunks) < 4 {
			t.Errorf("job %d: %d chunks, expected the output cut up", job, len(chunks))
		}
	}
	sink.mu.Lock()
	t.Logf("%d commits for %d chunks", sink.commits, sink.seq[7])
	sink.mu.Unlock()
}

func TestWriterCompleteLineVisibleWithoutClose(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	w := a.Writer(1, 1, nil)
	defer w.Close()
	begin := time.Now()
	w.Write([]byte("hello\npart"))
	waitFor(t, 2*time.Second, "the complete line", func() bool { s, _ := sink.text(1, 1); return s == "hello\n" })
	t.Logf("visible after %v", time.Since(begin))
}

func TestWriterPartialLineAfterIdle(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	w := a.Writer(1, 1, nil)
	begin := time.Now()
	w.Write([]byte("Continue? [y/N] "))
	waitFor(t, 5*time.Second, "the partial line", func() bool { s, _ := sink.text(1, 1); return s == "Continue? [y/N] " })
	if d := time.Since(begin); d < idleFlush {
		t.Errorf("partial line handed over after %v, before %v of idle", d, idleFlush)
	}
	w.Write([]byte("y\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := sink.text(1, 1); s != "Continue? [y/N] y\n" {
		t.Errorf("log %q", s)
	}
}

func TestWriterMasksSecretSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	const line = "login with s3cr3t-t0ken now\n"
	secrets := []string{"s3cr3t-t0ken", "", "other"}
	const want = "login with *** now\n"
	sink := newSink()
	a := startAppender(t, sink)
	for cut := 1; cut < len(line); cut++ {
		w := a.Writer(2, int64(cut), secrets)
		w.Write([]byte(line[:cut]))
		w.Write([]byte(line[cut:]))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := sink.text(2, int64(cut)); got != want {
			t.Errorf("cut at %d: %q, want %q", cut, got, want)
		}
	}
}

// A partial line handed over after idle keeps back what may be the start of a secret.
func TestWriterIdleFlushHoldsBackSecretStart(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	w := a.Writer(3, 1, []string{"hunter2"})
	w.Write([]byte("password: hun"))
	waitFor(t, 5*time.Second, "the idle partial line", func() bool { s, _ := sink.text(3, 1); return s != "" })
	if s, _ := sink.text(3, 1); s != "password: " {
		t.Errorf("after idle: %q, want %q", s, "password: ")
	}
	w.Write([]byte("ter2 ok\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := sink.text(3, 1); s != "password: *** ok\n" {
		t.Errorf("log %q", s)
	}
}

func TestCloseWaitsForCommit(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.gate, sink.entered = make(chan struct{}), make(chan struct{})
	a := startAppender(t, sink)
	w := a.Writer(4, 1, nil)
	w.Write([]byte("one\ntwo\nthree"))
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	<-sink.entered // a commit is in progress and cannot finish
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the commit was held", err)
	default:
	}
	close(sink.gate) // let every commit through
	go func() {
		for range sink.entered {
		}
	}()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if s, _ := sink.text(4, 1); s != "one\ntwo\nthree" {
		t.Errorf("after Close: %q", s)
	}
	if _, err := w.Write([]byte("late")); err != ErrClosed {
		t.Errorf("write after close: %v", err)
	}
}

func TestWriterMemoryStaysFlat(t *testing.T) {
	t.Parallel()
	const total = 200 << 20
	sink := newSink()
	sink.discard = true
	a := startAppender(t, sink)
	a.JobLimit = 1 << 30 // all of it is stored: this is about the path to the store
	w := a.Writer(5, 1, []string{"secret-value"})
	var line bytes.Buffer
	for i := 0; line.Len() < 32<<10; i++ {
		fmt.Fprintf(&line, "%06d some build output with a secret-value in it and more text\n", i)
	}
	written, peak := writeMeasuringHeap(t, w, line.Bytes(), total)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	t.Logf("wrote %d MiB, peak HeapInuse after GC %.1f MiB, %d commits, largest chunk %d",
		written>>20, float64(peak)/(1<<20), sink.commits, sink.maxChunk)
	if peak > 64<<20 {
		t.Errorf("HeapInuse reached %.1f MiB while writing, want < 64 MiB", float64(peak)/(1<<20))
	}
	if sink.bytes < int64(written)/2 || sink.maxChunk > MaxChunk {
		t.Errorf("sink got %d bytes for %d written, largest chunk %d", sink.bytes, written, sink.maxChunk)
	}
}

// writeMeasuringHeap writes block to w until total bytes are written, then closes w. It returns
// what it wrote and the largest HeapInuse it saw after a GC, every 16 MiB.
func writeMeasuringHeap(t *testing.T, w *Writer, block []byte, total int) (written int, peak uint64) {
	t.Helper()
	var m runtime.MemStats
	for next := 0; written < total; written += len(block) {
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
		if written >= next {
			runtime.GC()
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			next += 16 << 20
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return written, peak
}

func TestLineAndChanged(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	ch := a.Changed(6)
	if a.Changed(6) != ch {
		t.Error("Changed is not a broadcast: two channels for one run")
	}
	other := a.Changed(99)
	if err := a.Line(context.Background(), 6, 0, "the server stopped"); err != nil {
		t.Fatal(err)
	}
	if s, _ := sink.text(6, 0); s != "the server stopped\n" {
		t.Errorf("after Line: %q", s)
	}
	<-ch // closed by the commit; the test times out otherwise
	select {
	case <-other:
		t.Error("Changed of another run was closed")
	default:
	}
	if a.Changed(6) == ch {
		t.Error("Changed after a commit returned the closed channel")
	}
}

func TestAppenderStopCommitsQueued(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := NewAppender(sink, nil)
	w := a.Writer(8, 1, nil)
	// Queue output before Run starts, then stop it at once: the drain commits it.
	w.Write([]byte(strings.Repeat("x", MaxChunk+10) + "\n"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := sink.text(8, 1); len(s) != MaxChunk {
		t.Errorf("committed %d bytes, want the first full chunk %d", len(s), MaxChunk)
	}
	if err := w.Close(); err != ErrStopped {
		t.Errorf("close after stop: %v, want ErrStopped", err)
	}
	if err := a.Line(context.Background(), 8, 0, "x"); err != ErrStopped {
		t.Errorf("line after stop: %v", err)
	}
	select {
	case <-a.Changed(8):
	default:
		t.Error("Changed after stop blocks forever")
	}
}

func TestStreamWithoutFollow(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	var want strings.Builder
	for i := range 300 { // more chunks than a page
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if err := a.Line(context.Background(), 9, 1, line); err != nil {
			t.Fatal(err)
		}
	}
	sink.setStatus(9, run.Running)
	var out bytes.Buffer
	flushes := 0
	if err := Stream(context.Background(), sink, a.Changed, 9, false, &out, func() { flushes++ }); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("stream: %d bytes, want %d", out.Len(), want.Len())
	}
	if flushes < 300/pageSize {
		t.Errorf("%d flushes, want one per page", flushes)
	}
}

func TestStreamFollowEndsWhenRunEnds(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	sink.setStatus(10, run.Running)
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Stream(context.Background(), sink, a.Changed, 10, true, &out, nil) }()

	w := a.Writer(10, 1, nil)
	var want strings.Builder
	for i := range 2000 {
		line := fmt.Sprintf("step output %d\n", i)
		want.WriteString(line)
		w.Write([]byte(line))
		if i == 10 {
			waitFor(t, 5*time.Second, "the first lines to stream", func() bool { return strings.Contains(out.String(), "output 10\n") })
		}
	}
	if err := w.Close(); err != nil { // the scheduler closes the writer first…
		t.Fatal(err)
	}
	sink.setStatus(10, run.Success) // …then finishes the run
	a.Notify(10)
	begin := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d >= pollEvery {
			t.Errorf("Stream ended %v after Notify; it waited for the poll", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not end after the run finished")
	}
	if out.String() != want.String() {
		t.Errorf("streamed %d bytes, want %d", len(out.String()), want.Len())
	}
}

// A run that finishes between Stream's reads must not lose its last chunks: Stream reads the
// status before the chunks.
func TestStreamFollowRunEndsBetweenReads(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.setStatus(12, run.Running)
	sink.LogAppend(context.Background(), []run.LogChunk{{RunID: 12, Data: []byte("first\n")}})
	var once sync.Once
	sink.afterRead = func(s *memSink, got []run.LogChunk) {
		// Right after Stream has read everything there is, the job commits its last chunk
		// and the run finishes.
		once.Do(func() {
			s.LogAppend(context.Background(), []run.LogChunk{{RunID: 12, Data: []byte("last\n")}})
			s.setStatus(12, run.Failed)
		})
	}
	var out bytes.Buffer
	if err := Stream(context.Background(), sink, nil, 12, true, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "first\nlast\n" {
		t.Errorf("stream %q, want both chunks", out.String())
	}
}

func TestStreamFollowCanceled(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.setStatus(13, run.Running)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Stream(ctx, sink, nil, 13, true, io.Discard, nil) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Stream after cancel: %v", err)
	}
	if err := Stream(context.Background(), sink, nil, 404, true, io.Discard, nil); err == nil {
		t.Error("Stream of an unknown run did not fail")
	}
}

type io_discard struct{}

func (io_discard) Write(p []byte) (int, error) { return len(p), nil }

// syncBuffer is a Writer that may be read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
