package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShimCommand is the hidden subcommand of the flowd binary that runs one step (see ShimMain).
// Local starts every step as `<Shim> ShimCommand GRACE_MS UID GID DIR -- SHELL ARGS… SCRIPT`.
const ShimCommand = "__step-shim"

// The shim's extra files: the status it reports back, and the step's environment it reads.
const (
	shimStatusFD = 3 // written by the shim: "exit N", "signal N" or "start ERROR", one line
	shimEnvFD    = 4 // read by the shim: the step's environment, NUL-separated, then EOF
)

// Linux prctl options the shim sets.
const (
	prSetPdeathsig       = 1
	prSetChildSubreaper  = 36
	prSetNoNewPrivs      = 38
	shimParentCheckEvery = 200 * time.Millisecond
)

// RunShim runs ShimMain and exits the process with its code. It exits with syscall.Exit, not
// os.Exit, so that a binary built with -race does not sleep a second at exit for the race
// detector's report (the shim has no goroutines of its own left to report on).
func RunShim(args []string) {
	syscall.Exit(ShimMain(args))
}

// ShimMain is the step shim: a tiny process between the server and a step that makes sure
// nothing the step starts outlives it, however it detaches. The server starts it in a process
// group of its own, with an empty environment (the step's comes over a pipe, so nothing a
// pipeline sets, such as LD_PRELOAD, ever reaches the shim), and it:
//
//   - becomes a child subreaper: every process the step leaves behind (a `setsid -f`, a
//     double fork) is re-parented to the shim, never to init, so it stays in the shim's tree;
//   - starts the step's shell, with no_new_privs set (setuid programs gain nothing), as UID and
//     GID with no supplementary groups when they are not -1;
//   - when the shell exits, kills every process left in its tree, reaps them, reports the
//     shell's status and exits;
//   - on SIGTERM (the server's cancel) lets the tree have GRACE_MS, then kills it all;
//   - when the server dies (parent-death signal, or its parent changes), does the same, so a
//     `kill -9` of the server leaves no step running.
//
// It returns the process's exit code: the shell's, or 128+signal.
func ShimMain(args []string) int {
	grace, uid, gid, dir, argv, err := parseShimArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowd %s: %v\n", ShimCommand, err)
		return 2
	}
	status := os.NewFile(shimStatusFD, "status")
	syscall.CloseOnExec(shimStatusFD)
	syscall.CloseOnExec(shimEnvFD)
	env, err := readEnv(os.NewFile(shimEnvFD, "env"))
	if err != nil {
		fmt.Fprintf(status, "start reading the environment: %v\n", err)
		return 127
	}
	closeExtraFDs()

	parent, ok := becomeReaper()
	if !ok {
		return 127 // the server is already gone
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	// no_new_privs is per thread: set it on the thread that forks the shell.
	runtime.LockOSThread()
	prctl(prSetNoNewPrivs, 1)
	attr := &os.ProcAttr{Dir: dir, Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{}}
	if uid >= 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	proc, err := os.StartProcess(argv[0], argv, attr)
	runtime.UnlockOSThread()
	if err != nil {
		fmt.Fprintf(status, "start %v\n", err)
		return 127
	}

	waits := make(chan reaped, 16)
	go reapAll(waits)
	var (
		shell       *syscall.WaitStatus
		terminating bool
		killAt      <-chan time.Time
	)
	tick := time.NewTicker(shimParentCheckEvery)
	defer tick.Stop()
	terminate := func() {
		if terminating {
			return
		}
		terminating = true
		signalTree(os.Getpid(), syscall.SIGTERM)
		killAt = time.After(grace)
	}
loop:
	for {
		select {
		case r, ok := <-waits:
			if !ok {
				break loop // no child is left: the whole tree is gone
			}
			if r.pid == proc.Pid {
				ws := r.status
				shell = &ws
				if !terminating && hasChildren() {
					killTree(os.Getpid()) // the step ended: nothing it started outlives it
				}
			}
		case <-sigs:
			terminate()
		case <-killAt:
			killTree(os.Getpid())
		case <-tick.C:
			if os.Getppid() != parent {
				terminate()
			}
		}
	}

	switch {
	case shell == nil:
		fmt.Fprintf(status, "signal %d\n", int(syscall.SIGKILL))
		return 128 + int(syscall.SIGKILL)
	case shell.Signaled():
		fmt.Fprintf(status, "signal %d\n", int(shell.Signal()))
		return 128 + int(shell.Signal())
	default:
		fmt.Fprintf(status, "exit %d\n", shell.ExitStatus())
		return shell.ExitStatus()
	}
}

