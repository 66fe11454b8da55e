package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// What servers share. On PostgreSQL several servers run on one database: wake-ups travel as
// notifications (store.Notify), and the limits that must hold for the cluster (the webhook
// rate, the sign-in throttle) keep their counts in the database. SQLite serves one server:
// lockSQLite refuses a second, and everything stays in the process.

// lockSQLite takes, for the life of the server, an exclusive lock on a file beside the SQLite
// database of dsn (<database>.lock), so a second `flowd serve` on the same database refuses to
// start instead of running jobs the first runs too and failing the other's running jobs at
// start. Only serve takes it: tools that only read the database are not held up. The kernel
// drops the lock when the process dies, kill -9 included, so a crash leaves nothing to clean.
// A DSN of another database takes no lock.
func lockSQLite(dsn string) (release func(), err error) {
	p, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return func() {}, nil
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real // one lock for the file, however it is named
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("app: database folder: %w", err)
	}
	lock := p + ".lock"
	fd, err := syscall.Open(lock, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("app: lock the SQLite database: %w", err)
	}
	f := os.NewFile(uintptr(fd), lock)
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(lock); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		f.Close()
		return nil, fmt.Errorf("app: another flowd server%s is using the SQLite database %s (it holds %s): "+
			"a SQLite database serves one server at a time. Stop the other server first, give this one "+
			"a database of its own (--data or --database sqlite:PATH), or run several servers on one "+
			"PostgreSQL database (--database postgres://…)", holder, p, lock)
	}
	// Who holds it, for the message above; the lock is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}
