package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// TestKeptFolders runs jobs one after the other on one uid pool: the second job's workspace and
// HOME are the first's folders, kept, and come to it empty, its own, mode 0700, with nothing the
// first job left on them (files, read-only folders, mode, extended attributes); a job that
// replaced its tmp with a link is not kept, and the link is not followed.
func TestKeptFolders(t *testing.T) {
	t.Parallel()
	l := isolatedLocal(t, 2)
	root := workspaceRoot(t)
	first := isolatedJob(root, 50, `echo secret > file; mkdir -p ro/sub && chmod 500 ro; echo t > "$TMPDIR/t"; echo h > "$HOME/h"; chmod 777 .`)
	var out syncBuffer
	if res := l.Run(context.Background(), first, &out, &recorder{t: t}); res.Status != run.Success {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	// What a job could set on its own folders with setfattr (not installed here): set as root.
	for _, d := range []string{first.Workspace, homeOf(first.Workspace)} {
		if err := syscall.Setxattr(d, "user.leak", []byte("secret"), 0); err != nil {
			t.Skipf("extended attributes not supported here: %v", err)
		}
	}
	if err := l.Cleanup(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(first.Workspace); !os.IsNotExist(err) {
		t.Fatalf("the first workspace is still there: %v", err)
	}
	if n := len(l.kept.ready[folderWorkspace]) + len(l.kept.ready[folderHome]); n != 2 {
		t.Fatalf("%d folders kept, want the workspace and the HOME", n)
	}

	second := isolatedJob(root, 51, `set -e
test -z "$(ls -A .)"; test -z "$(ls -A "$HOME" | grep -v '^tmp$')"; test -z "$(ls -A "$TMPDIR")"
stat -c '%a %u' . "$HOME" "$TMPDIR"
echo ok`)
	out = syncBuffer{}
	res := l.Run(context.Background(), second, &out, &recorder{t: t})
	if res.Status != run.Success || !strings.Contains(out.String(), "ok") {
		t.Fatalf("the second job on kept folders: %+v\n%s", res, out.String())
	}
	if n := len(l.kept.ready[folderWorkspace]) + len(l.kept.ready[folderHome]); n != 0 {
		t.Errorf("%d folders still kept: the second job made its own", n)
	}
	uid := l.held[second.Workspace].uid
	for _, d := range []string{second.Workspace, homeOf(second.Workspace), filepath.Join(homeOf(second.Workspace), "tmp")} {
		var st syscall.Stat_t
		if err := syscall.Lstat(d, &st); err != nil || st.Uid != uid || st.Mode&0o7777 != 0o700 {
			t.Errorf("%s: uid %d mode %o (%v), want %d and 0700", d, st.Uid, st.Mode&0o7777, err, uid)
		}
		if n, _ := syscall.Listxattr(d, make([]byte, 1024)); n != 0 {
			t.Errorf("%s kept extended attributes of the first job", d)
		}
	}
	l.Cleanup(context.Background(), second)

	// A HOME whose tmp a job replaced with a link to a folder of root's.
	target := t.TempDir()
	precious := filepath.Join(target, "precious")
	if err := os.WriteFile(precious, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(target, 0o755)
	third := isolatedJob(root, 52, `rm -rf "$TMPDIR" && ln -s `+target+` "$HOME/tmp" && echo linked`)
	out = syncBuffer{}
	if res := l.Run(context.Background(), third, &out, &recorder{t: t}); res.Status != run.Success {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	if err := l.Cleanup(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("the cleanup followed the job's link: %v", err)
	}
	if n := len(l.kept.ready[folderHome]); n != 0 {
		t.Errorf("a HOME whose tmp is a link was kept")
	}
	if _, err := os.Lstat(homeOf(third.Workspace)); !os.IsNotExist(err) {
		t.Errorf("the HOME with a link was not removed: %v", err)
	}
}

// TestEarlierAttemptHoldsTheWorkspace runs a job again (a later attempt, same workspace) while
// an earlier attempt of it still runs on the same executor: the later one starts only once the
// earlier one's Cleanup gave the workspace and its uid back, and gets a clean workspace.
func TestEarlierAttemptHoldsTheWorkspace(t *testing.T) {
	t.Parallel()
	for _, isolated := range []bool{true, false} {
		t.Run(fmt.Sprintf("isolated=%v", isolated), func(t *testing.T) {
			t.Parallel()
			var l *Local
			var first Job
			if isolated {
				l = isolatedLocal(t, 2)
				first = isolatedJob(workspaceRoot(t), 60, `echo left > marker; echo first; sleep 0.5`)
			} else {
				l = newLocal(t)
				first = newJob(t, `echo left > marker; echo first; sleep 0.5`)
			}
			earlierAttemptHolds(t, l, first)
		})
	}
}

func earlierAttemptHolds(t *testing.T, l *Local, first Job) {
	second := first
	second.Steps = []Step{{ID: 1, Name: "s1", Script: `test ! -e marker && echo clean`}}
	var out1, out2 syncBuffer
	done1, done2 := make(chan Result, 1), make(chan Result, 1)
	go func() { done1 <- l.Run(context.Background(), first, &out1, &recorder{t: t}) }()
	waitFor(t, 10*time.Second, "the first attempt's step", func() bool { return strings.Contains(out1.String(), "first") })
	go func() { done2 <- l.Run(context.Background(), second, &out2, &recorder{t: t}) }()
	if res := <-done1; res.Status != run.Success {
		t.Fatalf("first attempt: %+v\n%s", res, out1.String())
	}
	time.Sleep(100 * time.Millisecond)
	if out2.String() != "" {
		t.Fatalf("the later attempt started before the earlier one's cleanup:\n%s", out2.String())
	}
	if err := l.Cleanup(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done2:
		if res.Status != run.Success || !strings.Contains(out2.String(), "clean") {
			t.Errorf("later attempt: %+v\n%s", res, out2.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the later attempt did not start after the earlier one's cleanup")
	}
	l.Cleanup(context.Background(), second)
}
