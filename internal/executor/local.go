package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// reportTimeout bounds every Reporter call and the final writes of a job.
const reportTimeout = 10 * time.Second

// errJobTimeout is the cancel cause of a job that ran past its Timeout.
var errJobTimeout = errors.New("job timeout")

// Local runs each step as a process group on this machine: Shell plus the step's script as one
// more argument, in the job's workspace, with exactly the job's environment. The zero value is
// not ready; use NewLocal (or set every field).
type Local struct {
	// Shell is the command that runs a script; the script is appended as its last argument.
	// Default {"/bin/sh", "-e", "-c"}.
	Shell []string
	// KillGrace is how long a canceled step's process group has between SIGTERM and SIGKILL.
	// Default 1s.
	KillGrace time.Duration
	// Git is the git executable a checkout runs. Default: "git" looked up in the job's PATH.
	Git string
	// Logger receives errors that do not end the job (a Reporter error, a failed kill).
	Logger *slog.Logger
}

// NewLocal returns a Local executor with the default shell and kill grace.
func NewLocal(logger *slog.Logger) *Local {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Local{Shell: []string{"/bin/sh", "-e", "-c"}, KillGrace: time.Second, Logger: logger}
}

var _ Executor = (*Local)(nil)

// Run runs job's steps in order; see Executor. A step's stdout and stderr share one pipe, so
// their order is kept, and it goes to out between the step's header and result lines. When a
// step ends, whatever is left of its process group is killed. On cancellation or job timeout
// the running step's process group gets SIGTERM, then SIGKILL after KillGrace.
//
// With job.Checkout set, the workspace is first made a clone at job.Checkout.SHA, each git
// command a process group too, with PATH and HOME (and proxy, CA and ssh-agent variables) of
// job.Env, never a prompt, and credentials only in git's environment:
//
//	git init -q
//	git remote add origin URL                        (URL without credentials)
//	git fetch -q --depth=1 --no-tags origin SHA      (hosts that serve any commit: protocol v2)
//	git fetch -q --depth=50 --no-tags origin REF     (else, when Ref is set, if SHA is in it)
//	git fetch -q --no-tags [--unshallow] origin REF  (else; every branch and tag when Ref is "")
//	git checkout -q --detach SHA
//
// and HEAD is checked to be SHA. Git's output goes to out with the password masked. A failed
// checkout writes "✖ checkout failed: …" with what git said, reports every step skipped and
// returns run.Failed with "checkout failed: …".
func (l *Local) Run(ctx context.Context, job Job, out io.Writer, rep Reporter) Result {
	shell, grace, logger := l.Shell, l.KillGrace, l.Logger
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-e", "-c"}
	}
	if grace <= 0 {
		grace = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("run_id", job.RunID, "job_id", job.JobID)
	r := &localRun{job: job, out: &lineWriter{w: out}, rep: rep, logger: logger, base: ctx}

	jobCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeoutCause(ctx, job.Timeout, errJobTimeout)
		defer cancel()
	}

	if err := os.MkdirAll(job.Workspace, 0o700); err != nil {
		msg := fmt.Sprintf("cannot create workspace: %v", err)
		r.say("✖ %s\n", msg)
		r.skip(0)
		return Result{Status: run.Failed, Message: msg}
	}

	if job.Checkout != nil {
		if err := r.checkout(jobCtx, *job.Checkout, l.Git, grace); err != nil {
			var ce *checkoutError
			if !errors.As(err, &ce) || jobCtx.Err() != nil {
				reason := canceledReason
				if context.Cause(jobCtx) == errJobTimeout {
					reason = fmt.Sprintf(timeoutReason, job.Timeout)
				}
				r.say(checkoutStopFormat, reason)
				r.skip(0)
				return r.stopped(jobCtx)
			}
			r.say(checkoutFailFormat, ce.msg)
			if ce.auth {
				r.say(checkoutAuthHint)
			}
			r.skip(0)
			return Result{Status: run.Failed, Message: "checkout failed: " + ce.msg}
		}
	}

	for i, step := range job.Steps {
		if jobCtx.Err() != nil {
			r.skip(i)
			return r.stopped(jobCtx)
		}
		status, code, reason := r.step(jobCtx, step, shell, grace)
		r.finished(step.ID, status, code)
		switch status {
		case run.Success:
			continue
		case run.Canceled:
			r.skip(i + 1)
			return r.stopped(jobCtx)
		default:
			r.skip(i + 1)
			if context.Cause(jobCtx) == errJobTimeout {
				return r.stopped(jobCtx)
			}
			return Result{Status: run.Failed, Message: fmt.Sprintf("step %q failed: %s", step.Name, reason)}
		}
	}
	return Result{Status: run.Success}
}

