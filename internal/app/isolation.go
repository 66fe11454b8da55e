package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/executor"
)

// privateFolder makes dir (the data folder) if needed and makes it the server's alone: mode
// 0700, so no step user can enter it, whatever mode it had.
func privateFolder(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("app: data folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("app: data folder: make it private (0700): %w", err)
	}
	return nil
}

// workspaceRoot makes the folder of job workspaces: owned by the server, not a symbolic link,
// mode 0711 (step users may pass through it to their own workspace but not list it) or 0700
// when steps run as the server's user. An existing folder that another user owns, or a link,
// is refused: someone else could have put it there (it lives under /var/tmp by default).
func workspaceRoot(dir string, isolated bool) error {
	mode := fs.FileMode(0o700)
	if isolated {
		mode = 0o711
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("app: workspace folder: %w", err)
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("app: workspace folder: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return fmt.Errorf("app: workspace folder: %w", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("app: workspace folder %s is not a folder of flowd's own user (uid %d): remove it or choose another with --workspaces", dir, os.Geteuid())
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("app: workspace folder: %w", err)
	}
	if isolated {
		// Step users must be able to pass through every parent folder to reach their workspace.
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("app: workspace folder %s: step users cannot pass through %s (mode %v); choose a folder under a public one with --workspaces", dir, p, fi.Mode().Perm())
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return nil
}

// newExecutor builds the local executor: steps through flowd's own binary as the shim, run as
// users of their own when --step-user gives (or, as root, defaults to) a uid range, each
// step's process group recorded in the data folder's "steps". Processes a killed server left
// running (the recorded groups, and every process of the step users) are killed first.
//
// release ends the step launcher and gives the uid range back (see lockUIDs) once the
// executor's jobs have ended.
func newExecutor(ctx context.Context, cfg config.Config, logger *slog.Logger) (exec *executor.Local, release func(), err error) {
	shim, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("app: find flowd's own binary (it starts every step): %w", err)
	}
	log := logger.With("component", "executor")
	first, last, isolated := cfg.StepUIDs(os.Geteuid())
	if err := workspaceRoot(cfg.Workspaces, isolated); err != nil {
		return nil, nil, err
	}
	procs := filepath.Join(cfg.Data, "steps")
	killLeftSteps(ctx, procs, log)
	if !isolated {
		log.Warn("steps run as flowd's own OS user, so only trusted pipelines run: run flowd as root (or give --step-user a uid range) to run each job as a user of its own",
			"step_user", cfg.StepUser, "workspaces", cfg.Workspaces)
		exec = executor.NewLocal(log, shim, nil)
		exec.Procs = procs
		return exec, func() {}, nil
	}
	if !executor.CanSwitchUsers() {
		return nil, nil, fmt.Errorf("app: --step-user %s needs flowd to run as root, to run steps as those users; use --step-user none to run only trusted pipelines as flowd's own user", cfg.StepUser)
	}
	users, err := executor.NewUsers(first, last)
	if err != nil {
		return nil, nil, fmt.Errorf("app: --step-user: %w", err)
	}
	if users.Size() < cfg.Executors {
		return nil, nil, fmt.Errorf("app: --step-user %d-%d has %d uids, fewer than --executors %d (each running job needs one)", first, last, users.Size(), cfg.Executors)
	}
	release, err = lockUIDs(first, last)
	if err != nil {
		return nil, nil, err
	}
	if err := users.KillAll(ctx); err != nil {
		release()
		return nil, nil, fmt.Errorf("app: kill steps left running: %w", err)
	}
	log.Info("steps run as users of their own", "uids", fmt.Sprintf("%d-%d", first, last), "workspaces", cfg.Workspaces)
	exec = executor.NewLocal(log, shim, users)
	exec.Procs = procs
	releaseUIDs := release
	return exec, func() { exec.Close(); releaseUIDs() }, nil
}

// killLeftSteps kills the step processes a killed server left running, from the records in
// procs (see executor.KillRecorded). It does not stop the start: what it could not kill is
// logged, with what an operator can do.
func killLeftSteps(ctx context.Context, procs string, log *slog.Logger) {
	if _, err := executor.KillRecorded(ctx, procs, log); err != nil { // it logs what it killed
		log.Error("kill the step processes a previous flowd left running; look for them with `ps -eo pid,pgid,args` and kill them by hand",
			"folder", procs, "err", err)
	}
}

// lockUIDs takes, for the life of the process, a lock named after the uid range in /run (a
// folder only root may write), so that two servers on one machine never share step users:
// the second would kill the first's steps at start and hand out the uids it uses.
func lockUIDs(first, last uint32) (release func(), err error) {
	path := fmt.Sprintf("/run/flowd-step-uids-%d-%d.lock", first, last)
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("app: lock the step uids: %w", err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("app: another flowd on this machine runs its steps as uids %d-%d: give each server a range of its own with --step-user FIRST-LAST", first, last)
	}
	return func() { syscall.Close(fd) }, nil // closing the descriptor drops the lock
}
