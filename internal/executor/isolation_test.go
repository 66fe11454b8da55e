package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// needRoot skips a test that switches users when the tests do not run as root, or fails it
// under FLOWD_TEST_REQUIRE_ALL=1 (CI runs as root).
func needRoot(t *testing.T) {
	t.Helper()
	if CanSwitchUsers() {
		return
	}
	if os.Getenv("FLOWD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("this test runs steps as other users and needs root; FLOWD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("this test runs steps as other users and needs root")
}

// testUIDs gives each test a range of its own, so parallel tests never share a uid.
var (
	testUIDsMu   sync.Mutex
	testUIDsNext uint32 = 2147200000
)

func newUsers(t *testing.T, n uint32) *Users {
	t.Helper()
	testUIDsMu.Lock()
	first := testUIDsNext
	testUIDsNext += n
	testUIDsMu.Unlock()
	u, err := NewUsers(first, first+n-1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.KillAll(context.Background()) })
	return u
}

// workspaceRoot is a folder other users can traverse (t.TempDir's parents are 0700), as the
// server's workspace root is.
func workspaceRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "flowd-exec-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// isolatedJob is a job of its own id whose workspace is under root.
func isolatedJob(root string, id int64, scripts ...string) Job {
	job := Job{RunID: 1, JobID: id, Workspace: filepath.Join(root, fmt.Sprintf("1-%d", id)), Env: []string{"PATH=/usr/bin:/bin", "HOME=/root"}}
	for i, s := range scripts {
		job.Steps = append(job.Steps, Step{ID: int64(i + 1), Name: fmt.Sprintf("s%d", i+1), Script: s})
	}
	return job
}

