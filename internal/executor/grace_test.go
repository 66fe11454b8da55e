package executor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// A job's own KillGrace (an agent's claim gives one) replaces the executor's: a step that
// ignores SIGTERM is killed only once it has passed.
func TestJobKillGrace(t *testing.T) {
	t.Parallel()
	job := newJob(t, `trap 'echo got TERM' TERM; echo started; while true; do sleep 0.05 || true; done`)
	job.KillGrace = 2500 * time.Millisecond // the executor's is 1 s
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- newLocal(t).Run(ctx, job, &out, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the step to start", func() bool { return strings.Contains(out.String(), "started\n") })
	start := time.Now()
	cancel()
	res := <-done
	took := time.Since(start)
	if res.Status != run.Canceled || !strings.Contains(out.String(), "got TERM") {
		t.Fatalf("result %+v, output %q", res, out.String())
	}
	if took < 2400*time.Millisecond || took > 6*time.Second {
		t.Fatalf("the step was killed %v after the cancel, want its job's grace of 2.5 s", took)
	}
}
