package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runID reads the run id out of `flowd run`'s first line: "run #3 (id 17) queued: …".
func runID(t *testing.T, out string) int64 {
	t.Helper()
	m := regexp.MustCompile(`\(id (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no run id in %q", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// slowPipeline is a one-step pipeline sleeping for secs seconds; the number marks its processes.
func slowPipeline(name string, secs int) string {
	return fmt.Sprintf(`name: %s
stages:
  - name: wait
    jobs:
      - name: sleep
        steps:
          - name: sleep
            run: echo "sleeping"; sleep %d; echo "woke up"
`, name, secs)
}

// TestTour is the README's tour: apply the example, run it with an overridden variable and
// follow its log, check a hostile value stays data, cancel a sleeping run, restart, and find the
// history intact.
func TestTour(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn)
			tok := srv.token("admin", adminPassword)

			out, errOut, code := srv.cli(tok, "pipeline", "apply", "-f", "../examples/hello.yaml")
			if code != 0 || !strings.Contains(out, "hello") {
				t.Fatalf("pipeline apply: exit %d\n%s%s", code, out, errOut)
			}

			out, errOut, code = srv.cli(tok, "run", "hello", "--var", "abc=456", "--follow")
			if code != 0 {
				t.Fatalf("run --follow: exit %d\n%s%s", code, out, errOut)
			}
			for _, want := range []string{"hi abc=456 target=staging", "the key is ***", "unit tests of run 1 pass", "lint is clean in "} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "s3cr3t-value") {
				t.Errorf("secret value leaked into the log:\n%s", out)
			}
			first := srv.run(tok, runID(t, out))
			if first.Status != "success" || len(first.Stages) != 2 || len(first.Stages[1].Jobs) != 2 {
				t.Fatalf("run = %+v, want success with 2 stages, the second with 2 jobs", first)
			}
			if first.Variables["abc"] != "456" || first.Trigger != "manual" || first.TriggeredBy != "admin" {
				t.Errorf("run variables/trigger = %v %s %s", first.Variables, first.Trigger, first.TriggeredBy)
			}
			if _, ok := first.Variables["API_KEY"]; ok {
				t.Errorf("secret variable returned by the API: %v", first.Variables)
			}
			// Stage order: both test jobs started after the build job.
			build := first.Stages[0].Jobs[0]
			for _, j := range first.Stages[1].Jobs {
				if j.StartedAt == nil || build.StartedAt == nil || j.StartedAt.Before(*build.StartedAt) {
					t.Errorf("job %s started before the build stage", j.Name)
				}
			}

			// A hostile value is printed, not executed.
			marker := filepath.Join(t.TempDir(), "pwned")
			out, errOut, code = srv.cli(tok, "run", "hello", "--var", "abc=$(touch "+marker+")", "--follow")
			if code != 0 || !strings.Contains(out, "abc=$(touch "+marker+")") {
				t.Fatalf("hostile run: exit %d\n%s%s", code, out, errOut)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a variable value was executed as code")
			}

			// A value outside the options is refused before anything runs.
			_, errOut, code = srv.cli(tok, "run", "hello", "--var", "TARGET=moon")
			if code == 0 || !strings.Contains(errOut, "TARGET") {
				t.Fatalf("bad option: exit %d, stderr %q", code, errOut)
			}

			// Cancel a sleeping step: the run ends canceled and its process is gone.
			secs := 600 + rand.IntN(10000)
			sleepMarker := fmt.Sprintf("sleep %d", secs)
			t.Cleanup(func() { killProcesses(sleepMarker) })
			if _, errOut, code := srv.cliIn(tok, slowPipeline("slow", secs), "pipeline", "apply", "-f", "-"); code != 0 {
				t.Fatalf("apply slow: %s", errOut)
			}
			out, errOut, code = srv.cli(tok, "run", "slow")
			if code != 0 {
				t.Fatalf("run slow: %d %s", code, errOut)
			}
			slowID := runID(t, out)
			waitFor(t, "the slow step to start", func() bool { return processAlive(sleepMarker) })
			start := time.Now()
			if out, errOut, code := srv.cli(tok, "cancel", strconv.FormatInt(slowID, 10)); code != 0 {
				t.Fatalf("cancel: %d %s%s", code, out, errOut)
			}
			t.Logf("cancel returned after %v", time.Since(start))
			if r := srv.run(tok, slowID); r.Status != "canceled" {
				t.Fatalf("after cancel the run is %s", r.Status)
			}
			if processAlive(sleepMarker) {
				t.Fatal("the step's process survived cancel")
			}
			if log := srv.log(tok, slowID); strings.Contains(log, "woke up") || !strings.Contains(log, "sleeping") {
				t.Errorf("canceled run's log:\n%s", log)
			}

			// Restart: history intact.
			srv.stop()
			srv = startServer(t, data, dsn)
			out, errOut, code = srv.cli(tok, "runs", "hello")
			if code != 0 {
				t.Fatalf("runs after restart: %d %s", code, errOut)
			}
			if !strings.Contains(out, "success") || strings.Count(out, "manual") != 2 {
				t.Fatalf("history after restart:\n%s", out)
			}
			if r := srv.run(tok, first.ID); r.Status != "success" || r.Variables["abc"] != "456" {
				t.Fatalf("first run after restart: %+v", r)
			}
		})
	}
}

// TestCrashRecovery kills the server while a job runs: after the restart that run is failed with
// a log line that says why, and a run that was queued behind it still runs.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn, "--executors", "1")
			tok := srv.token("admin", adminPassword)
			secs := 600 + rand.IntN(10000)
			sleepMarker := fmt.Sprintf("sleep %d", secs)
			t.Cleanup(func() { killProcesses(sleepMarker) })
			if _, errOut, code := srv.cliIn(tok, slowPipeline("slow", secs), "pipeline", "apply", "-f", "-"); code != 0 {
				t.Fatalf("apply: %s", errOut)
			}
			if _, errOut, code := srv.cli(tok, "pipeline", "apply", "-f", "../examples/hello.yaml"); code != 0 {
				t.Fatalf("apply: %s", errOut)
			}
			out, _, _ := srv.cli(tok, "run", "slow")
			slowID := runID(t, out)
			waitFor(t, "the slow step to start", func() bool { return processAlive(sleepMarker) })
			out, _, _ = srv.cli(tok, "run", "hello")
			queuedID := runID(t, out)
			if r := srv.run(tok, queuedID); r.Status != "queued" {
				t.Fatalf("with one executor busy the second run is %s, want queued", r.Status)
			}

			srv.crash()
			killProcesses(sleepMarker)
			srv = startServer(t, data, dsn, "--executors", "1")

			r := srv.run(tok, slowID)
			if r.Status != "failed" {
				t.Fatalf("interrupted run is %s, want failed", r.Status)
			}
			// Rescued at start, without waiting for the lease (60 s) to run out.
			if log := srv.log(tok, slowID); !strings.Contains(log, "runner_lost: attempt 1's runner") || !strings.Contains(log, "its server was restarted while the job ran") {
				t.Errorf("interrupted run's log does not say why:\n%s", log)
			}
			if j := srv.runAttempts(tok, slowID).job(); len(j.Attempts) != 1 || j.Attempts[0].State != "lost" {
				t.Errorf("interrupted job's attempts: %+v, want one, lost", j.Attempts)
			}
			waitFor(t, "the queued run to finish", func() bool { return srv.run(tok, queuedID).Status == "success" })
		})
	}
}

// TestGracefulStop stops the server while a step sleeps: it exits 0, the step's processes are
// gone and the run is recorded as canceled.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn)
	tok := srv.token("admin", adminPassword)
	secs := 600 + rand.IntN(10000)
	sleepMarker := fmt.Sprintf("sleep %d", secs)
	t.Cleanup(func() { killProcesses(sleepMarker) })
	if _, errOut, code := srv.cliIn(tok, slowPipeline("slow", secs), "pipeline", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	out, _, _ := srv.cli(tok, "run", "slow")
	id := runID(t, out)
	waitFor(t, "the slow step to start", func() bool { return processAlive(sleepMarker) })
	srv.stop()
	if processAlive(sleepMarker) {
		t.Fatal("a step's process survived the server's stop")
	}
	srv = startServer(t, data, dsn)
	r := srv.run(tok, id)
	if r.Status != "canceled" || !strings.Contains(r.Message, "shut down") {
		t.Fatalf("run after a clean stop: status %s, message %q", r.Status, r.Message)
	}
}
