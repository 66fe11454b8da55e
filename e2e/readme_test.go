package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestReadmeTourAsWritten follows the README's tour as a newcomer would, from its own text: it
// reads the commands out of README.md and runs them with /bin/sh in a fresh folder holding the
// examples and the binary as ./flowd, with nothing in the environment but HOME, PATH and
// FLOWD_STEP_USER (a uid range of its own, see stepUIDs). The
// server listens on a free port through the tour's own "if port 8080 is taken" lines (so
// `flowd login --server` is what every later command relies on), every "# prints:" comment is
// checked, the ids the tour cancels and reads by are the ones the CLI printed, the server is
// stopped and started again with the same line, and the curl section runs as one script.
func TestReadmeTourAsWritten(t *testing.T) {
	t.Parallel()
	blocks := tourBlocks(t)
	dir := t.TempDir()
	if err := os.Symlink(flowdBin, filepath.Join(dir, "flowd")); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../examples", filepath.Join(dir, "examples"))
	// Each server of the tests steps as uids of its own (the README's server would take the
	// default range, which another server on this machine may hold).
	env := append(baseEnv(t), "FLOWD_STEP_USER="+stepUIDs(dir))
	port := freePort(t)
	local := func(line string) string {
		line = strings.ReplaceAll(line, "127.0.0.1:8081", "127.0.0.1:"+port)
		return strings.ReplaceAll(line, "127.0.0.1:8080", "127.0.0.1:"+port)
	}

	// The tour's first two blocks start the server and sign in on port 8080, which a test cannot
	// count on; the third does the same on another port and must say exactly that.
	if len(blocks) < 4 || len(blocks[0]) != 2 || len(blocks[1]) != 1 || len(blocks[2]) != 2 {
		t.Fatalf("the tour's first blocks are not build+serve, login, serve+login on another port: %q", blocks)
	}
	serveLine, loginLine := blocks[0][1], blocks[1][0]
	if want := serveLine + " --addr 127.0.0.1:8081"; blocks[2][0] != want {
		t.Fatalf("the other-port serve line is %q, want %q", blocks[2][0], want)
	}
	if want := loginLine + " --server http://127.0.0.1:8081"; blocks[2][1] != want {
		t.Fatalf("the other-port login line is %q, want %q", blocks[2][1], want)
	}
	srv := startTourServer(t, dir, env, local(blocks[2][0]))
	if out, err := tourShell(dir, env, local(blocks[2][1])); err != nil || !strings.Contains(out, "logged in to http://127.0.0.1:"+port+" as admin") {
		t.Fatalf("%s: %v\n%s", blocks[2][1], err, out)
	}

	printed := map[string]string{} // "hello", "slow" → the id `flowd run` printed
	for _, block := range blocks[3:] {
		if strings.HasPrefix(block[0], "TOKEN=") {
			// The curl section: one script, its variables carried from line to line.
			out, err := tourShell(dir, env, local(strings.Join(block, "\n")))
			if err != nil || !strings.Contains(out, "hi abc=456 target=staging") || !strings.Contains(out, "the key is ***") {
				t.Fatalf("the curl section: %v\n%s", err, out)
			}
			continue
		}
		for _, line := range block {
			out, err := tourShell(dir, env, local(line))
			if err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			if _, want, ok := strings.Cut(line, "# prints: "); ok && !strings.Contains(out, local(want)) {
				t.Errorf("%s\nprinted %q, the README says it prints %q", line, out, local(want))
			}
			if m := regexp.MustCompile(`^\./flowd run (\w+).*\(id (\d+)\)`).FindStringSubmatch(line); m != nil {
				if !strings.Contains(out, "(id "+m[2]+")") {
					t.Errorf("%s: printed %q", line, out)
				}
				printed[m[1]] = m[2]
			}
			switch {
			case strings.HasPrefix(line, "./flowd run hello"):
				if !strings.Contains(out, "hi abc=456 target=staging") || !strings.Contains(out, "the key is ***") {
					t.Errorf("%s: the log is not there:\n%s", line, out)
				}
			case strings.HasPrefix(line, "./flowd logs hello#1 --job unit"):
				// One job's lines, each with its time, and no other job's.
				if !strings.Contains(out, "unit tests of run 1 pass") || strings.Contains(out, "hi abc=456") ||
					!regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ▶ `).MatchString(out) {
					t.Errorf("%s: printed %q", line, out)
				}
			case regexp.MustCompile(`^\./flowd logs hello#1\s*(#|$)`).MatchString(line):
				// The same log by the id the tour names as the other way.
				byID, err := tourShell(dir, env, "./flowd logs "+printed["hello"])
				if err != nil || byID != out || !strings.Contains(out, "hi abc=456") {
					t.Errorf("logs hello#1 = %q, logs %s = %q (%v)", out, printed["hello"], byID, err)
				}
			case strings.HasPrefix(line, "./flowd cancel slow#1"):
				if !strings.Contains(out, "run slow#1 (id "+printed["slow"]+") canceled") {
					t.Errorf("%s: %q", line, out)
				}
				if _, other, _ := strings.Cut(line, "by the id it printed: ./flowd cancel "); other != printed["slow"] {
					t.Errorf("the README's other way is `./flowd cancel %s`, but `flowd run slow` printed id %s", other, printed["slow"])
				}
				if stepsAlive(srv) {
					t.Errorf("a step of the canceled run still runs")
				}
			}
		}
		if strings.Contains(strings.Join(block, "\n"), "./flowd cancel") {
			// "Stop the server with Ctrl-C …, start it again with the same command, and
			// `./flowd runs hello` shows the same history."
			srv.interrupt()
			srv = startTourServer(t, dir, env, local(blocks[2][0]))
			if strings.Contains(srv.out.String(), "is ignored") {
				t.Errorf("a restart with the same FLOWD_ADMIN_PASSWORD warns:\n%s", srv.out.String())
			}
			out, err := tourShell(dir, env, "./flowd runs hello")
			if err != nil || !regexp.MustCompile(`#1\s+`+printed["hello"]+`\s+success\s+manual\s+admin`).MatchString(out) {
				t.Fatalf("runs hello after the restart: %v\n%s", err, out)
			}
		}
	}
	if printed["hello"] == "" || printed["slow"] == "" {
		t.Fatalf("the tour ran no `flowd run` with a `# prints:` comment: %v", printed)
	}
	srv.interrupt()
}

