package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
)

// writeThrough runs a logs.Writer over buf as a job does, writes out with it and closes it.
func writeThrough(t *testing.T, buf *logBuffer, limit int64, secrets []string, out func(w *logs.Writer)) {
	t.Helper()
	a := logs.NewAppender(buf, nil)
	a.JobLimit = limit
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	w := a.Writer(1, 2, secrets)
	out(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

// drain reads everything from buf as the uploader does (acknowledging each piece) and
// returns it; it fails the test on a piece larger than max.
func drain(t *testing.T, buf *logBuffer, max int) []byte {
	t.Helper()
	var got []byte
	for {
		off, data, done, err := buf.next(context.Background(), max)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return got
		}
		if off != int64(len(got)) || len(data) > max || len(data) == 0 {
			t.Fatalf("next: offset %d with %d bytes, after %d bytes read (max %d)", off, len(data), len(got), max)
		}
		got = append(got, data...)
		buf.setAcked(off + int64(len(data)))
	}
}

func TestBufferHoldsTheMaskedLogByteForByte(t *testing.T) {
	p := newPool(DefaultLogBuffer)
	buf, err := newLogBuffer(filepath.Join(t.TempDir(), "1.log"), p)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	writeThrough(t, buf, DefaultMaxJobLog, []string{"s3cret-value"}, func(w *logs.Writer) {
		for i := range 20000 {
			line := fmt.Sprintf("line %05d of the job, with the secret s3cret-value in it\n", i)
			w.Write([]byte(line))
			want.WriteString(strings.ReplaceAll(line, "s3cret-value", "***"))
		}
		w.Write([]byte("no newline at the end"))
		want.WriteString("no newline at the end")
	})
	buf.close()
	got := drain(t, buf, 1000)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("buffer holds %d bytes, want %d; first difference at %d", len(got), want.Len(), firstDiff(got, want.Bytes()))
	}
	length, sum, err := buf.sum()
	wantSum := sha256.Sum256(want.Bytes())
	if err != nil || length != int64(want.Len()) || sum != hex.EncodeToString(wantSum[:]) {
		t.Fatalf("sum = %d %s %v; want %d %x", length, sum, err, want.Len(), wantSum)
	}
	if p.pending != 0 {
		t.Fatalf("pool pending = %d after everything was acknowledged", p.pending)
	}
	// The server says it lost what it had (log_mismatch): everything is read again.
	buf.setAcked(0)
	if again := drain(t, buf, maxLogPut); !bytes.Equal(again, want.Bytes()) {
		t.Fatalf("after a reset the buffer gives %d bytes, want %d", len(again), want.Len())
	}
	if err := buf.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(buf.path); !os.IsNotExist(err) {
		t.Fatalf("the buffer file is still there: %v", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestBufferKeepsHeadAndTailPastTheLimit(t *testing.T) {
	buf, err := newLogBuffer(filepath.Join(t.TempDir(), "1.log"), newPool(DefaultLogBuffer))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 256 << 10
	writeThrough(t, buf, limit, nil, func(w *logs.Writer) {
		for i := range 50000 {
			fmt.Fprintf(w, "line %05d\n", i)
		}
	})
	buf.close()
	got := string(drain(t, buf, maxLogPut))
	if len(got) > limit+4096 {
		t.Fatalf("the log is %d bytes, over the limit %d", len(got), limit)
	}
	for _, want := range []string{"line 00000\n", "line 49999\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the limited log lacks %q", want)
		}
	}
	if strings.Contains(got, "line 25000\n") {
		t.Errorf("the limited log holds its middle")
	}
}

// A writer waits while the agent holds as many unacknowledged bytes as the bound allows, and
// goes on as the server acknowledges them; a job given up releases it.
func TestBufferBoundSlowsTheWriter(t *testing.T) {
	const bound = 1 << 20
	p := newPool(bound)
	buf, err := newLogBuffer(filepath.Join(t.TempDir(), "1.log"), p)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	var written atomic.Int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		writeThrough(t, buf, DefaultMaxJobLog, nil, func(w *logs.Writer) {
			for range 4 << 10 { // 4 MiB
				w.Write(line)
				written.Add(int64(len(line)))
			}
		})
	}()
	// Nothing is acknowledged: the writer stops near the bound.
	time.Sleep(700 * time.Millisecond)
	if n := buf.length(); n > bound+logs.MaxChunk*4 || n == 0 {
		t.Fatalf("with nothing acknowledged the buffer holds %d bytes (bound %d)", n, bound)
	}
	select {
	case <-finished:
		t.Fatal("the writer wrote 4 MiB past a 1 MiB bound with nothing acknowledged")
	default:
	}
	// Acknowledge as the uploader would: the writer finishes, the bound held throughout.
	go func() {
		for {
			off, data, done, err := buf.next(context.Background(), 64<<10)
			if err != nil || done {
				return
			}
			if pending := p.pendingNow(); pending > bound+4<<20 {
				t.Errorf("pending %d far over the bound", pending)
			}
			buf.setAcked(off + int64(len(data)))
		}
	}()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("the writer did not finish once bytes were acknowledged")
	}
	buf.close()
	if n := buf.length(); n != 4<<20 {
		t.Fatalf("the buffer holds %d bytes, want %d", n, 4<<20)
	}

	// A job given up: its blocked writer goes on, its bytes are dropped.
	p2 := newPool(bound)
	gone, _ := newLogBuffer(filepath.Join(t.TempDir(), "2.log"), p2)
	blocked := make(chan error, 1)
	chunk := run.LogChunk{Data: bytes.Repeat([]byte("y"), bound)}
	if err := gone.LogAppend(context.Background(), []run.LogChunk{chunk}); err != nil {
		t.Fatal(err)
	}
	go func() { blocked <- gone.LogAppend(context.Background(), []run.LogChunk{chunk}) }()
	time.Sleep(100 * time.Millisecond)
	gone.abandon()
	select {
	case err := <-blocked:
		if err != nil || gone.length() != bound {
			t.Fatalf("a write blocked on a given-up job: %v, length %d", err, gone.length())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a writer blocked on the bound stayed blocked after its job was given up")
	}
	if p2.pendingNow() != 0 {
		t.Fatalf("a given-up job leaves %d bytes pending", p2.pendingNow())
	}
}

func (p *pool) pendingNow() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

func TestBackoffDoublesWithJitter(t *testing.T) {
	b := &backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second}
	want := 500 * time.Millisecond
	for range 12 {
		d := b.pause()
		if d < want/2 || d > want*3/2 {
			t.Fatalf("pause %v outside %v ±50%%", d, want)
		}
		want = min(2*want, 30*time.Second)
	}
	b.reset()
	if d := b.pause(); d > 750*time.Millisecond {
		t.Fatalf("after reset the pause is %v", d)
	}
	// The pauses of many agents spread out.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[(&backoff{Base: time.Second, Max: time.Second}).pause().Round(10*time.Millisecond)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("20 first pauses take only %d values: no jitter", len(seen))
	}
}
