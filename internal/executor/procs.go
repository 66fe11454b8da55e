package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Step records: what lets a server that was killed (kill -9, the OOM killer) find the step
// processes its previous instance left behind. The shim normally ends a step's tree when the
// server dies, but a shim killed too (a `kill -9` of both, an OOM kill of the shim) leaves the
// step's shell and its children re-parented to init, running on after the restart marked the
// job failed.
//
// Local.Procs holds one small file per running step, written after the step's shim starts and
// before it can start the step's shell (the shim reads the step's environment to its end
// first, and that is sent after the record is written), and removed when the step ends. It
// names the step's process group — the shim leads it, and the shell and everything it starts
// stay in it unless they leave on purpose (setsid) — with the start time of its leader, so a
// pid used again by another process is never taken for the step's. KillRecorded, at the next
// start, kills what is left of each group. The git commands of a checkout, each a group of
// its own with no shim above it, are recorded the same way right after they start.
//
// A record is one line of key=value fields:
//
//	pgid=PGID start=TICKS server=PID server_start=TICKS boot=BOOT_ID pidns=NS
//
// start and server_start are field 22 of /proc/PID/stat (clock ticks since boot) of the
// group's leader and of the server that wrote the record; boot is the kernel's boot id and
// pidns the server's pid namespace, so that a record from before a reboot, or from another
// container's pids, is never applied to this one's.
type stepRecord struct {
	pgid        int
	start       uint64
	server      int
	serverStart uint64
	boot        string
	pidns       string
}

func (r stepRecord) String() string {
	return fmt.Sprintf("pgid=%d start=%d server=%d server_start=%d boot=%s pidns=%s\n",
		r.pgid, r.start, r.server, r.serverStart, r.boot, r.pidns)
}

func parseStepRecord(b []byte) (stepRecord, error) {
	var r stepRecord
	seen := 0
	for f := range strings.FieldsSeq(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pgid":
			r.pgid, err = strconv.Atoi(v)
		case "start":
			r.start, err = strconv.ParseUint(v, 10, 64)
		case "server":
			r.server, err = strconv.Atoi(v)
		case "server_start":
			r.serverStart, err = strconv.ParseUint(v, 10, 64)
		case "boot":
			r.boot = v
		case "pidns":
			r.pidns = v
		default:
			continue
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w", k, err)
		}
		seen++
	}
	if seen != 6 || r.pgid <= 1 || r.server <= 0 || r.boot == "" || r.pidns == "" {
		return r, fmt.Errorf("not a step record: %q", b)
	}
	return r, nil
}

// self is what every record of this process says of the server that wrote it.
var self = sync.OnceValue(func() stepRecord {
	start, _ := startTime(os.Getpid())
	return stepRecord{server: os.Getpid(), serverStart: start, boot: bootID(), pidns: pidNamespace()}
})

// recordStep writes the record of the step whose shim is pid (the leader of its group) to
// dir, and returns the function that removes it. An error leaves the step unrecorded (it
// still runs: the record only helps after a crash).
func recordStep(dir string, pid int) (remove func(), err error) {
	start, ok := startTime(pid)
	if !ok {
		return nil, fmt.Errorf("executor: record step: no process %d", pid)
	}
	r := self()
	r.pgid, r.start = pid, start
	path, err := writeStepRecord(dir, r)
	if err != nil {
		return nil, fmt.Errorf("executor: record step: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// writeStepRecord writes r to dir, which it makes if missing, and returns the file's path:
// "<server pid>-<pgid>", one of a server's running steps.
func writeStepRecord(dir string, r stepRecord) (string, error) {
	path := filepath.Join(dir, strconv.Itoa(r.server)+"-"+strconv.Itoa(r.pgid))
	err := os.WriteFile(path, []byte(r.String()), 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			err = os.WriteFile(path, []byte(r.String()), 0o600)
		}
	}
	return path, err
}

// KillRecorded kills, with SIGKILL, what is left of the step process groups recorded in dir
// (Local.Procs) by servers that are no longer running, and removes their records; it returns
// how many processes it killed. Call it at start, before any job runs.
//
// A group is killed when its leader (the step's shim) is gone — then the group's pid cannot
// have been given to another process while a member of the group lives — or still has the
// recorded start time. A leader pid with another start time was used again by an unrelated
// process: that record is dropped and nothing is killed. Records of a server still running
// (another flowd on the same data folder), which KillRecorded leaves alone, and records from
// before a reboot or of another pid namespace, whose pids mean nothing here, are not applied.
// A missing dir is nothing to do. Errors of single records are joined; the others are still
// handled.
func KillRecorded(ctx context.Context, dir string, logger *slog.Logger) (killed int, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("executor: kill recorded steps: %w", err)
	}
	me := self()
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			return killed, ctx.Err()
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := parseStepRecord(b)
		if err != nil {
			// A server killed while it wrote the record: its shim had not started the step.
			logger.Warn("remove an unreadable step record", "file", path, "err", err)
			os.Remove(path)
			continue
		}
		if r.boot != me.boot || r.pidns != me.pidns {
			os.Remove(path) // its processes died with the machine or their container
			continue
		}
		if st, ok := startTime(r.server); ok && st == r.serverStart {
			continue // its server runs: its steps are its own
		}
		if st, ok := startTime(r.pgid); ok && st != r.start {
			logger.Info("step record of a pid now used by another process; nothing killed", "pgid", r.pgid)
			os.Remove(path)
			continue
		}
		n, err := killGroupAll(ctx, r.pgid)
		killed += n
		if err != nil {
			errs = append(errs, fmt.Errorf("process group %d: %w", r.pgid, err))
		} else if n > 0 {
			logger.Warn("killed the processes of a step a previous flowd left running", "pgid", r.pgid, "processes", n)
		}
		os.Remove(path)
	}
	if len(errs) > 0 {
		return killed, fmt.Errorf("executor: kill recorded steps: %w", errors.Join(errs...))
	}
	return killed, nil
}

// killGroupAll sends SIGKILL to process group pgid until no live process is left in it, and
// returns how many distinct processes it found there. The group signal reaches every member at
// once; the rounds catch a process forked while it was sent.
func killGroupAll(ctx context.Context, pgid int) (int, error) {
	seen := map[int]bool{}
	for range 500 {
		live := 0
		for _, p := range procs() {
			if p.pgrp == pgid && p.state != 'Z' && p.state != 'X' {
				seen[p.pid] = true
				live++
			}
		}
		if live == 0 {
			return len(seen), nil
		}
		if err := killGroup(pgid, syscall.SIGKILL); err != nil {
			return len(seen), err
		}
		if ctx.Err() != nil {
			return len(seen), ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return len(seen), fmt.Errorf("processes still alive after SIGKILL")
}

// startTime is field 22 of /proc/PID/stat: when the process started, in clock ticks since
// boot. ok is false when there is no process pid.
func startTime(pid int) (ticks uint64, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After comm: state (field 3) … starttime (field 22).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	return ticks, err == nil
}

// bootID is the kernel's id of this boot; "unknown" where /proc does not tell it.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return s
	}
	return "unknown"
}

// pidNamespace names this process's pid namespace ("pid:[4026531836]"), "unknown" where /proc
// does not tell it.
func pidNamespace() string {
	s, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || s == "" || strings.ContainsAny(s, " \n=") {
		return "unknown"
	}
	return s
}
