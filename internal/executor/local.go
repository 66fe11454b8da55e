package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Shim is the command that starts each step's process: the flowd binary (ShimMain runs
	// behind ShimCommand), which keeps every process the step starts in its tree and kills
	// them all when the step ends, is canceled, or the server dies. Required.
	Shim string
	// Users, when set, runs every job's checkout and steps as a uid of its own from the pool,
	// owning the job's workspace (mode 0700) and a private HOME and TMPDIR beside it; nil runs
	// them as the server's own user (only for trusted pipelines: see DESIGN.md "Isolation").
	Users *Users
	// Procs, when set, is the folder where each running step's process group, and each git
	// command's of a checkout, is recorded (one file a group, removed when it ends), so that
	// KillRecorded can kill what a killed server left running when it starts again. ""
	// records nothing.
	Procs string

	mu        sync.Mutex
	lc        *launcherConn // the step launcher of jobs run as step users, started at the first
	closed    bool          // Close was called: no launcher starts again
	kept      *folders      // finished jobs' folders, for the next jobs (see folders)
	keptTried bool
	held      map[string]*heldUID // workspace → the uid its job holds until Cleanup
}

// NewLocal returns a Local executor with the default shell and kill grace that starts steps
// through shim (see Local.Shim) and, with users set, runs them as users of the pool.
func NewLocal(logger *slog.Logger, shim string, users *Users) *Local {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Local{Shell: []string{"/bin/sh", "-e", "-c"}, KillGrace: time.Second, Logger: logger, Shim: shim, Users: users}
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
	if job.KillGrace > 0 {
		grace = job.KillGrace
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

	if l.Shim == "" {
		msg := "flowd is misconfigured: the executor has no step shim"
		r.say("✖ %s\n", msg)
		r.skip(0)
		return Result{Status: run.Failed, Message: msg}
	}
	r.shim, r.procs = l.Shim, l.Procs
	if l.Users != nil {
		r.launch = l.launcher
	}
	if err := l.prepare(ctx, r); err != nil {
		msg := fmt.Sprintf("cannot create workspace: %v", err)
		r.say("✖ %s\n", msg)
		r.skip(0)
		return Result{Status: run.Failed, Message: msg}
	}
	if r.cred != nil {
		// Nothing the job started outlives it: every process of its uid, however it
		// detached, is killed before the job's end is reported. The launcher did that at
		// the end of each step; the uid is swept again only when something else ran as it
		// (a checkout's git commands) or the launcher could not kill all.
		defer func() {
			if r.leftovers || job.Checkout != nil {
				kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
				defer cancel()
				if err := KillUser(kctx, r.cred.Uid, shell[0]); err != nil {
					logger.Error("kill the job's processes", "uid", r.cred.Uid, "err", err)
					return
				}
			}
			l.mu.Lock()
			if h := l.held[job.Workspace]; h != nil && h.uid == r.cred.Uid {
				h.swept = true
			}
			l.mu.Unlock()
		}()
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
//
// For a job that ran as a uid of Users, every process of that uid is killed first and its
// files in the shared temporary folders removed, then its private HOME; only then does the
// uid go back to the pool.
func (l *Local) Cleanup(ctx context.Context, job Job) error {
	if job.Workspace == "" {
		return nil
	}
	l.mu.Lock()
	h := l.held[job.Workspace]
	var claim heldUID
	if h != nil {
		claim = *h
	}
	l.mu.Unlock()
	var errs []error
	isolated := h != nil && l.Users != nil
	if isolated {
		if err := l.Users.Reclaim(ctx, claim.uid, l.shell()[0], claim.swept, claim.since); err != nil {
			errs = append(errs, err)
		}
	}
	// The folders of a job whose uid has no process left are kept for the next jobs (see
	// folders); any other is removed.
	var kept *folders
	if isolated && len(errs) == 0 {
		kept = l.foldersFor(filepath.Dir(job.Workspace))
	}
	for kind, dir := range []string{job.Workspace, homeOf(job.Workspace)} {
		if kept.keep(kind, dir) {
			continue
		}
		if err := removeTree(dir); err != nil {
			errs = append(errs, fmt.Errorf("executor: remove workspace: %w", err))
		}
	}
	// The workspace is free again; a uid only once nothing of the job's is left.
	if h != nil && (!isolated || len(errs) == 0) {
		l.mu.Lock()
		delete(l.held, job.Workspace)
		l.mu.Unlock()
		if isolated {
			l.Users.release(claim.uid)
		}
	}
	return errors.Join(errs...)
}

// heldUID is what a job holds from prepare to Cleanup: its workspace and, run as a step user,
// its uid (0 without Users).
type heldUID struct {
	uid   uint32
	since time.Time // taken before any process ran as uid for this job
	swept bool      // uid's processes were killed when Run ended, and none ran since
}

// launcher returns the running step launcher, starting one when none runs (the first step, or
// the last launcher ended).
func (l *Local) launcher() (*launcherConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lc != nil && l.lc.alive() {
		return l.lc, nil
	}
	if l.closed {
		return nil, errors.New("the executor is closed")
	}
	lc, err := startLauncher(l.Shim, l.Procs)
	if err != nil {
		return nil, err
	}
	l.lc = lc
	return lc, nil
}

// Close ends the step launcher, if one runs, which ends whatever steps are left, and removes
// the kept folders. Call it once the executor's jobs have ended.
func (l *Local) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.lc != nil {
		l.lc.close()
	}
	l.kept.close()
}

// foldersFor returns the folders kept for workspaces in root (see folders), set up at the
// first job; nil once closed, or when root cannot hold them.
func (l *Local) foldersFor(root string) *folders {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if !l.keptTried {
		l.keptTried = true
		l.kept = newFolders(root)
	}
	return l.kept
}

// removeTree removes dir; folders a step made read-only (such as Go's module cache) are made
// writable first. A missing dir is not an error.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

func (l *Local) shell() []string {
	if len(l.Shell) == 0 {
		return []string{"/bin/sh", "-e", "-c"}
	}
	return l.Shell
}

// HomeSuffix names the private HOME of a job run as a step user: the folder beside its
// workspace whose name is the workspace's and HomeSuffix, so tools' caches do not land in the
// checkout. Cleanup removes both.
const HomeSuffix = ".home"

func homeOf(ws string) string { return ws + HomeSuffix }

// prepare makes the job's workspace. Without Users it is a folder of the server's user (mode
// 0700). With Users the job takes a uid of its own (held until Cleanup), and its workspace and
// a private HOME holding its TMPDIR are made fresh, mode 0700, owned by that uid; the
// environment's HOME and TMPDIR point at them.
func (l *Local) prepare(ctx context.Context, r *localRun) error {
	ws := r.job.Workspace
	var uid uint32
	if l.Users != nil {
		var err error
		if uid, err = l.Users.acquire(ctx); err != nil {
			return err
		}
	}
	// An earlier attempt of this job, lost but still ending on this server, may hold the
	// workspace (and its uid) until its Cleanup: wait for that rather than share either.
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = map[string]*heldUID{}
		}
		if _, busy := l.held[ws]; !busy {
			l.held[ws] = &heldUID{uid: uid, since: time.Now()}
			l.mu.Unlock()
			break
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			if l.Users != nil {
				l.Users.release(uid)
			}
			return context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if l.Users == nil {
		return os.MkdirAll(ws, 0o700)
	}
	home := homeOf(ws)
	kept := l.foldersFor(filepath.Dir(ws))
	if !kept.take(folderWorkspace, ws, uid) {
		if err := freshDir(ws, uid); err != nil {
			return err
		}
	}
	if !kept.take(folderHome, home, uid) {
		for _, dir := range []string{home, filepath.Join(home, "tmp")} {
			if err := freshDir(dir, uid); err != nil {
				return err
			}
		}
	}
	r.cred = &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
	env := make([]string, 0, len(r.job.Env)+2)
	for _, kv := range r.job.Env {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	r.job.Env = append(env, "HOME="+home, "TMPDIR="+filepath.Join(home, "tmp"))
	return nil
}

// freshDir makes dir anew (whatever was there is removed), mode 0700, owned by uid.
func freshDir(dir string, uid uint32) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		if err := removeTree(dir); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o700)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := os.Lchown(dir, int(uid), int(uid)); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// localRun is the state of one Local.Run call.
type localRun struct {
	job    Job
	shim   string                        // see Local.Shim
	procs  string                        // see Local.Procs
	cred   *syscall.Credential           // the job's uid (Local.Users), nil to run as the server's user
	launch func() (*launcherConn, error) // with cred: the step launcher steps start through
	// leftovers: a process of the job's uid may have outlived what ended it (a checkout's git,
	// a step through a shim, a launcher that could not kill all): sweep the uid at the end.
	leftovers bool
	out       *lineWriter
	rep       Reporter
	logger    *slog.Logger
	base      context.Context // the caller's ctx; only its values are used for reports
}

// step runs one step and returns its status (Success, Failed or, when the job's context ended,
// Canceled or Failed for a timeout), its exit code if it exited on its own, and a reason.
//
// The step's process is the shim (ShimMain) in a process group of its own (recorded in
// Local.Procs while it runs), with the shell as its child, in the same group; the environment goes to the shim over a pipe and the shell's status comes back
// over another. The shim kills everything the step left when the shell exits. On cancel the
// group gets SIGTERM and the shim gives the tree the grace before it kills it; the server
// waits for the shim a little longer, and kills the group itself only if the shim is stuck.
func (r *localRun) step(ctx context.Context, step Step, shell []string, grace time.Duration) (run.Status, *int, string) {
	r.started(step.ID)
	r.say(headerFormat, step.Name)
	begin := time.Now()

	var reported string
	var waitErr error
	var termAt time.Time
	if r.launch != nil {
		reported, waitErr, termAt = r.launched(ctx, step, shell, grace)
	} else {
		reported, waitErr, termAt = r.shimmed(ctx, step, shell, grace)
	}
	elapsed := time.Since(begin)

	if !termAt.IsZero() { // the job's context ended while the step ran
		return r.interrupted(ctx, step)
	}

	kind, val, _ := strings.Cut(reported, " ")
	n, convErr := strconv.Atoi(val)
	switch {
	case kind == "start":
		return r.cannotStart(step, shell, errors.New(val))
	case kind == "exit" && convErr == nil && n == 0:
		// waitErr may be an error writing the output; it does not change how the step ended.
		if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
			var ee *exec.ExitError
			if !errors.As(waitErr, &ee) {
				r.logger.Warn("step output", "step_id", step.ID, "err", waitErr)
			}
		}
		code := 0
		r.say(successFormat, step.Name, formatDuration(elapsed))
		return run.Success, &code, ""
	case kind == "exit" && convErr == nil:
		r.say(exitFormat, step.Name, n, formatDuration(elapsed))
		return run.Failed, &n, fmt.Sprintf("exit code %d", n)
	case kind == "signal" && convErr == nil:
		sig := syscall.Signal(n)
		reason := fmt.Sprintf("killed by signal %d (%s)", n, sig)
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	case errors.Is(waitErr, errLauncherGone):
		reason := waitErr.Error() + ": its processes were killed"
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	default:
		reason := fmt.Sprintf("the step's shim ended without a status (%v)", waitErr)
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	}
}

// interrupted is the end of a step stopped because the job's context ended: failed when the
// job timed out, canceled otherwise.
func (r *localRun) interrupted(ctx context.Context, step Step) (run.Status, *int, string) {
	if context.Cause(ctx) == errJobTimeout {
		reason := fmt.Sprintf(timeoutReason, r.job.Timeout)
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	}
	r.say(failFormat, step.Name, canceledReason)
	return run.Canceled, nil, canceledReason
}

// launched runs step through the step launcher (see launcher.go), for a job run as a step user;
// it returns what shimmed does.
func (r *localRun) launched(ctx context.Context, step Step, shell []string, grace time.Duration) (reported string, waitErr error, termAt time.Time) {
	lc, err := r.launch()
	if err != nil {
		return "start " + err.Error(), nil, time.Time{}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return "start " + err.Error(), nil, time.Time{}
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(r.out, pr)
		copied <- err
	}()
	defer pr.Close()
	argv := append(slices.Clone(shell), step.Script)
	id, events, err := lc.start(launchReq{UID: r.cred.Uid, Dir: r.job.Workspace, Argv: argv, Env: r.job.Env, Grace: grace.Milliseconds()}, pw)
	pw.Close()
	if err != nil {
		<-copied
		return "start " + err.Error(), nil, time.Time{}
	}
	// lost ends the step's processes when the launcher can no longer be trusted to.
	lost := func(why error) (string, error, time.Time) {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		defer cancel()
		if err := KillUser(kctx, r.cred.Uid, shell[0]); err != nil {
			r.logger.Error("kill the step's processes", "step_id", step.ID, "err", err)
		}
		return "", why, termAt
	}
	done := ctx.Done()
	var stuck <-chan time.Time
wait:
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Err != "" && ev.Err != errLauncherGone.Error():
				<-copied
				return "start " + ev.Err, nil, termAt
			case ev.Err != "":
				reported, waitErr, termAt = lost(errLauncherGone)
				break wait
			case ev.Status != "":
				reported = ev.Status
				r.leftovers = r.leftovers || ev.Left
				break wait
			}
		case <-done:
			termAt, done = time.Now(), nil
			if err := lc.term(id); err != nil {
				reported, waitErr, termAt = lost(fmt.Errorf("%w: %v", errLauncherGone, err))
				break wait
			}
			stuck = time.After(grace + shimExtraWait)
		case <-stuck:
			reported, waitErr, termAt = lost(errors.New("the step launcher did not end the canceled step in time"))
			break wait
		}
	}
	// Every process of the step is gone (the launcher, or lost, killed what was left), so the
	// output ends; a process stuck in the kernel is given the same time as a stuck shim.
	select {
	case err := <-copied:
		if waitErr == nil {
			waitErr = err
		}
	case <-time.After(grace + shimExtraWait):
		pr.Close()
		<-copied
	}
	return reported, waitErr, termAt
}

