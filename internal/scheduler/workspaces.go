package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/jobspec"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// RunStatuser tells a run's status; the store implements it.
type RunStatuser interface {
	RunStatus(ctx context.Context, runID int64) (run.Status, error)
}

// SweepWorkspaces removes the job workspaces under root (folders named "<run id>-<job id>", see
// jobspec.WorkspaceName, and their private HOMEs beside them) whose run is no longer running: a job's workspace is removed when the job ends,
// but a crash (kill -9, a power cut) skips that, and its folder would stay forever. The
// scheduler's executor removes them (Cleanup), as it removes any workspace. Other entries of
// root, and workspaces of runs still queued or running (on another server sharing the
// database), are left alone. Call it once at start, after Recover and before Run. It returns
// how many it removed; a missing root is nothing to sweep.
func (s *Scheduler) SweepWorkspaces(ctx context.Context, root string, runs RunStatuser) (int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("scheduler: sweep workspaces: %w", err)
	}
	removed := 0
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		// A job's private HOME (executor.HomeSuffix) goes with its workspace, even when a
		// crash left only the HOME.
		name := strings.TrimSuffix(e.Name(), executor.HomeSuffix)
		runID, jobID, ok := parseWorkspace(name)
		if !ok || !e.IsDir() || seen[name] {
			continue
		}
		seen[name] = true
		st, err := runs.RunStatus(ctx, runID)
		switch {
		case errors.Is(err, store.ErrNotFound): // the run was deleted
		case err != nil:
			return removed, fmt.Errorf("scheduler: sweep workspaces: %w", err)
		case !st.Terminal():
			continue
		}
		job := executor.Job{RunID: runID, JobID: jobID, Workspace: filepath.Join(root, name)}
		if err := s.cfg.Executor.Cleanup(ctx, job); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("scheduler: sweep workspaces: %w", errors.Join(errs...))
	}
	return removed, nil
}

// parseWorkspace reads the run and job ids out of a workspace folder's name (see jobspec.WorkspaceName).
func parseWorkspace(name string) (runID, jobID int64, ok bool) {
	r, j, found := strings.Cut(name, "-")
	if !found {
		return 0, 0, false
	}
	runID, err1 := strconv.ParseInt(r, 10, 64)
	jobID, err2 := strconv.ParseInt(j, 10, 64)
	if err1 != nil || err2 != nil || runID <= 0 || jobID <= 0 || jobspec.WorkspaceName(runID, jobID) != name {
		return 0, 0, false
	}
	return runID, jobID, true
}
