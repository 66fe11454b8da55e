package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test reads the database file after the server stopped
)

// TestJobLogLimit runs a step that prints 21 MiB (11 MiB once masked) under a 1 MiB
// --max-job-log: the job succeeds, and its stored log is the first and last half MiB with the
// limit's notice and marker between them, with a secret printed on both sides of the cut masked.
func TestJobLogLimit(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn, "--max-job-log", "1MiB")
			tok := srv.token("admin", adminPassword)
			const pipeline = `name: loud
variables:
  TOKEN:
    secret: true
    default: hunter2-s3cr3t
stages:
  - name: build
    jobs:
      - name: print
        steps:
          - name: flood
            run: |
              echo "FIRST-LINE $TOKEN"
              yes "$TOKEN and more" | head -n 900000  # 21 MiB
              echo "LAST-LINE $TOKEN"
`
			if _, errOut, code := srv.cliIn(tok, pipeline, "pipeline", "apply", "-f", "-"); code != 0 {
				t.Fatalf("apply: %s", errOut)
			}
			out, errOut, code := srv.cli(tok, "run", "loud", "--follow")
			if code != 0 {
				t.Fatalf("run --follow: exit %d\n%.2000s\n%s", code, out, errOut)
			}
			id := runID(t, out)
			if r := srv.run(tok, id); r.Status != "success" || r.Stages[0].Jobs[0].Status != "success" {
				t.Fatalf("a job past its log limit must go on and succeed: %+v", r)
			}
			log := srv.log(tok, id)
			t.Logf("stored log: %d bytes", len(log))
			if len(log) > 1<<20+2048 {
				t.Errorf("the stored log is %d bytes, want at most the 1 MiB limit and its two notes", len(log))
			}
			if i := strings.Index(log, "hunter2"); i >= 0 {
				t.Errorf("the secret is in the log: %q", log[max(0, i-100):min(len(log), i+100)])
			}
			for _, want := range []string{"FIRST-LINE ***", "LAST-LINE ***", "*** and more\n",
				"✂ the job's log reached half its limit of 1 MiB (--max-job-log)"} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks %q", want)
				}
			}
			marker := regexp.MustCompile(`\n✂ 1\d MiB of log dropped: the job's log is limited to 1 MiB \(--max-job-log\); the last 5\d\d KiB follow\n`)
			if !marker.MatchString(log) {
				t.Errorf("no marker saying about 10 MiB (11 MiB masked) were dropped in the log's middle:\n%.600s", log[len(log)/2-300:])
			}
			if f, l := strings.Index(log, "FIRST-LINE"), strings.Index(log, "LAST-LINE"); f < 0 || l < f || !strings.Contains(log[l:], "✔") {
				t.Errorf("head, tail and the step's result line are not in order")
			}
		})
	}
}

// fullDisk is a flowd server on an 8 MiB tmpfs running a job that prints 18 MiB.
type fullDisk struct {
	dir, db string // the tmpfs and the SQLite database on it
	srv     *server
	tok     string
	run     int64
}

