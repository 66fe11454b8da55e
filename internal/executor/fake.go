package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Fake is an Executor for other packages' tests. It starts no process and touches no disk. When
// job.Checkout is set it writes "checkout <sha>" as one output line before the first step and
// the checkout succeeds (nothing is fetched). Each step then follows these rules, by its Script:
//
//   - it writes the script text as one output line, then:
//   - "false": the step fails with exit code 1; later steps are skipped and the job fails;
//   - "sleep D" (D a Go duration such as "50ms" or "10m", or whole seconds such as "600"):
//     the step waits D; if ctx is canceled meanwhile the step and the job are canceled, and if
//     job.Timeout passes the job fails with "job timed out after …";
//   - anything else succeeds at once with exit code 0.
//
// Steps are reported to the Reporter like Local does. The zero value is ready to use and safe
// for concurrent jobs; Cleaned tells which jobs were cleaned up.
type Fake struct {
	mu      sync.Mutex
	cleaned map[int64]int
}

var _ Executor = (*Fake)(nil)

// Run runs job's steps by the rules above.
func (f *Fake) Run(ctx context.Context, job Job, out io.Writer, rep Reporter) Result {
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, job.Timeout, errJobTimeout)
		defer cancel()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	skip := func(steps []Step) {
		for _, s := range steps {
			rep.StepFinished(rctx, s.ID, run.Skipped, nil)
		}
	}
	stopped := func() Result {
		if context.Cause(ctx) == errJobTimeout {
			return Result{Status: run.Failed, Message: fmt.Sprintf("job timed out after %s", job.Timeout)}
		}
		return Result{Status: run.Canceled, Message: "job canceled"}
	}
	if job.Checkout != nil {
		fmt.Fprintf(out, "checkout %s\n", job.Checkout.SHA)
	}
	for i, s := range job.Steps {
		if ctx.Err() != nil {
			skip(job.Steps[i:])
			return stopped()
		}
		rep.StepStarted(rctx, s.ID)
		fmt.Fprintln(out, s.Script)
		code := 0
		switch {
		case s.Script == "false":
			code = 1
		case strings.HasPrefix(s.Script, "sleep "):
			arg := strings.TrimSpace(strings.TrimPrefix(s.Script, "sleep "))
			d, err := time.ParseDuration(arg)
			if err != nil {
				d, _ = time.ParseDuration(arg + "s")
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				status := run.Canceled
				if errors.Is(context.Cause(ctx), errJobTimeout) {
					status = run.Failed
				}
				rep.StepFinished(rctx, s.ID, status, nil)
				skip(job.Steps[i+1:])
				return stopped()
			}
		}
		if code != 0 {
			rep.StepFinished(rctx, s.ID, run.Failed, &code)
			skip(job.Steps[i+1:])
			return Result{Status: run.Failed, Message: fmt.Sprintf("step %q failed: exit code %d", s.Name, code)}
		}
		rep.StepFinished(rctx, s.ID, run.Success, &code)
	}
	return Result{Status: run.Success}
}

// Cleanup records that job was cleaned up; it never fails.
func (f *Fake) Cleanup(ctx context.Context, job Job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cleaned == nil {
		f.cleaned = make(map[int64]int)
	}
	f.cleaned[job.JobID]++
	return nil
}

// Cleaned returns how many times Cleanup was called for jobID.
func (f *Fake) Cleaned(jobID int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cleaned[jobID]
}
