package executor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// The step launcher: what starts the steps of jobs that run as step users (Local.Users).
//
// Starting every step through a shim of its own costs an exec of flowd's binary per step: about
// 8 ms of CPU on a 2-core machine, four times the step's own shell, most of it the Go runtime
// and the package initialisers of a 40 MB binary. A job run as a uid of its own needs no shim
// to find what its step left behind: everything of that uid is the job's. So those steps start
// through one launcher per server instead: flowd's binary started once as `flowd
// __step-launcher` (LauncherCommand), in a process group of its own, with an empty
// environment, which
//
//   - is a child subreaper: whatever a step leaves behind (a `setsid -f`, a double fork) is
//     re-parented to the launcher, never to init;
//   - starts each step's shell itself, in a process group of its own, as the job's uid and gid
//     with no supplementary groups, with no_new_privs set, in the workspace, with exactly the
//     step's environment and its output going to the pipe the server passed along;
//   - when a step's shell exits, kills what is left of it (the launcher's children of the
//     job's uid, with everything below them: the shell's own children were re-parented to the
//     launcher when it exited), then reports the shell's status;
//   - on the server's cancel of a step sends SIGTERM to all of it and SIGKILL after the grace;
//   - when the server dies (parent-death signal, a new parent, or the end of its socket), does
//     the same to every step and exits, so a `kill -9` of the server leaves no step running.
//
// The server talks to it over a Unix stream socket (fd 3 in the launcher): frames of a 4-byte
// big-endian length and a JSON object. A start request carries the step's output pipe as
// SCM_RIGHTS on its frame; every other frame carries nothing but JSON.

// LauncherCommand is the hidden subcommand of the flowd binary that runs the step launcher.
const LauncherCommand = "__step-launcher"

// launcherSockFD is the launcher's end of its socket to the server.
const launcherSockFD = 3

// maxFrame bounds a frame: a step's environment is most of it.
const maxFrame = 64 << 20

