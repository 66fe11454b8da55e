package logs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var errFull = errors.New("database or disk is full")

// While the store refuses commits (a full disk), the Appender keeps retrying and Writes wait;
// once there is room again, every line is committed in order and nothing is lost.
func TestAppenderRetriesUntilThereIsRoom(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.failing = true
	a := startAppender(t, sink)
	w := a.Writer(1, 1, nil)
	wrote := make(chan error, 1)
	go func() {
		for range 2000 {
			if _, err := w.Write([]byte(strings.Repeat("x", 100) + "\n")); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- w.Close()
	}()
	waitFor(t, 30*time.Second, "three failed commits", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.attempts >= 3
	})
	sink.mu.Lock()
	sink.failing = false
	sink.mu.Unlock()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("a write or Close failed although the store came back: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("writes did not finish once the store had room")
	}
	if log, _ := sink.text(1, 1); strings.Count(log, "\n") != 2000 {
		t.Fatalf("%d lines stored, want 2000", strings.Count(log, "\n"))
	}
}

// When the store stays full past RetryFor, the chunks are given up: Write and Close return
// the store's error, so the job ends with it instead of running on with a hole in its log.
func TestWriterFailsWhenTheStoreStaysFull(t *testing.T) {
	t.Parallel()
	sink := newSink()
	sink.failing = true
	a := startAppender(t, sink, func(a *Appender) { a.RetryFor = 500 * time.Millisecond })
	w := a.Writer(1, 1, nil)
	line := []byte(strings.Repeat("y", 1000) + "\n")
	var err error
	deadline := time.Now().Add(time.Minute)
	for err == nil && time.Now().Before(deadline) {
		_, err = w.Write(line)
	}
	if !errors.Is(err, errFull) {
		t.Fatalf("Write returned %v, want the store's error", err)
	}
	if _, rerr := w.Detach(); !errors.Is(rerr, errFull) {
		t.Fatalf("Detach returned %v, want the store's error", rerr)
	}
}
