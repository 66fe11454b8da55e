package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultStepUIDs is the uid range `--step-user auto` uses when flowd runs as root: high enough
// to collide with no account a distribution or an administrator makes, below 2^31 so that no
// tool reads it as negative.
const DefaultStepUIDs = "2147000000-2147001023"

// Users hands out the uids of a range to jobs, one uid to one job at a time, so that a job's
// processes and files belong to a user no other running job has: another job cannot read its
// workspace, see its environment in /proc, signal or trace its processes. The group id is the
// uid; the uids need no account (no /etc/passwd entry). Giving them out needs root (or
// CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_KILL).
//
// A uid goes back to the pool only after every process running as it was killed (Reclaim), and
// uids are handed out least recently used first.
type Users struct {
	First, Last uint32
	free        chan uint32
	watch       *tmpWatch // what was made in the shared temporary folders; nil: read them
}

// NewUsers returns the pool of uids first..last.
func NewUsers(first, last uint32) (*Users, error) {
	if first == 0 || last < first || last-first >= 1<<20 {
		return nil, fmt.Errorf("step uids %d-%d: want a range of 1 to 1048576 uids above 0", first, last)
	}
	u := &Users{First: first, Last: last, free: make(chan uint32, last-first+1), watch: newTmpWatch(sharedTempDirs())}
	for id := first; ; id++ {
		u.free <- id
		if id == last {
			break
		}
	}
	return u, nil
}

// StepUIDs resolves a --step-user value for a process whose effective uid is euid: the uid
// range steps run as, or ok false when they run as the process's own user ("none", or "auto"
// when not root; "auto" as root is DefaultStepUIDs).
func StepUIDs(spec string, euid int) (first, last uint32, ok bool) {
	if spec == "auto" {
		if euid != 0 {
			return 0, 0, false
		}
		spec = DefaultStepUIDs
	}
	if spec == "none" {
		return 0, 0, false
	}
	first, last, err := ParseUIDRange(spec)
	return first, last, err == nil
}

// ParseUIDRange reads "FIRST-LAST".
func ParseUIDRange(s string) (first, last uint32, err error) {
	a, b, ok := strings.Cut(s, "-")
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil || x == 0 || y < x {
		return 0, 0, fmt.Errorf("%q is not a uid range FIRST-LAST above 0 (e.g. %s)", s, DefaultStepUIDs)
	}
	return uint32(x), uint32(y), nil
}

// Size is how many uids the pool has.
func (u *Users) Size() int { return int(u.Last - u.First + 1) }

// acquire takes a free uid, waiting for one while ctx lasts.
func (u *Users) acquire(ctx context.Context) (uint32, error) {
	select {
	case id := <-u.free:
		return id, nil
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}

// release gives uid back; only after Reclaim found no process of it left.
func (u *Users) release(uid uint32) { u.free <- uid }

// Reclaim kills every process running as uid, however it detached, and removes the files uid
// left at the top of the shared temporary folders (/tmp, /var/tmp, /dev/shm), so the next job
// given uid inherits nothing. With swept set, the caller has already killed uid's processes
// (KillUser) and nothing has run as uid since, so only the files are left to remove. since is
// when uid was given to the job, before any of its processes ran: the folders are read only
// when the pool's inotify watch of them (tmpWatch) cannot say what was made there since.
func (u *Users) Reclaim(ctx context.Context, uid uint32, shell string, swept bool, since time.Time) error {
	var err error
	if !swept {
		err = KillUser(ctx, uid, shell)
	}
	if u.watch == nil || !u.watch.reclaim(uid, since, u.inPool) {
		for _, dir := range sharedTempDirs() {
			removeOwned(dir, uid)
		}
	}
	return err
}

func (u *Users) inPool(uid uint32) bool { return uid >= u.First && uid <= u.Last }

// sharedTempDirs are the world-writable folders a step may leave files in, each once.
func sharedTempDirs() []string {
	dirs := []string{"/tmp", "/var/tmp", "/dev/shm"}
	if t := filepath.Clean(os.TempDir()); !slices.Contains(dirs, t) {
		dirs = append(dirs, t)
	}
	return dirs
}

// KillUser kills every process running as uid in one atomic sweep of the process table: shell
// runs `kill -KILL -1` as uid, which signals every process whose real or saved uid is uid
// (the kernel walks the process table under the lock fork takes, and a process with SIGKILL
// pending can no longer fork, return to user space or run a line of the step's code), except
// itself. That is complete without reading /proc: a dying process may take a moment to be
// gone, but it can do nothing more. Only when the sweep cannot run is /proc scanned instead
// (killUIDs, which waits until they are gone).
//
// It runs a process as uid rather than switching a thread of the server to uid: while a thread
// has uid as its real uid, a process of uid could signal it, and through it the server.
func KillUser(ctx context.Context, uid uint32, shell string) error {
	cmd := exec.CommandContext(ctx, shell, "-c", "kill -KILL -1 2>/dev/null; exit 0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	runErr := cmd.Run()
	if runErr == nil {
		return nil
	}
	if err := killUIDs(ctx, func(id uint32) bool { return id == uid }); err != nil {
		return errors.Join(fmt.Errorf("executor: kill processes of uid %d: %w", uid, err), runErr)
	}
	return nil
}

// KillAll kills every process running as a uid of the pool: those a server that was killed
// left behind. Call it once at start, before any job runs.
func (u *Users) KillAll(ctx context.Context) error {
	return killUIDs(ctx, func(id uint32) bool { return id >= u.First && id <= u.Last })
}

// killUIDs kills, from /proc, every process any of whose uids (real, effective, saved, file
// system) match, again and again until none is left alive or ctx ends.
func killUIDs(ctx context.Context, match func(uint32) bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := 0
		for _, p := range procs() {
			if p.state == 'Z' || p.state == 'X' {
				continue
			}
			ids, ok := procUIDs(p.pid)
			if !ok || !(match(ids[0]) || match(ids[1]) || match(ids[2]) || match(ids[3])) {
				continue
			}
			alive++
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still alive after SIGKILL", alive)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// removeOwned removes the entries of dir (not below) that uid owns. RemoveAll never follows a
// symbolic link, so a link planted there cannot make it remove anything else.
func removeOwned(dir string, uid uint32) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil && st.Uid == uid {
			os.RemoveAll(p)
		}
	}
}

// CanSwitchUsers reports whether this process may run steps as other users: it runs as root.
func CanSwitchUsers() bool { return os.Geteuid() == 0 }
