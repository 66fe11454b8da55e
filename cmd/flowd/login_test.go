package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoginRemembersServer: the server given to `flowd login` is the one every later command
// and a later login use, unless --server or FLOWD_SERVER (in that order) name another.
func TestLoginRemembersServer(t *testing.T) {
	t.Parallel()
	a, b := newFakeServer(t), newFakeServer(t)
	env := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_USER": "alice", "FLOWD_PASSWORD": "s3cret pw"}
	if r := runCLI(t, env, "", "login", "--server", a.URL); r.code != 0 {
		t.Fatalf("login --server: exit %d %s", r.code, r.stderr)
	}
	// A later login without --server signs in to the remembered server again.
	if r := runCLI(t, env, "", "login"); r.code != 0 || !strings.Contains(r.stdout, "logged in to "+a.URL) {
		t.Fatalf("second login: exit %d %q", r.code, r.stdout)
	}
	if n := strings.Count(strings.Join(a.got(), "\n"), "POST /api/v1/tokens"); n != 2 || len(b.got()) != 0 {
		t.Errorf("logins reached the remembered server %d times (want 2) and the other %d times (want 0)", n, len(b.got()))
	}
	// Commands use the remembered server and token.
	if r := runCLI(t, env, "", "runs", "hello"); r.code != 0 || !strings.Contains(r.stdout, "#3") {
		t.Errorf("runs with the remembered server: exit %d", r.code)
	}
	// FLOWD_SERVER names another server, whose token this login is not.
	env["FLOWD_SERVER"] = b.URL
	if r := runCLI(t, env, "", "runs", "hello"); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+b.URL) {
		t.Errorf("FLOWD_SERVER=other: exit %d %q", r.code, r.stderr)
	}
	// --server beats FLOWD_SERVER.
	if r := runCLI(t, env, "", "runs", "hello", "--server", a.URL); r.code != 0 {
		t.Errorf("--server over FLOWD_SERVER: exit %d %q", r.code, r.stderr)
	}
	if len(b.got()) != 0 {
		t.Errorf("the other server got %v", b.got())
	}
}

// TestLoginWrongPassword: a wrong password is said to be one, without the hint about tokens
// that other 401 answers get.
func TestLoginWrongPassword(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_SERVER": f.URL}
	r := runCLI(t, env, "nope-nope\n", "login", "--user", "alice", "--password-stdin")
	want := "flowd: wrong username or password (signing in to " + f.URL + " as alice)\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("wrong password: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	// For admin, where its password comes from.
	r = runCLI(t, env, "nope-nope\n", "login", "--user", "admin", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "flowd: wrong username or password") || !strings.Contains(r.stderr, "--reset-admin-password") || strings.Contains(r.stderr, "token") {
		t.Errorf("wrong admin password: exit %d, stderr %q", r.code, r.stderr)
	}
	// A command with a bad token still gets the token hint.
	env["FLOWD_TOKEN"] = "revoked"
	if r := runCLI(t, env, "", "runs", "hello"); r.code != 1 || !strings.Contains(r.stderr, "token is missing, revoked or expired") {
		t.Errorf("bad token: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestPasswordPromptDoesNotEcho types a password into a real pseudo-terminal: it signs in, and
// nothing of it is echoed back to the terminal. Piped stdin (not a terminal) is read as a line,
// as TestLoginPasswordSources shows.
func TestPasswordPromptDoesNotEcho(t *testing.T) {
	t.Parallel()
	ptmx, pts := openPTY(t)
	f := newFakeServer(t)
	var out, errOut bytes.Buffer
	env := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "FLOWD_SERVER": f.URL}
	c := &cli{stdin: pts, stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }, hc: http.DefaultClient}
	done := make(chan int, 1)
	go func() { done <- c.dispatch(context.Background(), []string{"login", "--user", "alice"}) }()

	// Type only once the prompt has turned the echo off, as a person would after the prompt.
	deadline := time.Now().Add(time.Minute)
	for {
		tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prompt never turned the terminal's echo off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte("s3cret pw\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "logged in to "+f.URL+" as alice") {
			t.Fatalf("login at a terminal: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("login did not finish")
	}
	if !strings.Contains(errOut.String(), "Password for alice: ") {
		t.Errorf("no prompt on stderr: %q", errOut.String())
	}
	// Everything the terminal shows, up to a marker written after the login.
	if _, err := pts.Write([]byte("END\n")); err != nil {
		t.Fatal(err)
	}
	shown := readUntil(t, ptmx, "END")
	if strings.Contains(shown, "s3cret") {
		t.Errorf("the password was echoed: the terminal shows %q", shown)
	}
}

// openPTY opens a pseudo-terminal pair (master, slave), or skips where there is none.
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptmx, pts
}

// readUntil reads r until what it read contains marker, or a minute passes.
func readUntil(t *testing.T, r *os.File, marker string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	_ = r.SetReadDeadline(time.Now().Add(time.Minute))
	for !bytes.Contains(got, []byte(marker)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the terminal showed %q and then %v", got, err)
			}
			t.Fatal(err)
		}
	}
	return string(got)
}
