package executor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// tmpWatch learns from inotify which entries were made at the top of the shared temporary
// folders (sharedTempDirs), so that reclaiming a uid looks only at those instead of reading
// the folders: /tmp may hold thousands of entries, and an lstat of each per job costs more
// than the job's step. No goroutine: the kernel queues the events, and each reclaim reads
// what is queued first, so an entry made by a process that has ended is always seen.
type tmpWatch struct {
	mu    sync.Mutex
	fd    int
	dirs  map[int32]string    // watch descriptor → folder
	names map[string]struct{} // entries made, not yet found to be nobody's concern
	// lost is when the kernel's queue was last found to have overflowed: events before it may
	// be missing, so a job that got its uid before then cannot trust the watch.
	lost time.Time
	buf  []byte
}

// watchedEvents are an entry made in the folder, or moved into it.
const watchedEvents = syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_ONLYDIR

// newTmpWatch watches dirs (a missing one holds nothing to remove); nil when inotify cannot.
func newTmpWatch(dirs []string) *tmpWatch {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &tmpWatch{fd: fd, dirs: map[int32]string{}, names: map[string]struct{}{}, buf: make([]byte, 64<<10)}
	for _, dir := range dirs {
		wd, err := syscall.InotifyAddWatch(fd, dir, watchedEvents)
		if errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			return nil
		}
		w.dirs[int32(wd)] = dir
	}
	return w
}

// drain reads every queued event; w.mu is held.
func (w *tmpWatch) drain() {
	for {
		n, err := syscall.Read(w.fd, w.buf)
		if err != nil || n <= 0 {
			return // EAGAIN: nothing more is queued
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			start := off + syscall.SizeofInotifyEvent
			end := min(start+int(ev.Len), n)
			off = end
			if ev.Mask&syscall.IN_Q_OVERFLOW != 0 {
				w.lost = time.Now()
				continue
			}
			dir, ok := w.dirs[ev.Wd]
			name := string(bytes.TrimRight(w.buf[start:end], "\x00"))
			if ok && name != "" {
				w.names[filepath.Join(dir, name)] = struct{}{}
			}
		}
	}
}

// reclaim removes the entries made since the watch began that uid owns, for a job that got uid
// at since. It forgets entries that are gone or belong to no uid of the pool (inPool), and keeps
// those of other uids of the pool for their own jobs' reclaim. ok is false when the watch
// cannot tell (events were lost after since), and the caller must read the folders.
func (w *tmpWatch) reclaim(uid uint32, since time.Time, inPool func(uint32) bool) (ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drain()
	for p := range w.names {
		var st syscall.Stat_t
		switch err := syscall.Lstat(p, &st); {
		case err != nil:
			delete(w.names, p) // gone (or unreadable: a scan would not see it either)
		case st.Uid == uid:
			os.RemoveAll(p) // never follows a symbolic link
			delete(w.names, p)
		case !inPool(st.Uid):
			delete(w.names, p)
		}
	}
	return w.lost.IsZero() || w.lost.Before(since)
}
