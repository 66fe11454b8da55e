package logs

import (
	"strings"
	"testing"
	"time"
)

// A job whose whole output came within the flush delay: Detach returns it, masked, without a
// commit and without waiting for the flush tick.
func TestDetachReturnsTheRestWithoutCommit(t *testing.T) {
	t.Parallel()
	sink := newSink()
	a := startAppender(t, sink)
	w := a.Writer(7, 3, []string{"hunter2"})
	w.Write([]byte("header\nthe password is hunter2\npartial"))
	// Had Detach waited for the flush tick, the tick would have committed the lines: the
	// content and commit checks below prove it did not, without timing it.
	rest, err := w.Detach()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range rest {
		if c.RunID != 7 || c.JobID != 3 || c.At.IsZero() {
			t.Errorf("chunk %+v", c)
		}
		b.Write(c.Data)
	}
	if got := b.String(); got != "header\nthe password is ***\npartial" {
		t.Errorf("Detach returned %q", got)
	}
	sink.mu.Lock()
	commits := sink.commits
	sink.mu.Unlock()
	if commits != 0 {
		t.Errorf("%d commits; want none", commits)
	}
	if _, err := w.Write([]byte("late")); err != ErrClosed {
		t.Errorf("write after Detach: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Detach: %v", err)
	}
}

// Output handed over before Detach is committed before Detach returns; only the rest comes back.
func TestDetachWaitsForHandedOverChunks(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.gate, sink.entered = make(chan struct{}), make(chan struct{})
	a := startAppender(t, sink)
	w := a.Writer(4, 1, nil)
	w.Write([]byte("one\ntwo\n"))
	<-sink.entered // the flush tick handed the lines over; their commit is held
	w.Write([]byte("three\n"))
	type result struct {
		rest string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rest, err := w.Detach()
		var b strings.Builder
		for _, c := range rest {
			b.Write(c.Data)
		}
		done <- result{b.String(), err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Detach returned (%q, %v) while a commit of its chunks was held", r.rest, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(sink.gate)
	go func() {
		for range sink.entered {
		}
	}()
	r := <-done
	if r.err != nil || r.rest != "three\n" {
		t.Fatalf("Detach = %q, %v; want %q", r.rest, r.err, "three\n")
	}
	if s, _ := sink.text(4, 1); s != "one\ntwo\n" {
		t.Errorf("committed before Detach returned: %q", s)
	}
}