// shimmed runs step through a shim of its own (see ShimMain) and returns the status line the
// shim reported ("exit N", "signal N" or "start ERROR"), the error of waiting for it, and when
// ctx's end made it send SIGTERM (zero if it did not).
func (r *localRun) shimmed(ctx context.Context, step Step, shell []string, grace time.Duration) (reported string, waitErr error, termAt time.Time) {
	uid, gid := -1, -1
	if r.cred != nil {
		uid, gid = int(r.cred.Uid), int(r.cred.Gid)
	}
	args := []string{ShimCommand, strconv.FormatInt(grace.Milliseconds(), 10), strconv.Itoa(uid), strconv.Itoa(gid), r.job.Workspace, "--"}
	args = append(append(args, shell...), step.Script)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return "start " + err.Error(), nil, time.Time{}
	}
	defer statusR.Close()
	envR, envW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return "start " + err.Error(), nil, time.Time{}
	}
	cmd := exec.CommandContext(ctx, r.shim, args...)
	cmd.Dir = "/"
	cmd.Env = []string{} // the shim gets nothing; the step's environment goes over envW
	cmd.Stdout = r.out
	cmd.Stderr = r.out // the same writer: exec gives both one pipe, so order is kept
	cmd.ExtraFiles = []*os.File{statusW, envR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error {
		termAt = time.Now()
		return killGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	// The shim ends the tree within the grace; Wait gives it more before it kills the shim.
	cmd.WaitDelay = grace + shimExtraWait

	err = cmd.Start()
	statusW.Close()
	envR.Close()
	if err != nil {
		envW.Close()
		return "start " + err.Error(), nil, time.Time{}
	}
	if r.procs != "" {
		// Before the environment is sent: the shim waits for it before it starts the shell.
		if remove, err := recordStep(r.procs, cmd.Process.Pid); err != nil {
			r.logger.Warn("record the step's process group", "step_id", step.ID, "err", err)
		} else {
			defer remove()
		}
	}
	go func() {
		defer envW.Close()
		for _, kv := range r.job.Env {
			if _, err := envW.Write(append([]byte(kv), 0)); err != nil {
				return
			}
		}
	}()
	statusLine := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(statusR, 4096))
		statusLine <- strings.TrimSpace(string(b))
	}()
	pgid := cmd.Process.Pid
	waitErr = cmd.Wait()
	killGroup(pgid, syscall.SIGKILL) // only the stuck shim's group could be left
	return <-statusLine, waitErr, termAt
}

// shimExtraWait is how much longer than the kill grace the server waits for a canceled step's
// shim before it kills the shim's process group itself.
const shimExtraWait = 3 * time.Second

// cannotStart is the result of a step whose process could not be started.
func (r *localRun) cannotStart(step Step, shell []string, err error) (run.Status, *int, string) {
	reason := fmt.Sprintf("cannot start %s: %v", shell[0], err)
	r.say(failFormat, step.Name, reason)
	return run.Failed, nil, reason
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
// as zombies until init reaps them, and kill(2) still finds those).
func groupHasLive(pgid int) bool {
	for _, p := range procs() {
		if p.pgrp == pgid && p.state != 'Z' && p.state != 'X' {
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
