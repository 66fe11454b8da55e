package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// HostOptions is how a process that runs jobs on this host (flowd serve, flowd agent) builds
// its Local executor with NewHost. The flag names only make error messages say what to change.
type HostOptions struct {
	// Workspaces is the folder of job workspaces (made if missing; see NewHost).
	Workspaces string
	// WorkspacesFlag is the flag that sets Workspaces, e.g. "--workspaces".
	WorkspacesFlag string
	// Procs is the folder where running steps' process groups are recorded (Local.Procs).
	Procs string
	// StepUser is the flag's value (for messages); First, Last and Isolated its resolved uid
	// range (Isolated false: steps run as this process's own user).
	StepUser    string
	First, Last uint32
	Isolated    bool
	// Slots is how many jobs run at once (each needs a uid of its own), and SlotsFlag the flag
	// that sets it, e.g. "--executors".
	Slots     int
	SlotsFlag string
	// OwnUserWarning is logged when steps run as this process's own user; "" is the server's
	// (only trusted pipelines run then).
	OwnUserWarning string
}

// NewHost builds the local executor of a process that runs jobs on this host: steps through
// flowd's own binary (os.Executable) as the shim, run as users of their own when o.Isolated,
// each step's process group recorded in o.Procs. Processes a killed flowd left running (the
// recorded groups, and every process of the step users) are killed first.
//
// release ends the step launcher and gives the uid range back (see lockUIDs) once the
// executor's jobs have ended.
func NewHost(ctx context.Context, o HostOptions, logger *slog.Logger) (exec *Local, release func(), err error) {
	shim, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find flowd's own binary (it starts every step): %w", err)
	}
	log := logger.With("component", "executor")
	if err := workspaceFolder(o.Workspaces, o.WorkspacesFlag, o.Isolated); err != nil {
		return nil, nil, err
	}
	killLeftSteps(ctx, o.Procs, log)
	if !o.Isolated {
		warning := o.OwnUserWarning
		if warning == "" {
			warning = "steps run as flowd's own OS user, so only trusted pipelines run: run flowd as root (or give --step-user a uid range) to run each job as a user of its own"
		}
		log.Warn(warning, "step_user", o.StepUser, "workspaces", o.Workspaces)
		exec = NewLocal(log, shim, nil)
		exec.Procs = o.Procs
		return exec, func() {}, nil
	}
	if !CanSwitchUsers() {
		return nil, nil, fmt.Errorf("--step-user %s needs flowd to run as root, to run steps as those users; use --step-user none to run only trusted pipelines as flowd's own user", o.StepUser)
	}
	users, err := NewUsers(o.First, o.Last)
	if err != nil {
		return nil, nil, fmt.Errorf("--step-user: %w", err)
	}
	if users.Size() < o.Slots {
		return nil, nil, fmt.Errorf("--step-user %d-%d has %d uids, fewer than %s %d (each running job needs one)", o.First, o.Last, users.Size(), o.SlotsFlag, o.Slots)
	}
	release, err = lockUIDs(o.First, o.Last)
	if err != nil {
		return nil, nil, err
	}
	if err := users.KillAll(ctx); err != nil {
		release()
		return nil, nil, fmt.Errorf("kill steps left running: %w", err)
	}
	log.Info("steps run as users of their own", "uids", fmt.Sprintf("%d-%d", o.First, o.Last), "workspaces", o.Workspaces)
	exec = NewLocal(log, shim, users)
	exec.Procs = o.Procs
	releaseUIDs := release
	return exec, func() { exec.Close(); releaseUIDs() }, nil
}

// workspaceFolder makes the folder of job workspaces: owned by this process's user, not a
// symbolic link, mode 0711 (step users may pass through it to their own workspace but not list
// it) or 0700 when steps run as this user. An existing folder that another user owns, or a
// link, is refused: someone else could have put it there (it lives under /var/tmp by default).
func workspaceFolder(dir, flag string, isolated bool) error {
	mode := fs.FileMode(0o700)
	if isolated {
		mode = 0o711
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("workspace folder: %w", err)
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("workspace folder: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return fmt.Errorf("workspace folder: %w", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("workspace folder %s is not a folder of flowd's own user (uid %d): remove it or choose another with %s", dir, os.Geteuid(), flag)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("workspace folder: %w", err)
	}
	if isolated {
		// Step users must be able to pass through every parent folder to reach their workspace.
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("workspace folder %s: step users cannot pass through %s (mode %v); choose a folder under a public one with %s", dir, p, fi.Mode().Perm(), flag)
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return nil
}

// killLeftSteps kills the step processes a killed flowd left running, from the records in
// procs (see KillRecorded). It does not stop the start: what it could not kill is logged, with
// what an operator can do.
func killLeftSteps(ctx context.Context, procs string, log *slog.Logger) {
	if _, err := KillRecorded(ctx, procs, log); err != nil { // it logs what it killed
		log.Error("kill the step processes a previous flowd left running; look for them with `ps -eo pid,pgid,args` and kill them by hand",
			"folder", procs, "err", err)
	}
}

// lockUIDs takes, for the life of the process, a lock named after the uid range in /run (a
// folder only root may write), so that two flowd processes on one machine never share step
// users: the second would kill the first's steps at start and hand out the uids it uses.
func lockUIDs(first, last uint32) (release func(), err error) {
	path := fmt.Sprintf("/run/flowd-step-uids-%d-%d.lock", first, last)
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the step uids: %w", err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("another flowd on this machine runs its steps as uids %d-%d: give each a range of its own with --step-user FIRST-LAST", first, last)
	}
	return func() { syscall.Close(fd) }, nil // closing the descriptor drops the lock
}
