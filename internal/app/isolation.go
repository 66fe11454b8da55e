package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

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

// newExecutor builds the local executor (executor.NewHost): steps through flowd's own binary as
// the shim, run as users of their own when --step-user gives (or, as root, defaults to) a uid
// range, each step's process group recorded in the data folder's "steps". Processes a killed
// server left running (the recorded groups, and every process of the step users) are killed
// first.
//
// release ends the step launcher and gives the uid range back once the executor's jobs have
// ended.
func newExecutor(ctx context.Context, cfg config.Config, logger *slog.Logger) (exec *executor.Local, release func(), err error) {
	first, last, isolated := cfg.StepUIDs(os.Geteuid())
	exec, release, err = executor.NewHost(ctx, executor.HostOptions{
		Workspaces: cfg.Workspaces, WorkspacesFlag: "--workspaces",
		Procs:    filepath.Join(cfg.Data, "steps"),
		StepUser: cfg.StepUser, First: first, Last: last, Isolated: isolated,
		Slots: cfg.Executors, SlotsFlag: "--executors",
	}, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("app: %w", err)
	}
	return exec, release, nil
}