// launchReq is a frame from the server: start a step, or end one.
type launchReq struct {
	Op    string   `json:"op"` // "start" or "term"
	ID    uint64   `json:"id"`
	UID   uint32   `json:"uid,omitempty"`
	Dir   string   `json:"dir,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	Env   []string `json:"env,omitempty"`
	Grace int64    `json:"grace_ms,omitempty"`
}

// launchEvent is a frame from the launcher about step ID: it started (Pid), could not start
// (Err), or ended (Status: "exit N" or "signal N", as the shim reports).
type launchEvent struct {
	ID     uint64 `json:"id"`
	Pid    int    `json:"pid,omitempty"`
	Err    string `json:"err,omitempty"`
	Status string `json:"status,omitempty"`
	// Left says, with Status, that a process of the step was still alive when the launcher
	// gave up killing what the step left (one stuck in the kernel): the server sweeps the uid.
	Left bool `json:"left,omitempty"`
}

// IsHelperCommand tells whether args (os.Args) start one of the hidden subcommands the server
// runs its own binary as: the step shim or the step launcher.
func IsHelperCommand(args []string) bool {
	return len(args) > 1 && (args[1] == ShimCommand || args[1] == LauncherCommand)
}

// RunHelperCommand runs the hidden subcommand args name (see IsHelperCommand) and exits.
func RunHelperCommand(args []string) {
	if args[1] == LauncherCommand {
		syscall.Exit(LauncherMain())
	}
	RunShim(args[2:])
}

// writeFrame writes one frame, with fds attached to its first byte when given.
func writeFrame(c *net.UnixConn, v any, fds ...int) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	b = append(b, body...)
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(b, oob, nil)
	if err == nil && n < len(b) {
		_, err = c.Write(b[n:]) // a stream socket may take a long frame in parts
	}
	return err
}

// readFrame reads one frame into v and returns the file descriptors that came with it.
func readFrame(c *net.UnixConn, v any) ([]int, error) {
	var head [4]byte
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(head[:], oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if rights, err := syscall.ParseUnixRights(&m); err == nil {
				fds = append(fds, rights...)
			}
		}
		if perr != nil {
			closeFDs(fds)
			return nil, perr
		}
	}
	if n < 4 {
		if _, err := io.ReadFull(c, head[n:]); err != nil {
			closeFDs(fds)
			return nil, err
		}
	}
	size := binary.BigEndian.Uint32(head[:])
	if size > maxFrame {
		closeFDs(fds)
		return nil, fmt.Errorf("a frame of %d bytes", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		closeFDs(fds)
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		closeFDs(fds)
		return nil, err
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// LauncherMain is the step launcher (see the top of this file). It returns the process's exit
// code once the server is gone and every step it started has ended.
func LauncherMain() int {
	f := os.NewFile(launcherSockFD, "server")
	fc, err := net.FileConn(f)
	f.Close()
	uc, ok := fc.(*net.UnixConn)
	if err != nil || !ok {
		fmt.Fprintf(os.Stderr, "flowd %s: fd %d is not the server's socket (this command is flowd's own, not for people): %v\n", LauncherCommand, launcherSockFD, err)
		return 2
	}
	closeExtraFDs()
	parent, ok := becomeReaper()
	if !ok {
		return 1 // the server is already gone
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 1
	}
	l := &launcherState{
		conn: uc, parent: parent, devnull: devnull,
		steps: map[int]*launchedStep{}, byID: map[uint64]*launchedStep{}, early: map[int]earlyExit{},
		forks: make(chan forkReq, maxPendingStarts), forked: make(chan forkResult, maxPendingStarts), reaped: make(chan reaped, 64),
		kick: make(chan struct{}, 1), reqs: make(chan framed), graceOver: make(chan uint64, 16),
	}
	go l.forker()
	go l.reaper()
	go l.reader()
	return l.loop()
}

// maxPendingStarts bounds the start requests the forker has not answered yet: the loop never
// waits to hand one over (the server runs one step per job slot at a time, far fewer).
const maxPendingStarts = 4096

// launchedStep is a step the launcher started and whose shell has not ended yet.
type launchedStep struct {
	id          uint64
	pid         int // the shell: the leader of the step's process group
	uid         uint32
	grace       time.Duration
	terminating bool
}

// earlyExit is a child reaped before the launcher knew it as a step's shell (it exited at once)
// or an orphan; orphans are forgotten after a while.
type earlyExit struct {
	status syscall.WaitStatus
	at     time.Time
}

type forkReq struct {
	req launchReq
	out *os.File
}

type forkResult struct {
	req launchReq
	pid int
	err error
}

// framed is a request read from the server, with the file it carried.
type framed struct {
	req launchReq
	out *os.File
}

type launcherState struct {
	conn    *net.UnixConn
	parent  int
	devnull *os.File
	steps   map[int]*launchedStep // by the shell's pid
	byID    map[uint64]*launchedStep
	early   map[int]earlyExit
	pending int // start requests at the forker

	forks     chan forkReq
	forked    chan forkResult
	reaped    chan reaped
	kick      chan struct{} // a child was started: the reaper has something to wait for
	reqs      chan framed   // closed when the server's socket ends
	graceOver chan uint64   // a terminating step's grace is over
}

// forker starts the steps' shells, from one OS thread that has no_new_privs set (it is per
// thread, and inherited by the processes the thread starts).
func (l *launcherState) forker() {
	runtime.LockOSThread() // never unlocked: the thread keeps no_new_privs
	prctl(prSetNoNewPrivs, 1)
	for fr := range l.forks {
		attr := &os.ProcAttr{
			Dir: fr.req.Dir, Env: fr.req.Env, Files: []*os.File{l.devnull, fr.out, fr.out},
			Sys: &syscall.SysProcAttr{Setpgid: true,
				Credential: &syscall.Credential{Uid: fr.req.UID, Gid: fr.req.UID, Groups: []uint32{}}},
		}
		var pid int
		p, err := os.StartProcess(fr.req.Argv[0], fr.req.Argv, attr)
		fr.out.Close()
		if err == nil {
			pid = p.Pid
			p.Release() // the reaper waits for it, as for every child
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
		l.forked <- forkResult{req: fr.req, pid: pid, err: err}
	}
}

// reaper waits for every child of the launcher (the steps' shells and the orphans re-parented to
// it) and sends each to l.reaped; with no child, it waits for the next start.
func (l *launcherState) reaper() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case err != nil:
			<-l.kick // ECHILD: nothing to wait for until a step starts
		default:
			l.reaped <- reaped{pid: pid, status: ws}
		}
	}
}

// reader passes the server's requests to the loop and closes l.reqs when the socket ends.
func (l *launcherState) reader() {
	defer close(l.reqs)
	for {
		var req launchReq
		fds, err := readFrame(l.conn, &req)
		if err != nil {
			return
		}
		var out *os.File
		if len(fds) > 0 {
			out = os.NewFile(uintptr(fds[0]), "step output")
			closeFDs(fds[1:])
		}
		l.reqs <- framed{req: req, out: out}
	}
}

func (l *launcherState) send(ev launchEvent) {
	writeFrame(l.conn, ev) // a server that is gone is noticed through l.reqs
}

// loop is the launcher's one owner of its steps.
func (l *launcherState) loop() int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	tick := time.NewTicker(shimParentCheckEvery)
	defer tick.Stop()
	reqs := l.reqs
	dying := false
	var deadline <-chan time.Time
	die := func() {
		if dying {
			return
		}
		dying, reqs = true, nil
		longest := time.Duration(0)
		for _, s := range l.steps {
			l.terminate(s)
			longest = max(longest, s.grace)
		}
		deadline = time.After(longest + time.Second)
	}
	for {
		if dying && len(l.steps) == 0 && l.pending == 0 {
			return 0
		}
		select {
		case fr, ok := <-reqs:
			if !ok {
				die() // the server closed its end, or died
				continue
			}
			l.request(fr)
		case r := <-l.forked:
			l.pending--
			l.started(r)
			if dying {
				if s := l.byID[r.req.ID]; s != nil {
					l.terminate(s)
				}
			}
		case r := <-l.reaped:
			if s := l.steps[r.pid]; s != nil {
				l.ended(s, r.status)
				continue
			}
			l.forgetEarly()
			l.early[r.pid] = earlyExit{status: r.status, at: time.Now()}
		case id := <-l.graceOver:
			if s := l.byID[id]; s != nil {
				l.killStep(s, syscall.SIGKILL)
			}
		case <-sigs:
			// The parent-death signal comes when the thread that started the launcher ends,
			// which need not be the server's end: only a new parent says the server is gone.
			if os.Getppid() != l.parent {
				die()
			}
		case <-tick.C:
			if os.Getppid() != l.parent {
				die()
			}
		case <-deadline:
			for _, s := range l.steps {
				l.killStep(s, syscall.SIGKILL)
			}
			return 1
		}
	}
}

// request handles one frame of the server.
func (l *launcherState) request(fr framed) {
	switch fr.req.Op {
	case "start":
		if fr.out == nil || len(fr.req.Argv) == 0 || fr.req.UID == 0 {
			if fr.out != nil {
				fr.out.Close()
			}
			l.send(launchEvent{ID: fr.req.ID, Err: "a start request without output, command or step user"})
			return
		}
		l.pending++
		l.forks <- forkReq{req: fr.req, out: fr.out}
	case "term":
		if fr.out != nil {
			fr.out.Close()
		}
		if s := l.byID[fr.req.ID]; s != nil {
			l.terminate(s)
		}
	default:
		if fr.out != nil {
			fr.out.Close()
		}
	}
}

// started records a step whose shell the forker started (or reports why it could not).
func (l *launcherState) started(r forkResult) {
	if r.err != nil {
		l.send(launchEvent{ID: r.req.ID, Err: r.err.Error()})
		return
	}
	s := &launchedStep{id: r.req.ID, pid: r.pid, uid: r.req.UID, grace: time.Duration(r.req.Grace) * time.Millisecond}
	l.steps[s.pid], l.byID[s.id] = s, s
	l.send(launchEvent{ID: s.id, Pid: s.pid})
	if e, ok := l.early[s.pid]; ok { // the shell ended before it was known
		delete(l.early, s.pid)
		l.ended(s, e.status)
	}
}

// ended finishes a step whose shell exited: what is left of it is killed, then its status is
// reported.
func (l *launcherState) ended(s *launchedStep, ws syscall.WaitStatus) {
	delete(l.steps, s.pid)
	delete(l.byID, s.id)
	gone := l.killStep(s, syscall.SIGKILL)
	status := "exit " + strconv.Itoa(ws.ExitStatus())
	if ws.Signaled() {
		status = "signal " + strconv.Itoa(int(ws.Signal()))
	}
	l.send(launchEvent{ID: s.id, Status: status, Left: !gone})
}

// terminate gives step s SIGTERM and, after its grace, SIGKILL.
func (l *launcherState) terminate(s *launchedStep) {
	if s.terminating {
		return
	}
	s.terminating = true
	l.killStep(s, syscall.SIGTERM)
	id := s.id
	time.AfterFunc(s.grace, func() { l.graceOver <- id })
}

// killStep sends sig to every process of step s: its process group, everything below its
// shell, and every child of the launcher of the step's uid (what the step left behind when a
// parent of it ended) with everything below those. With SIGKILL it goes on until none is left
// alive: a killed process cannot fork again, so each round finds only what the one before
// could not see yet. It reports whether, with SIGKILL, none was left alive.
func (l *launcherState) killStep(s *launchedStep, sig syscall.Signal) bool {
	for range 500 {
		n := 0
		if _, live := l.steps[s.pid]; live {
			// Only while the shell is not reaped: its pid, hence the group's id, stays its own.
			syscall.Kill(-s.pid, sig)
		}
		targets := descendants(s.pid)
		kids, _ := childrenOf(os.Getpid())
		for _, k := range kids {
			if _, isShell := l.steps[k]; isShell || k == s.pid {
				continue
			}
			if ids, ok := procUIDs(k); ok && ids[0] == s.uid {
				targets = append(append(targets, k), descendants(k)...)
			}
		}
		for _, p := range targets {
			if syscall.Kill(p, sig) == nil {
				n++
			}
		}
		if sig != syscall.SIGKILL || n == 0 {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// forgetEarly drops the exits of children nobody claimed within a minute: orphans.
func (l *launcherState) forgetEarly() {
	if len(l.early) < 64 {
		return
	}
	for pid, e := range l.early {
		if time.Since(e.at) > time.Minute {
			delete(l.early, pid)
		}
	}
}