// Cleanup removes the job's workspace; a missing workspace is not an error. Folders a step made
// read-only (such as Go's module cache) are made writable first.
func (l *Local) Cleanup(ctx context.Context, job Job) error {
	if job.Workspace == "" {
		return nil
	}
	if err := os.RemoveAll(job.Workspace); err == nil {
		return nil
	}
	filepath.WalkDir(job.Workspace, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(job.Workspace); err != nil {
		return fmt.Errorf("executor: remove workspace: %w", err)
	}
	return nil
}

// localRun is the state of one Local.Run call.
type localRun struct {
	job    Job
	out    *lineWriter
	rep    Reporter
	logger *slog.Logger
	base   context.Context // the caller's ctx; only its values are used for reports
}

// step runs one step and returns its status (Success, Failed or, when the job's context ended,
// Canceled or Failed for a timeout), its exit code if it exited on its own, and a reason.
func (r *localRun) step(ctx context.Context, step Step, shell []string, grace time.Duration) (run.Status, *int, string) {
	r.started(step.ID)
	r.say(headerFormat, step.Name)
	begin := time.Now()

	args := append(append([]string(nil), shell[1:]...), step.Script)
	cmd := exec.CommandContext(ctx, shell[0], args...)
	cmd.Dir = r.job.Workspace
	cmd.Env = r.job.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean the server's environment
	}
	cmd.Stdout = r.out
	cmd.Stderr = r.out // the same writer: exec gives both one pipe, so order is kept
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var termAt time.Time
	cmd.Cancel = func() error {
		termAt = time.Now()
		return killGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	// After ctx is done (or the shell exited) Wait gives the pipe this long before closing it,
	// so a background child that holds it cannot hang the step.
	cmd.WaitDelay = grace

	if err := cmd.Start(); err != nil {
		reason := fmt.Sprintf("cannot start %s: %v", shell[0], err)
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	}
	pgid := cmd.Process.Pid
	waitErr := cmd.Wait()
	elapsed := time.Since(begin)

	// No process of the step outlives it. A canceled group gets the rest of its grace first.
	if !termAt.IsZero() {
		waitGroupGone(pgid, termAt.Add(grace))
	}
	if err := killGroup(pgid, syscall.SIGKILL); err != nil {
		r.logger.Warn("kill step process group", "step_id", step.ID, "pgid", pgid, "err", err)
	}

	if !termAt.IsZero() { // the job's context ended while the step ran
		if context.Cause(ctx) == errJobTimeout {
			reason := fmt.Sprintf(timeoutReason, r.job.Timeout)
			r.say(failFormat, step.Name, reason)
			return run.Failed, nil, reason
		}
		r.say(failFormat, step.Name, canceledReason)
		return run.Canceled, nil, canceledReason
	}

	ps := cmd.ProcessState
	switch {
	case ps == nil:
		reason := fmt.Sprintf("wait: %v", waitErr)
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	case ps.Success():
		// waitErr may be exec.ErrWaitDelay (a background child kept the pipe open) or an
		// error writing the output; neither changes how the step ended.
		if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
			r.logger.Warn("step output", "step_id", step.ID, "err", waitErr)
		}
		code := 0
		r.say(successFormat, step.Name, formatDuration(elapsed))
		return run.Success, &code, ""
	default:
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			reason := fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
			r.say(failFormat, step.Name, reason)
			return run.Failed, nil, reason
		}
		code := ps.ExitCode()
		r.say(exitFormat, step.Name, code, formatDuration(elapsed))
		return run.Failed, &code, fmt.Sprintf("exit code %d", code)
	}
}

// stopped is the Result of a job whose context ended: canceled, or timed out.
func (r *localRun) stopped(ctx context.Context) Result {
	cause := context.Cause(ctx)
	switch {
	case cause == errJobTimeout:
		return Result{Status: run.Failed, Message: fmt.Sprintf("job timed out after %s", r.job.Timeout)}
	case cause == nil || errors.Is(cause, context.Canceled):
		return Result{Status: run.Canceled, Message: "job canceled"}
	default:
		return Result{Status: run.Canceled, Message: fmt.Sprintf("job canceled: %v", cause)}
	}
}

// say writes a line of the executor's own to the job's output.
func (r *localRun) say(format string, args ...any) {
	r.out.line(fmt.Sprintf(format, args...))
}

// skip reports the steps from index i on as skipped.
func (r *localRun) skip(i int) {
	for _, s := range r.job.Steps[i:] {
		r.say(skippedFormat, s.Name)
		r.finished(s.ID, run.Skipped, nil)
	}
}

func (r *localRun) reportCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.base), reportTimeout)
}

func (r *localRun) started(stepID int64) {
	ctx, cancel := r.reportCtx()
	defer cancel()
	if err := r.rep.StepStarted(ctx, stepID); err != nil {
		r.logger.Error("report step started", "step_id", stepID, "err", err)
	}
}

func (r *localRun) finished(stepID int64, status run.Status, code *int) {
	ctx, cancel := r.reportCtx()
	defer cancel()
	if err := r.rep.StepFinished(ctx, stepID, status, code); err != nil {
		r.logger.Error("report step finished", "step_id", stepID, "status", status, "err", err)
	}
}

// killGroup sends sig to the process group pgid; a group that is already gone is not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 0 {
		return nil // never signal our own group or every process
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// waitGroupGone waits until no live process of group pgid is left or until deadline.
func waitGroupGone(pgid int, deadline time.Time) {
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) || !groupHasLive(pgid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupHasLive reports whether a process of group pgid is alive, zombies aside (orphans wait
// as zombies until init reaps them, and kill(2) still finds those). When /proc cannot be
// read it answers true, so the caller waits out the grace.
func groupHasLive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	want := strconv.Itoa(pgid)
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// formatDuration shows a step's duration: "350ms", "1.2s", "2m3.4s".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// lineWriter passes writes through and remembers whether the output ends mid-line, so the
// executor's own lines always start on a line of their own.
type lineWriter struct {
	w       io.Writer
	midLine bool
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		lw.midLine = p[len(p)-1] != '\n'
	}
	return lw.w.Write(p)
}

// line writes a line of the executor's own, starting a new line first if needed.
func (lw *lineWriter) line(s string) {
	if lw.midLine {
		s = "\n" + s
	}
	lw.midLine = false
	io.WriteString(lw.w, s)
}
