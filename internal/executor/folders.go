package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// folders keeps the workspaces and HOMEs of jobs run as step users once the jobs have ended,
// emptied and made root's again, for the next jobs: a job's folders are then a rename and a
// chown away, where a mkdir and, at its end, an rmdir cost ~0.1–1 ms each of the kernel's time
// on ext4 (21 % of the server's CPU under sustained load on the benchmark machine, more than
// the step's own shell).
//
// A folder is kept only once every process of the job's uid was killed (so nothing can change
// it any more), and only after: everything in it removed (a HOME keeps its tmp, emptied the
// same way); its access and default ACLs and every extended attribute its owner could set
// removed; its owner root and its mode 0700. What a job can leave on a folder that survives
// this is an inode flag its owner may set (chattr: noatime, sync, …), which reveals nothing and
// grants nothing. A folder that is not exactly that (the job replaced its tmp with a link or a
// file, say) is removed as before.
//
// Kept folders wait in "<workspaces>/.spare-<pid>", root's, mode 0700 (the workspaces folder is
// 0711: a step user can reach its own workspace, not list or enter this one). Close removes
// it; a server that starts removes those of servers no longer running.
type folders struct {
	root string // the workspaces folder: only its workspaces are kept
	dir  string

	mu     sync.Mutex
	ready  [2][]string // by kind
	next   int
	closed bool
}

const (
	folderWorkspace = iota // an empty folder
	folderHome             // an empty folder holding an empty tmp
)

// maxKeptFolders bounds the folders of each kind kept waiting.
const maxKeptFolders = 16

const sparePrefix = ".spare-"

// newFolders keeps folders for the workspaces in root; nil when it cannot (then every folder is
// made and removed as it was).
func newFolders(root string) *folders {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil
	}
	removeDeadSpares(root)
	dir := filepath.Join(root, sparePrefix+strconv.Itoa(os.Getpid()))
	os.RemoveAll(dir)
	if err := mkdir0700(dir); err != nil {
		return nil
	}
	return &folders{root: root, dir: dir}
}

// removeDeadSpares removes the folders of kept folders in root of servers no longer running.
func removeDeadSpares(root string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), sparePrefix)
		pid, err := strconv.Atoi(rest)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// take moves a kept folder of kind to path and gives it (and a HOME's tmp) to uid; false when
// none is kept or the move failed: the caller makes path itself.
func (f *folders) take(kind int, path string, uid uint32) bool {
	if f == nil || filepath.Dir(path) != f.root {
		return false
	}
	f.mu.Lock()
	n := len(f.ready[kind])
	if n == 0 {
		f.mu.Unlock()
		return false
	}
	kept := f.ready[kind][n-1]
	f.ready[kind] = f.ready[kind][:n-1]
	f.mu.Unlock()
	if err := os.Rename(kept, path); err != nil {
		os.RemoveAll(kept)
		return false
	}
	for _, d := range kindDirs(kind, path) {
		if err := os.Lchown(d, int(uid), int(uid)); err != nil {
			return false // the caller makes path afresh
		}
	}
	return true
}

// keep empties and scrubs the folder of kind at path, of a job whose uid has no process left,
// and keeps it; false when it cannot (the caller removes it).
func (f *folders) keep(kind int, path string) bool {
	if f == nil || filepath.Dir(path) != f.root {
		return false
	}
	f.mu.Lock()
	if f.closed || len(f.ready[kind]) >= maxKeptFolders {
		f.mu.Unlock()
		return false
	}
	f.next++
	dst := filepath.Join(f.dir, strconv.Itoa(f.next))
	f.mu.Unlock()
	if err := scrubFolder(kind, path); err != nil {
		return false
	}
	if err := os.Rename(path, dst); err != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		os.RemoveAll(dst)
		return true
	}
	f.ready[kind] = append(f.ready[kind], dst)
	return true
}

// close removes the kept folders.
func (f *folders) close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	f.ready = [2][]string{}
	f.mu.Unlock()
	os.RemoveAll(f.dir)
}

// kindDirs are the folders a kept folder of kind at path is made of.
func kindDirs(kind int, path string) []string {
	if kind == folderHome {
		return []string{path, filepath.Join(path, "tmp")}
	}
	return []string{path}
}

// scrubFolder empties the folders of kind at path and makes them root's, mode 0700, with no
// ACL or extended attribute left; an error when one is not a folder (a link, a file).
func scrubFolder(kind int, path string) error {
	for i, d := range kindDirs(kind, path) {
		var st syscall.Stat_t
		if err := syscall.Lstat(d, &st); err != nil {
			return err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return fmt.Errorf("%s is not a folder", d)
		}
		keep := ""
		if kind == folderHome && i == 0 {
			keep = "tmp" // emptied as the next folder
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != keep {
				if err := removeTree(filepath.Join(d, e.Name())); err != nil {
					return err
				}
			}
		}
		if err := removeXattrs(d); err != nil {
			return err
		}
		if err := os.Lchown(d, 0, 0); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// removeXattrs removes every extended attribute of folder d, ACLs included (system.posix_acl_*
// are listed like the others).
func removeXattrs(d string) error {
	buf := make([]byte, 4096)
	n, err := syscall.Listxattr(d, buf)
	if errors.Is(err, syscall.ENOTSUP) || err == nil && n == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		if err := syscall.Removexattr(d, name); err != nil && !errors.Is(err, syscall.ENODATA) {
			return err
		}
	}
	return nil
}

// mkdir0700 makes dir with mode 0700 exactly, whatever the umask.
func mkdir0700(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}
