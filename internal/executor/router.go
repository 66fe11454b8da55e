package executor

import (
	"context"
	"fmt"
	"io"

	"github.com/flowd/flowd/internal/run"
)

// Router runs each job with the executor its kind needs: a job with a Container with
// Containers, any other with Host. A server has both: a job's image: picks.
type Router struct {
	Host Executor
	// Containers runs jobs with an image; nil fails them, saying the server has no container
	// executor.
	Containers Executor
}

var _ Executor = Router{}

// Run runs job with Host or Containers.
func (r Router) Run(ctx context.Context, job Job, out io.Writer, rep Reporter) Result {
	if job.Container == nil {
		return r.Host.Run(ctx, job, out, rep)
	}
	if r.Containers == nil {
		msg := fmt.Sprintf("this server cannot run jobs in containers (image %s): it was started without Docker", job.Container.Image)
		lw := &lineWriter{w: out}
		lw.line(fmt.Sprintf(containerFailFmt, msg))
		for _, s := range job.Steps {
			lw.line(fmt.Sprintf(skippedFormat, s.Name))
			if err := rep.StepFinished(context.WithoutCancel(ctx), s.ID, run.Skipped, nil); err != nil {
				return Result{Status: run.Failed, Message: msg}
			}
		}
		return Result{Status: run.Failed, Message: msg}
	}
	return r.Containers.Run(ctx, job, out, rep)
}

// Cleanup cleans up job with the executor that ran it. A job without Container may be a sweep's
// (which knows only the workspace): Host cleans it.
func (r Router) Cleanup(ctx context.Context, job Job) error {
	if job.Container != nil && r.Containers != nil {
		return r.Containers.Cleanup(ctx, job)
	}
	return r.Host.Cleanup(ctx, job)
}
