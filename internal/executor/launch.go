package executor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// errLauncherGone is what a step waiting on a launcher gets when the launcher's socket ends.
var errLauncherGone = errors.New("the step launcher ended before the step did")

// launcherConn is the server's side of one step launcher (see launcher.go).
type launcherConn struct {
	conn  *net.UnixConn
	cmd   *exec.Cmd
	wmu   sync.Mutex // one frame at a time
	mu    sync.Mutex // guards the fields below
	next  uint64
	steps map[uint64]chan launchEvent
	gone  bool
	// removeRecord removes the launcher's record in Local.Procs; nil when not recorded.
	removeRecord func()
}

// startLauncher starts bin as the step launcher, in a process group of its own with an empty
// environment; with procs set, it is recorded there like a step (KillRecorded).
func startLauncher(bin, procs string) (*launcherConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("executor: step launcher socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "launcher"), os.NewFile(uintptr(fds[1]), "server")
	defer theirs.Close()
	cmd := exec.Command(bin, LauncherCommand)
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		mine.Close()
		return nil, fmt.Errorf("executor: start the step launcher: %w", err)
	}
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("executor: step launcher socket: %w", err)
	}
	lc := &launcherConn{conn: fc.(*net.UnixConn), cmd: cmd, steps: map[uint64]chan launchEvent{}}
	if procs != "" {
		if remove, err := recordStep(procs, cmd.Process.Pid); err == nil {
			lc.removeRecord = remove
		}
	}
	go lc.read()
	return lc, nil
}

// read hands the launcher's events to the steps they are about, until the socket ends; then
// every step still waiting gets errLauncherGone.
func (lc *launcherConn) read() {
	for {
		var ev launchEvent
		fds, err := readFrame(lc.conn, &ev)
		closeFDs(fds)
		if err != nil {
			break
		}
		lc.mu.Lock()
		ch := lc.steps[ev.ID]
		if ev.Status != "" || ev.Err != "" {
			delete(lc.steps, ev.ID)
		}
		lc.mu.Unlock()
		if ch != nil {
			ch <- ev
		}
	}
	lc.mu.Lock()
	lc.gone = true
	waiting := lc.steps
	lc.steps = nil
	lc.mu.Unlock()
	for _, ch := range waiting {
		ch <- launchEvent{Err: errLauncherGone.Error()}
	}
	lc.conn.Close()
	lc.cmd.Wait()
	if lc.removeRecord != nil {
		lc.removeRecord()
	}
}

// start asks the launcher to start a step writing to out; the returned channel gets the step's
// events: started (Pid) then ended (Status), or one Err. out may be closed once start returns.
func (lc *launcherConn) start(req launchReq, out *os.File) (uint64, <-chan launchEvent, error) {
	ch := make(chan launchEvent, 2)
	lc.mu.Lock()
	if lc.gone {
		lc.mu.Unlock()
		return 0, nil, errLauncherGone
	}
	lc.next++
	req.ID, req.Op = lc.next, "start"
	lc.steps[req.ID] = ch
	lc.mu.Unlock()
	lc.wmu.Lock()
	err := writeFrame(lc.conn, req, int(out.Fd()))
	lc.wmu.Unlock()
	if err != nil {
		lc.mu.Lock()
		if lc.steps != nil {
			delete(lc.steps, req.ID)
		}
		lc.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %v", errLauncherGone, err)
	}
	return req.ID, ch, nil
}

// term asks the launcher to end step id: SIGTERM, then SIGKILL after its grace.
func (lc *launcherConn) term(id uint64) error {
	lc.wmu.Lock()
	defer lc.wmu.Unlock()
	return writeFrame(lc.conn, launchReq{Op: "term", ID: id})
}

// alive tells whether the launcher still answers.
func (lc *launcherConn) alive() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return !lc.gone
}

// close ends the launcher: it ends what steps it still runs and exits.
func (lc *launcherConn) close() {
	lc.conn.CloseWrite()
}
