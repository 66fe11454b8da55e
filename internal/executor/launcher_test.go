package executor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// isolatedLocal is a Local running jobs as step users, so its steps start through the step
// launcher; the launcher is ended with the test.
func isolatedLocal(t *testing.T, uids uint32) *Local {
	t.Helper()
	needRoot(t)
	l := NewLocal(nil, testShim(t), newUsers(t, uids))
	t.Cleanup(l.Close)
	return l
}

// launcherPid is the pid of l's running step launcher (0 if none runs).
func launcherPid(l *Local) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lc == nil || !l.lc.alive() {
		return 0
	}
	return l.lc.cmd.Process.Pid
}

// TestLauncherRunsStepsInOneProcess runs several jobs as step users: their steps all start
// through one launcher (not a shim each), keep exit codes, output and environment, and a step
// that cannot start says why.
func TestLauncherRunsStepsInOneProcess(t *testing.T) {
	t.Parallel()
	l := isolatedLocal(t, 2)
	root := workspaceRoot(t)
	var first int
	for i := range 3 {
		job := isolatedJob(root, int64(10+i), `echo "abc=$ABC uid=$(id -u)"`, "exit 3")
		job.Env = append(job.Env, "ABC=value-"+string(rune('a'+i)))
		var out syncBuffer
		res := l.Run(context.Background(), job, &out, &recorder{t: t})
		if res.Status != run.Failed || !strings.Contains(res.Message, "exit code 3") {
			t.Errorf("job %d: %+v, want failed with exit code 3\n%s", i, res, out.String())
		}
		if !strings.Contains(out.String(), "abc=value-"+string(rune('a'+i))+" uid=") || strings.Contains(out.String(), "uid=0") {
			t.Errorf("job %d output:\n%s", i, out.String())
		}
		pid := launcherPid(l)
		if pid == 0 || first != 0 && pid != first {
			t.Errorf("job %d ran through launcher %d, the first through %d: want one launcher", i, pid, first)
		}
		first = pid
		if err := l.Cleanup(context.Background(), job); err != nil {
			t.Fatal(err)
		}
	}

	broken := isolatedLocal(t, 1)
	broken.Shell = []string{"/nonexistent/sh", "-c"}
	job := isolatedJob(root, 20, "echo never")
	var out syncBuffer
	res := broken.Run(context.Background(), job, &out, &recorder{t: t})
	if res.Status != run.Failed || !strings.Contains(out.String(), "cannot start /nonexistent/sh") {
		t.Errorf("a step whose shell is missing: %+v, want failed, cannot start\n%s", res, out.String())
	}
	broken.Cleanup(context.Background(), job)
}

// TestLauncherCancel cancels a step run as a step user whose processes ignore SIGTERM and
// left its process group and session: all are gone within the grace, the job is canceled.
func TestLauncherCancel(t *testing.T) {
	t.Parallel()
	l := isolatedLocal(t, 1)
	l.KillGrace = 300 * time.Millisecond
	job := isolatedJob(workspaceRoot(t), 30, `setsid sleep 3007001 & (setsid sh -c 'trap "" TERM; sleep 3007002' &); trap "" TERM; echo up; sleep 3007003`)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan Result, 1)
	go func() { done <- l.Run(ctx, job, &out, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the step to start its children", func() bool {
		return strings.Contains(out.String(), "up") && len(sleepers("3007001")) > 0 && len(sleepers("3007002")) > 0
	})
	cancel()
	select {
	case res := <-done:
		if res.Status != run.Canceled {
			t.Errorf("result %+v, want canceled", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, a := range []string{"3007001", "3007002", "3007003"} {
		if pids := sleepers(a); len(pids) > 0 {
			t.Errorf("sleep %s outlived the canceled step: %v", a, pids)
		}
	}
	l.Cleanup(context.Background(), job)
}

// TestLauncherKilledMidStep kills the launcher (kill -9) while a step runs: the step fails
// saying so, its processes are killed, and the next job starts a new launcher and runs.
func TestLauncherKilledMidStep(t *testing.T) {
	t.Parallel()
	l := isolatedLocal(t, 2)
	root := workspaceRoot(t)
	job := isolatedJob(root, 40, `setsid sleep 3008001 & echo up; sleep 3008002`)
	var out syncBuffer
	done := make(chan Result, 1)
	go func() { done <- l.Run(context.Background(), job, &out, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the step to start", func() bool {
		return strings.Contains(out.String(), "up") && len(sleepers("3008001")) > 0 && len(sleepers("3008002")) > 0
	})
	old := launcherPid(l)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.Status != run.Failed || !strings.Contains(res.Message, "step launcher ended") {
			t.Errorf("result %+v, want failed: the step launcher ended", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its launcher was killed")
	}
	waitFor(t, 10*time.Second, "the step's processes to be gone", func() bool {
		return len(sleepers("3008001")) == 0 && len(sleepers("3008002")) == 0
	})
	l.Cleanup(context.Background(), job)

	next := isolatedJob(root, 41, "echo again")
	var out2 syncBuffer
	if res := l.Run(context.Background(), next, &out2, &recorder{t: t}); res.Status != run.Success {
		t.Errorf("the next job: %+v\n%s", res, out2.String())
	}
	if pid := launcherPid(l); pid == 0 || pid == old {
		t.Errorf("the next job ran through launcher %d; the killed one was %d", pid, old)
	}
	l.Cleanup(context.Background(), next)
}

// BenchmarkOneStepJob runs a job of one step `echo x`, from the workspace to its cleanup:
// through the step launcher as a step user (root only), through a shim of its own as the
// server's user, and the floor, /bin/sh fork/exec'd with its output through a pipe. CPU of
// the children (shim, launcher's shells) is not in ns/op's process; compare with `time`.
//
//	go test -run '^$' -bench OneStepJob -benchtime 200x ./internal/executor
func BenchmarkOneStepJob(b *testing.B) {
	b.Run("launcher", func(b *testing.B) {
		if !CanSwitchUsers() {
			b.Skip("needs root")
		}
		u, err := NewUsers(2147990000, 2147990007)
		if err != nil {
			b.Fatal(err)
		}
		l := NewLocal(nil, testShim(b), u)
		defer l.Close()
		benchJobs(b, l, true)
	})
	b.Run("shim", func(b *testing.B) {
		benchJobs(b, NewLocal(nil, testShim(b), nil), false)
	})
	b.Run("sh", func(b *testing.B) {
		for range b.N {
			cmd := exec.Command("/bin/sh", "-c", "echo x")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchJobs(b *testing.B, l *Local, isolated bool) {
	root, err := os.MkdirTemp("/var/tmp", "flowd-exec-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o711)
	b.ResetTimer()
	for i := range b.N {
		job := Job{RunID: 1, JobID: int64(i), Workspace: filepath.Join(root, strconv.Itoa(i)),
			Env: []string{"PATH=/usr/bin:/bin"}, Steps: []Step{{ID: 1, Name: "s", Script: "echo x"}}}
		var out bytes.Buffer
		if res := l.Run(context.Background(), job, &out, nopReporter{}); res.Status != run.Success {
			b.Fatalf("%+v\n%s", res, out.String())
		}
		if err := l.Cleanup(context.Background(), job); err != nil {
			b.Fatal(err)
		}
	}
}
