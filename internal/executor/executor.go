// Package executor runs the steps of a job. It defines the small Executor interface the
// scheduler and the agent depend on, the Local executor that runs each step as a process group
// on this machine, and Fake, an executor for other packages' tests.
//
// With Job.Checkout set, the workspace is first made a Git clone at exactly the job's commit:
// shallow where the host allows it, credentials only ever in git's environment.
//
// An executor writes a job's output, with one header line before and one result line after each
// step, to the io.Writer it is given (a logs.Writer in production), and reports step status
// changes through a Reporter. It never touches the store itself.
package executor

import (
	"context"
	"io"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Step is one command of a job.
type Step struct {
	ID     int64  // the step's record id, passed back to the Reporter
	Name   string // shown in the log's header and result lines
	Script string // the shell script, passed to the shell as one argument
}

// Job is what an executor runs.
type Job struct {
	RunID, JobID int64
	// Attempt is the id of the job's attempt this Run is (0 when unknown, as in a sweep's
	// Cleanup): containers, networks and volumes are labelled with it.
	Attempt int64
	// Container, when set, runs the steps in a container (Docker); nil runs them as processes
	// on this host (Local). Env then holds no PATH or HOME of the host: the image's stand.
	Container *run.Container
	// Workspace is an absolute folder; Run creates it (mode 0700) if missing and runs every
	// step in it. Cleanup removes it.
	Workspace string
	// Env is the complete environment of every step, as KEY=VALUE. The caller builds it (run
	// variables, job env, FLOWD_* built-ins, PATH, HOME…); nothing of the server's own
	// environment is added.
	Env []string
	// Checkout, when set, makes the workspace a clone of a repository at one commit before the
	// first step; a checkout that fails fails the job and skips every step. nil leaves the
	// workspace empty.
	Checkout *Checkout
	Steps    []Step
	// Timeout bounds the whole job; 0 means none.
	Timeout time.Duration
	// KillGrace, when set, is how long a canceled (or timed-out) step's processes have between
	// SIGTERM and SIGKILL in this job, instead of the executor's KillGrace (an agent's claim
	// gives one per job).
	KillGrace time.Duration
}

// Reporter records step status changes; the scheduler writes them to the store. Its methods
// are called from Run's goroutine, in order, with a context that is not canceled when the job
// is, so statuses are recorded even on cancel or shutdown. An error is logged and the job goes on.
type Reporter interface {
	// StepStarted is called just before the step's process starts.
	StepStarted(ctx context.Context, stepID int64) error
	// StepFinished is called once per step: with run.Success, run.Failed or run.Canceled for a
	// step that was started, and with run.Skipped for a step that never started. exitCode is
	// set when the process exited on its own (also 0 for success), nil otherwise.
	StepFinished(ctx context.Context, stepID int64, status run.Status, exitCode *int) error
}

// Result is how a job ended.
type Result struct {
	// Status is run.Success, run.Failed or run.Canceled.
	Status run.Status
	// Message says why a job did not succeed, for the log and the run's message; "" on success.
	Message string
}

// Executor runs jobs.
type Executor interface {
	// Run runs job's steps in order, writing their output to out and reporting step statuses
	// to rep. It blocks until the job ends. Canceling ctx cancels the job: the running step is
	// stopped, the rest are skipped, and Run returns run.Canceled.
	Run(ctx context.Context, job Job, out io.Writer, rep Reporter) Result
	// Cleanup releases what Run left behind (the workspace). It is idempotent: cleaning up a
	// job twice, or one that never ran, is not an error.
	Cleanup(ctx context.Context, job Job) error
}

// Log line formats. Every step's output is framed by one header and one result line; the
// result line starts on a line of its own even when the step's output did not end in a newline.
const (
	headerFormat   = "▶ %s\n"                    // before a step: its name
	successFormat  = "✔ %s (%s)\n"               // step succeeded: name, duration
	exitFormat     = "✖ %s: exit code %d (%s)\n" // step exited non-zero: name, code, duration
	failFormat     = "✖ %s: %s\n"                // step failed otherwise: name, reason
	skippedFormat  = "○ %s: skipped\n"           // step never started
	canceledReason = "canceled"                  // reason shown for a canceled step
	timeoutReason  = "timed out after %s"        // reason shown for a step stopped by the job timeout
)