// TestIsolatedStepCannotReachTheServer runs a hostile job as a step user and checks that it
// cannot read a private folder of the server's (as the data folder is), the server's
// environment or signal the server, and that it runs with no group and no way to gain rights.
func TestIsolatedStepCannotReachTheServer(t *testing.T) {
	needRoot(t)
	t.Parallel()
	private := t.TempDir() // 0700, root's: as the data folder
	key := filepath.Join(private, "secret.key")
	if err := os.WriteFile(key, []byte("the-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := newUsers(t, 2)
	l := NewLocal(nil, testShim(t), users)
	root := workspaceRoot(t)
	job := isolatedJob(root, 1,
		`id -u; id -G; echo "home=$HOME tmp=$TMPDIR"; ls -ld "$PWD" | cut -c1-10`,
		`cat `+key+` && echo READ-KEY; true`,
		`cat /proc/`+strconv.Itoa(os.Getpid())+`/environ && echo READ-ENV; true`,
		`kill -0 `+strconv.Itoa(os.Getpid())+` && echo SIGNALED; true`,
		`grep NoNewPrivs /proc/self/status`,
		`touch `+filepath.Join(root, "planted")+` && echo PLANTED; true`,
		`echo left > /tmp/flowd-isolation-test-$(id -u); mkdir -p /dev/shm/flowd-isolation-test-$(id -u)`,
	)
	var out syncBuffer
	res := l.Run(context.Background(), job, &out, &recorder{t: t})
	t.Logf("output:\n%s", out.String())
	if res.Status != run.Success {
		t.Fatalf("result %+v", res)
	}
	got := out.String()
	uid := strconv.Itoa(int(users.First))
	if !strings.Contains(got, "\n"+uid+"\n"+uid+"\n") {
		t.Errorf("the step did not run as uid %s with only its own group", uid)
	}
	for _, leak := range []string{"READ-KEY", "the-key", "READ-ENV", leakVar, "SIGNALED", "PLANTED"} {
		if strings.Contains(got, leak) {
			t.Errorf("the step could do what it must not: %q in its output", leak)
		}
	}
	if !strings.Contains(got, "NoNewPrivs:\t1") {
		t.Error("the step may gain privileges through setuid programs (no_new_privs is not set)")
	}
	if !strings.Contains(got, "home="+homeOf(job.Workspace)+" tmp="+filepath.Join(homeOf(job.Workspace), "tmp")) {
		t.Error("HOME and TMPDIR are not the job's private folders")
	}
	if !strings.Contains(got, "drwx------") {
		t.Error("the workspace is not private (0700)")
	}
	if err := l.Cleanup(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	left := fmt.Sprintf("flowd-isolation-test-%d", users.First)
	for _, dir := range []string{job.Workspace, homeOf(job.Workspace), "/tmp/" + left, "/dev/shm/" + left} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left after Cleanup: %v", dir, err)
		}
	}
}

// TestIsolatedJobsCannotReadEachOther runs two jobs at once: the second tries to read the
// first's workspace, HOME and environment while the first is running.
func TestIsolatedJobsCannotReadEachOther(t *testing.T) {
	needRoot(t)
	t.Parallel()
	users := newUsers(t, 2)
	l := NewLocal(nil, testShim(t), users)
	root := workspaceRoot(t)
	victim := isolatedJob(root, 1, `echo private > secret.txt; echo "$$" > "$HOME/pid"; echo ready > "$HOME/ready"; sleep 600`)
	victim.Env = append(victim.Env, "VICTIM_TOKEN=victim-secret-value")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var victimOut syncBuffer
	done := make(chan Result, 1)
	go func() { done <- l.Run(ctx, victim, &victimOut, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the first job to start", func() bool {
		_, err := os.Stat(filepath.Join(homeOf(victim.Workspace), "ready"))
		return err == nil
	})
	pid, _ := os.ReadFile(filepath.Join(homeOf(victim.Workspace), "pid"))
	attacker := isolatedJob(root, 2,
		`cat `+filepath.Join(victim.Workspace, "secret.txt")+` && echo READ-WS; true`,
		`ls `+homeOf(victim.Workspace)+` && echo LISTED-HOME; true`,
		`cat /proc/`+strings.TrimSpace(string(pid))+`/environ && echo READ-ENV; true`,
		`kill -STOP `+strings.TrimSpace(string(pid))+` && echo STOPPED; true`,
	)
	var out syncBuffer
	res := l.Run(context.Background(), attacker, &out, &recorder{t: t})
	t.Logf("attacker output:\n%s", out.String())
	if res.Status != run.Success {
		t.Fatalf("result %+v", res)
	}
	for _, leak := range []string{"READ-WS", "private", "LISTED-HOME", "READ-ENV", "victim-secret-value", "STOPPED"} {
		if strings.Contains(out.String(), leak) {
			t.Errorf("a job reached another job: %q in its output", leak)
		}
	}
	cancel()
	if r := <-done; r.Status != run.Canceled {
		t.Errorf("the first job ended %+v, want canceled", r)
	}
	l.Cleanup(context.Background(), victim)
	l.Cleanup(context.Background(), attacker)
}

// sleepers lists the live processes whose command line is exactly "sleep <arg>".
func sleepers(arg string) []int {
	var out []int
	for _, p := range procs() {
		if p.state == 'Z' || p.state == 'X' {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
		if err == nil && string(b) == "sleep\x00"+arg+"\x00" {
			out = append(out, p.pid)
		}
	}
	return out
}

// TestNothingEscapesTheStep starts processes that leave the step's process group and session
// in every usual way; none may outlive the step, with or without a step user.
func TestNothingEscapesTheStep(t *testing.T) {
	t.Parallel()
	for _, isolated := range []bool{false, true} {
		t.Run(fmt.Sprintf("isolated=%v", isolated), func(t *testing.T) {
			if isolated {
				needRoot(t)
			}
			t.Parallel()
			// Unique arguments per subtest, so parallel tests never see each other's sleeps.
			base := 3004000 + map[bool]int{false: 0, true: 100}[isolated]
			args := []string{strconv.Itoa(base + 1), strconv.Itoa(base + 2), strconv.Itoa(base + 3), strconv.Itoa(base + 4)}
			script := fmt.Sprintf(`(setsid sh -c 'sleep %s' &)
setsid -f sleep %s
setsid sleep %s &
nohup sh -c 'sleep %s' >/dev/null 2>&1 &
sleep 0.3
echo started`, args[0], args[1], args[2], args[3])
			var l *Local
			var job Job
			if isolated {
				l = NewLocal(nil, testShim(t), newUsers(t, 1))
				job = isolatedJob(workspaceRoot(t), 1, script, "echo second")
			} else {
				l = newLocal(t)
				job = newJob(t, script, "echo second")
			}
			var out syncBuffer
			res := l.Run(context.Background(), job, &out, &recorder{t: t})
			t.Logf("output:\n%s", out.String())
			if res.Status != run.Success || !strings.Contains(out.String(), "started") {
				t.Fatalf("result %+v", res)
			}
			for _, a := range args {
				if pids := sleepers(a); len(pids) > 0 {
					t.Errorf("sleep %s outlived its step: pids %v", a, pids)
					for _, p := range pids {
						syscall.Kill(p, syscall.SIGKILL)
					}
				}
			}
			l.Cleanup(context.Background(), job)
		})
	}
}

// TestNothingEscapesCancel cancels a step whose children detached with setsid.
func TestNothingEscapesCancel(t *testing.T) {
	t.Parallel()
	job := newJob(t, `setsid sleep 3005001 & (setsid sh -c 'trap "" TERM; sleep 3005002' &); echo up; sleep 600`)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan Result, 1)
	go func() { done <- newLocal(t).Run(ctx, job, &out, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the step to start its children", func() bool {
		return strings.Contains(out.String(), "up") && len(sleepers("3005001")) > 0 && len(sleepers("3005002")) > 0
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
	for _, a := range []string{"3005001", "3005002"} {
		if pids := sleepers(a); len(pids) > 0 {
			t.Errorf("sleep %s outlived the canceled step: %v", a, pids)
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
}

// TestKillUserSweepsTheUID starts processes as a uid outside any step (so no shim or process
// group can find them: detached, in sessions of their own, one ignoring SIGTERM), and one as
// another uid; KillUser must kill every process of the first uid and none of the second.
func TestKillUserSweepsTheUID(t *testing.T) {
	needRoot(t)
	t.Parallel()
	u := newUsers(t, 2)
	start := func(uid uint32, script string) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	}
	start(u.First, `setsid sleep 3006001 & (trap "" TERM; exec setsid sleep 3006002) & exit 0`)
	start(u.Last, `setsid sleep 3006003 & exit 0`)
	waitFor(t, 10*time.Second, "the sleeps to start", func() bool {
		return len(sleepers("3006001")) > 0 && len(sleepers("3006002")) > 0 && len(sleepers("3006003")) > 0
	})
	if err := KillUser(context.Background(), u.First, "/bin/sh"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first uid's processes to be gone", func() bool {
		return len(sleepers("3006001")) == 0 && len(sleepers("3006002")) == 0
	})
	if len(sleepers("3006003")) == 0 {
		t.Error("KillUser of one uid killed a process of another")
	}
}

// TestTmpWatch: a reclaim removes what its uid made in a watched folder since the watch began,
// keeps another pool uid's entries for that uid's reclaim, leaves entries of uids outside the
// pool alone, and says it cannot tell when events were lost after the job got its uid.
func TestTmpWatch(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	w := newTmpWatch([]string{dir, filepath.Join(dir, "missing")})
	if w == nil {
		t.Fatal("no inotify watch")
	}
	since := time.Now()
	touch := func(name string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mine, other, outside := touch("mine", 5001), touch("other", 5002), touch("outside", 7000)
	inPool := func(uid uint32) bool { return uid >= 5000 && uid < 6000 }
	if !w.reclaim(5001, since, inPool) {
		t.Fatal("the watch says it cannot tell, with no event lost")
	}
	for p, want := range map[string]bool{mine: false, other: true, outside: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
	if _, kept := w.names[other]; !kept {
		t.Error("another pool uid's entry was forgotten before its reclaim")
	}
	if _, kept := w.names[outside]; kept {
		t.Error("an entry of a uid outside the pool is still watched")
	}
	if !w.reclaim(5002, since, inPool) {
		t.Fatal("cannot tell")
	}
	if _, err := os.Lstat(other); err == nil {
		t.Error("the other pool uid's entry outlived its reclaim")
	}
	w.mu.Lock()
	w.lost = time.Now()
	w.mu.Unlock()
	if w.reclaim(5001, since, inPool) {
		t.Error("after lost events the watch still claims to know what a job made before them")
	}
	if !w.reclaim(5001, time.Now(), inPool) {
		t.Error("a job that got its uid after the lost events cannot trust the watch")
	}
}