// parseShimArgs reads GRACE_MS UID GID DIR -- ARGV….
func parseShimArgs(args []string) (grace time.Duration, uid, gid int, dir string, argv []string, err error) {
	if len(args) < 6 || args[4] != "--" {
		return 0, 0, 0, "", nil, errors.New("usage: GRACE_MS UID GID DIR -- COMMAND [ARG…] (this command is flowd's own, not for people)")
	}
	ms, err1 := strconv.Atoi(args[0])
	uid, err2 := strconv.Atoi(args[1])
	gid, err3 := strconv.Atoi(args[2])
	if err := errors.Join(err1, err2, err3); err != nil || ms < 0 || uid < -1 || gid < -1 {
		return 0, 0, 0, "", nil, fmt.Errorf("bad numbers in %q", args[:3])
	}
	return time.Duration(ms) * time.Millisecond, uid, gid, args[3], args[5:], nil
}

// readEnv reads a NUL-separated environment until EOF.
func readEnv(f *os.File) ([]string, error) {
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	env := []string{}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// closeExtraFDs closes every inherited file descriptor above the shim's own, so that nothing
// of the server (a database file opened without close-on-exec, say) can reach the step.
func closeExtraFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > shimEnvFD {
			syscall.CloseOnExec(fd) // not Close: the Go runtime owns some of them
		}
	}
}

// becomeReaper makes this process a child subreaper that gets SIGTERM when its parent (the
// server) dies, and returns the parent; ok is false when the parent is already gone.
func becomeReaper() (parent int, ok bool) {
	parent = os.Getppid()
	prctl(prSetPdeathsig, uintptr(syscall.SIGTERM))
	if os.Getppid() != parent || parent == 1 {
		return parent, false
	}
	prctl(prSetChildSubreaper, 1)
	return parent, true
}

func prctl(option, arg uintptr) {
	syscall.RawSyscall6(syscall.SYS_PRCTL, option, arg, 0, 0, 0, 0)
}

// reaped is one child the shim waited for.
type reaped struct {
	pid    int
	status syscall.WaitStatus
}

// reapAll waits for every child of the shim (the shell and the orphans re-parented to it) and
// sends each to out; it closes out when the shim has no child left.
func reapAll(out chan<- reaped) {
	defer close(out)
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return // ECHILD: nothing left
		}
		out <- reaped{pid: pid, status: ws}
	}
}

// signalTree sends sig to every live process below pid.
func signalTree(pid int, sig syscall.Signal) int {
	n := 0
	for _, p := range descendants(pid) {
		if syscall.Kill(p, sig) == nil {
			n++
		}
	}
	return n
}

// killTree kills every process below pid until none is left alive. A killed process cannot
// fork again, so each round leaves only what was forked during the one before.
func killTree(pid int) {
	for range 500 {
		if signalTree(pid, syscall.SIGKILL) == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// descendants lists the live (not zombie) processes below pid. It follows the kernel's lists of
// each task's children (/proc/PID/task/TID/children), which costs a few reads for a small tree,
// and reads every process's stat only where those lists are missing.
func descendants(pid int) []int {
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/task"); err != nil {
		return nil
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		kids, ok := childrenOf(p)
		if !ok {
			return scanDescendants(pid)
		}
		out = append(out, kids...)
		queue = append(queue, kids...)
	}
	return out
}

// childrenOf reads the children of every thread of pid; ok is false where the kernel has no
// such lists (CONFIG_PROC_CHILDREN). Zombies are left out.
func childrenOf(pid int) (kids []int, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, true // gone
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir + "/" + t.Name()); serr == nil {
				return nil, false // the task is there, its list is not
			}
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && !isZombie(c) {
				kids = append(kids, c)
			}
		}
	}
	return kids, true
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// scanDescendants is descendants from every process's stat line.
func scanDescendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range procs() {
		if p.state != 'Z' && p.state != 'X' {
			children[p.ppid] = append(children[p.ppid], p.pid)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := children[queue[0]]
		queue = append(queue[1:], next...)
		out = append(out, next...)
	}
	return out
}

// hasChildren tells whether the shim has a child left (a process the step left behind was
// re-parented to it, or still runs under one that is). With none, nothing of the step is left:
// every process it started is below a child of the shim.
func hasChildren() bool {
	const (
		pAll    = 0
		wNoWait = 0x01000000 // look without reaping
	)
	_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, 0, syscall.WEXITED|syscall.WNOHANG|wNoWait, 0, 0)
	return errno != syscall.ECHILD
}

// proc is what the shim and the executor read of a process in /proc.
type proc struct {
	pid, ppid, pgrp int
	state           byte
}

// procs reads every process's stat line: "pid (comm) state ppid pgrp …"; comm may hold
// spaces and parentheses, so the fields are read after its last ')'.
func procs() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]proc, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || len(f[0]) != 1 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, proc{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0]})
	}
	return out
}

// procUIDs returns the real, effective, saved and filesystem uids of process pid.
func procUIDs(pid int) ([4]uint32, bool) {
	var out [4]uint32
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return out, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Uid:")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) != 4 {
			return out, false
		}
		for i, s := range fs {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return out, false
			}
			out[i] = uint32(n)
		}
		return out, true
	}
	return out, false
}