// startFullDisk mounts the tmpfs (skipping the test without root, see smallDisk), starts flowd
// on it and starts a run of a step that prints 400000 lines, then script.
//
// The disk staying full is not tested here: it costs the appender's minute of retries. Its
// parts are: logs' TestWriterFailsWhenTheStoreStaysFull, store's TestLogAppendDatabaseFull and
// scheduler's TestLogFailure.
func startFullDisk(t *testing.T, script string) *fullDisk {
	t.Helper()
	f := &fullDisk{dir: smallDisk(t)}
	data := filepath.Join(f.dir, "data")
	f.db = filepath.Join(data, "flowd.db")
	f.srv = startServer(t, data, "sqlite:"+f.db)
	f.tok = f.srv.token("admin", adminPassword)
	pipeline := `name: full
stages:
  - name: build
    jobs:
      - name: print
        steps:
          - name: flood
            run: |
              yes "0123456789abcdef output that fills the disk" | head -n 400000
              ` + script + "\n"
	if _, errOut, code := f.srv.cliIn(f.tok, pipeline, "pipeline", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	out, errOut, code := f.srv.cli(f.tok, "run", "full")
	if code != 0 {
		t.Fatalf("run: %d %s%s", code, out, errOut)
	}
	f.run = runID(t, out)
	return f
}

// awaitOutput waits up to 3 minutes for the server to print text.
func (f *fullDisk) awaitOutput(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !strings.Contains(f.srv.out.String(), text); {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not print %q within 3 minutes", text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// grow makes the tmpfs large enough for the rest of the test.
func (f *fullDisk) grow(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size=256m", f.dir).CombinedOutput(); err != nil {
		t.Fatalf("make the tmpfs larger: %v: %s", err, out)
	}
}

// ended waits up to 3 minutes for the run to end and returns it.
func (f *fullDisk) ended(t *testing.T) runView {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	r := f.srv.run(f.tok, f.run)
	for ; r.Status == "running" || r.Status == "queued"; r = f.srv.run(f.tok, f.run) {
		if time.Now().After(deadline) {
			t.Fatalf("the run is still %s after 3 minutes", r.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

// stopIntact stops the server and checks it neither panicked nor raced, and that the
// database passes SQLite's integrity check.
func (f *fullDisk) stopIntact(t *testing.T) {
	t.Helper()
	f.srv.stop()
	for _, bad := range []string{"panic", "DATA RACE"} {
		if strings.Contains(f.srv.out.String(), bad) {
			t.Errorf("the server's output has %q", bad)
		}
	}
	conn, err := sql.Open("sqlite", f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
}

// TestDiskFull runs flowd on an 8 MiB tmpfs and fills it with a job's log: the server says
// plainly that the disk is full and holds the job's output back (the step waits) instead of
// losing it or failing; once the disk has room again (the tmpfs is made larger) the job ends
// successfully with its whole log, and the database is intact. It mounts a tmpfs, so it needs
// root (CI runs as root); elsewhere it is skipped, unless FLOWD_TEST_REQUIRE_ALL=1.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	f := startFullDisk(t, "echo LAST-LINE")
	f.awaitOutput(t, "database or disk is full")
	for _, l := range strings.Split(f.srv.out.String(), "\n") {
		if strings.Contains(l, "database or disk is full") {
			t.Logf("the server said: %s", l)
			break
		}
	}
	if r := f.srv.run(f.tok, f.run); r.Status != "running" {
		t.Fatalf("while its log cannot be written the job waits; the run is %s", r.Status)
	}
	f.grow(t)
	if r := f.ended(t); r.Status != "success" {
		t.Fatalf("once there is room the job goes on and succeeds; run: %+v", r)
	}
	log := f.srv.log(f.tok, f.run)
	if n := strings.Count(log, "0123456789abcdef output that fills the disk\n"); n != 400000 || !strings.Contains(log, "LAST-LINE") {
		t.Errorf("the log has %d of the 400000 lines (LAST-LINE: %v)", n, strings.Contains(log, "LAST-LINE"))
	}
	f.stopIntact(t)
}

// smallDisk mounts an 8 MiB tmpfs for the test, or skips it without root (see TestDiskFull).
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "flowd-e2e-full", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("mounting a small tmpfs needs root (CI runs as root): %v: %s", err, out)
		if os.Getenv("FLOWD_TEST_REQUIRE_ALL") == "1" {
			t.Fatal(msg + " (FLOWD_TEST_REQUIRE_ALL=1)")
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestLogRetentionAndLeftWorkspaces: a server killed while a job runs leaves its workspace,
// and the next start removes it; a run finished longer ago than --log-retention loses its log
// at start (the sweep), keeps its record, and the API, the CLI and the run say the log expired,
// while a recent run keeps its log.
func TestLogRetentionAndLeftWorkspaces(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn, "--log-retention", "1h")
	tok := srv.token("admin", adminPassword)
	secs := 600 + rand.IntN(10000)
	marker := fmt.Sprintf("sleep %d", secs)
	t.Cleanup(func() { killProcesses(marker) })
	pipeline := fmt.Sprintf(`name: keep
variables:
  SLOW: ""
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: say
            run: |
              echo "workspace=$FLOWD_WORKSPACE"
              echo "a line to keep"
              if [ -n "$SLOW" ]; then %s; fi
`, marker)
	if _, errOut, code := srv.cliIn(tok, pipeline, "pipeline", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	out, errOut, code := srv.cli(tok, "run", "keep", "--follow")
	if code != 0 {
		t.Fatalf("run: %d %s%s", code, out, errOut)
	}
	old := runID(t, out)

	out, errOut, code = srv.cli(tok, "run", "keep", "--var", "SLOW=1")
	if code != 0 {
		t.Fatalf("run: %d %s%s", code, out, errOut)
	}
	slow := runID(t, out)
	var ws string
	waitFor(t, "the slow step to start", func() bool {
		m := regexp.MustCompile(`workspace=(\S+)`).FindStringSubmatch(srv.log(tok, slow))
		if m != nil {
			ws = m[1]
		}
		return m != nil && processAlive(marker)
	})
	srv.crash()
	killProcesses(marker)
	if _, err := os.Stat(ws); err != nil {
		t.Fatalf("the crash should have left the workspace %s: %v", ws, err)
	}
	// The first run finished long ago.
	conn, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec("UPDATE runs SET finished_at = 1 WHERE id = ?", old); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	srv = startServer(t, data, dsn, "--log-retention", "1h")
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("the workspace left by the crash is still there after the restart: %v", err)
	}
	var r struct {
		Status       string     `json:"status"`
		LogExpiredAt *time.Time `json:"log_expired_at"`
	}
	waitFor(t, "the old run's log to expire", func() bool {
		srv.api(tok, "GET", fmt.Sprintf("/api/v1/runs/%d", old), nil, &r)
		return r.LogExpiredAt != nil
	})
	if r.Status != "success" {
		t.Errorf("the run's record changed: %s", r.Status)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code := srv.api(tok, "GET", fmt.Sprintf("/api/v1/runs/%d/log", old), nil, &e); code != 410 || e.Error.Code != "log_expired" ||
		!strings.Contains(e.Error.Message, "expired on") || !strings.Contains(e.Error.Message, "--log-retention") {
		t.Errorf("GET the expired log: %d %+v", code, e)
	}
	if out, errOut, code := srv.cli(tok, "logs", fmt.Sprint(old)); code == 0 || !strings.Contains(errOut, "expired on") {
		t.Errorf("flowd logs of an expired log: exit %d\n%s%s", code, out, errOut)
	}
	if log := srv.log(tok, slow); !strings.Contains(log, "a line to keep") {
		t.Errorf("the recent run lost its log:\n%s", log)
	}
}
