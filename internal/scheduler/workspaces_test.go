package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/jobspec"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// SweepWorkspaces removes the workspaces a crash left behind (of finished runs, and of runs
// that no longer exist), even read-only ones, and keeps those of running runs and every folder
// that is not a workspace.
func TestSweepWorkspaces(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			f := newFixtureWorkspace(t, dialect, 2, root, executor.NewLocal(nil, testShim(t), nil))
			done := f.create(t, nil, job(0, "quick", "true"))
			done = f.wait(t, done.ID, func(r run.Run) bool { return r.Status.Terminal() })
			busy := f.create(t, nil, job(0, "slow", "sleep 60"))
			busy = f.wait(t, busy.ID, func(r run.Run) bool { return r.Status == run.Running })
			busyDir := filepath.Join(root, jobspec.WorkspaceName(busy.ID, busy.Jobs[0].ID))
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(busyDir); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the running job's workspace never appeared")
				}
			}
			// What a crash leaves: the finished job's folder (with a read-only folder inside, as
			// Go's module cache makes), one of a run that no longer exists; and other entries.
			left := filepath.Join(root, jobspec.WorkspaceName(done.ID, done.Jobs[0].ID))
			if err := os.MkdirAll(filepath.Join(left, "cache", "mod"), 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(left, "cache", "mod", "f"), []byte("x"), 0o444)
			os.Chmod(filepath.Join(left, "cache"), 0o555)
			gone := filepath.Join(root, fmt.Sprintf("%d-1", busy.ID+1000))
			os.Mkdir(gone, 0o700)
			// A step user's private HOME beside the finished job's folder, and one whose
			// workspace was removed before a crash.
			leftHome := left + executor.HomeSuffix
			os.Mkdir(leftHome, 0o700)
			loneHome := filepath.Join(root, fmt.Sprintf("%d-2", busy.ID+1000)+executor.HomeSuffix)
			os.Mkdir(loneHome, 0o700)
			for _, other := range []string{"notes", "notes" + executor.HomeSuffix, "7-x", "07-1"} {
				os.Mkdir(filepath.Join(root, other), 0o700)
			}

			n, err := f.sched.SweepWorkspaces(context.Background(), root, f.st)
			if err != nil || n != 3 {
				t.Fatalf("SweepWorkspaces = %d, %v; want 3 removed (two jobs' folders, one lone HOME)", n, err)
			}
			for _, p := range []string{left, leftHome, gone, loneHome} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s is still there (%v)", p, err)
				}
			}
			for _, p := range []string{busyDir, filepath.Join(root, "notes"), filepath.Join(root, "notes"+executor.HomeSuffix), filepath.Join(root, "7-x"), filepath.Join(root, "07-1")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s was removed: %v", p, err)
				}
			}
			if n, err := f.sched.SweepWorkspaces(context.Background(), filepath.Join(root, "missing"), f.st); n != 0 || err != nil {
				t.Errorf("a missing root: %d, %v", n, err)
			}
		})
	}
}

func TestLogFailure(t *testing.T) {
	t.Parallel()
	full := fmt.Errorf("logs: append: store: append log: %w: database or disk is full (13)", store.ErrFull)
	if got := logFailure(full); !strings.HasPrefix(got, "log write failed: disk full (") {
		t.Errorf("logFailure(full disk) = %q", got)
	}
	if got := logFailure(errors.New("logs: append: boom")); got != "log write failed: logs: append: boom" {
		t.Errorf("logFailure(other) = %q", got)
	}
}