// TestAdminPasswordIgnored: on a database that has users, `flowd serve` says FLOWD_ADMIN_PASSWORD
// is ignored (unless it is admin's password already), a login with it is refused as a wrong
// password without a hint about tokens, and --reset-admin-password makes it admin's password.
// (A start with admin's own password says nothing: TestReadmeTourAsWritten restarts so.)
func TestAdminPasswordIgnored(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn) // creates admin with adminPassword
	srv.stop()

	other := "another-password"
	srv = startServerEnv(t, data, dsn, []string{"FLOWD_ADMIN_PASSWORD=" + other})
	log := srv.out.String()
	if !strings.Contains(log, "FLOWD_ADMIN_PASSWORD is ignored: this database has users already") ||
		!strings.Contains(log, "level=WARN") || !strings.Contains(log, "--reset-admin-password") {
		t.Errorf("the start does not say FLOWD_ADMIN_PASSWORD is ignored:\n%s", log)
	}
	_, errOut, code := srv.cliIn("", other+"\n", "login", "--user", "admin", "--password-stdin", "--server", srv.URL)
	if code != 1 || !strings.Contains(errOut, "wrong username or password") || strings.Contains(errOut, "token") {
		t.Errorf("login with the ignored password: exit %d, stderr %q", code, errOut)
	}
	srv.stop()

	srv = startServerEnv(t, data, dsn, []string{"FLOWD_ADMIN_PASSWORD=" + other}, "--reset-admin-password")
	if !strings.Contains(srv.out.String(), "reset the password of the user admin") {
		t.Errorf("the reset does not say so:\n%s", srv.out.String())
	}
	if out, errOut, code := srv.cliIn("", other+"\n", "login", "--user", "admin", "--password-stdin", "--server", srv.URL); code != 0 {
		t.Errorf("login after the reset: exit %d\n%s%s", code, out, errOut)
	}
}

// tourBlocks returns the commands of the README's tour: its ```sh blocks, one line per command
// (a line ending in \ continues), without the blank lines.
func tourBlocks(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(string(readme), "## A five-minute tour\n")
	if !ok {
		t.Fatal("README.md has no tour")
	}
	tour, _, _ = strings.Cut(tour, "\n### ")
	var blocks [][]string
	for _, part := range strings.Split(tour, "```sh\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		code = strings.ReplaceAll(code, "\\\n", "\n")
		var lines []string
		for _, l := range strings.Split(code, "\n") {
			switch {
			case strings.TrimSpace(l) == "":
			case strings.HasPrefix(l, " ") && len(lines) > 0: // a continued line
				lines[len(lines)-1] += " \\\n" + l
			default:
				lines = append(lines, l)
			}
		}
		blocks = append(blocks, lines)
	}
	return blocks
}

// tourShell runs a command line as pasted into a shell in dir, and returns its output.
func tourShell(dir string, env []string, line string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startTourServer starts a "VAR=value ./flowd serve …" line in dir and waits until it listens.
// Whatever the server started is killed at the end of the test, if it is still there.
func startTourServer(t *testing.T, dir string, env []string, line string) *server {
	t.Helper()
	words := strings.Fields(line)
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "./flowd" || words[1] != "serve" {
		t.Fatalf("not a serve line: %q", line)
	}
	if err := trackSources(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flowdBin, words[1:]...)
	cmd.Dir, cmd.Env = dir, env
	s := launch(t, cmd)
	t.Cleanup(func() { // before launch's clean-up kills the server itself
		if cmd.ProcessState == nil {
			for _, pid := range descendants(cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return s
}

// stepsAlive reports whether any process s started still runs. The server's step launcher
// (started at the first step of a job run as a step user, and kept) is not a step: only what
// runs below it is; nor is a zombie (an empty command line) about to be reaped.
func stepsAlive(s *server) bool {
	for _, p := range descendants(s.cmd.Process.Pid) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		if len(cmdline) > 0 && !bytes.HasSuffix(bytes.TrimRight(cmdline, "\x00"), []byte("\x00__step-launcher")) {
			return true
		}
	}
	return false
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if f := strings.Fields(string(stat[i+1:])); i > 0 && len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// copyDir copies the files of src into a new folder dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
