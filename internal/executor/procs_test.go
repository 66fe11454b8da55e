package executor

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deadServer is a record's server part naming a process that has ended: a server killed
// before the restart that reads its records.
func deadServer(t *testing.T) stepRecord {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, ok := startTime(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if !ok {
		t.Fatal("no start time of a running process")
	}
	r := self()
	r.server, r.serverStart = cmd.Process.Pid, start
	return r
}

// startShim starts the step shim as Local does, in a process group of its own, running
// script, and returns it with its group id (its pid).
func startShim(t *testing.T, script string) (*exec.Cmd, int) {
	t.Helper()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testShim(t), ShimCommand, "1000", "-1", "-1", t.TempDir(), "--", "/bin/sh", "-c", script)
	cmd.ExtraFiles = []*os.File{statusW, envR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	statusW.Close()
	envR.Close()
	statusR.Close()
	envW.Write([]byte("PATH=/usr/bin:/bin\x00"))
	envW.Close()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		killGroup(pgid, syscall.SIGKILL)
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, pgid
}

// sleepsOf counts the live `sleep` processes of group pgid.
func sleepsOf(t *testing.T, pgid int) int {
	n := 0
	for _, p := range groupAlive(t, pgid) {
		if strings.HasSuffix(p, "(sleep)") {
			n++
		}
	}
	return n
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A step whose shim was killed with SIGKILL (and its server too) leaves its shell and sleeps
// running, re-parented to init; KillRecorded kills them all from the record of their group,
// whether the shim is gone or still there.
func TestKillRecordedKillsTheGroup(t *testing.T) {
	t.Parallel()
	for _, shimKilled := range []bool{true, false} {
		t.Run(fmt.Sprintf("shim killed %v", shimKilled), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			secs := 3000000 + rand.IntN(600000)
			cmd, pgid := startShim(t, fmt.Sprintf("sleep %d & sleep %d & wait", secs, secs+1))
			waitFor(t, 10*time.Second, "the step's sleeps", func() bool { return sleepsOf(t, pgid) == 2 })
			r := deadServer(t)
			r.pgid = pgid
			r.start, _ = startTime(pgid)
			if _, err := writeStepRecord(dir, r); err != nil {
				t.Fatal(err)
			}
			want := 4 // the shim, the shell, two sleeps
			if shimKilled {
				cmd.Process.Kill()
				cmd.Wait() // reaped, as init reaps a killed server's orphans: the leader is gone
				if n := sleepsOf(t, pgid); n != 2 {
					t.Fatalf("%d sleeps outlived the shim, want 2 (the case KillRecorded is for)", n)
				}
				want = 3
			}

			killed, err := KillRecorded(context.Background(), dir, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if left := groupAlive(t, pgid); len(left) > 0 {
				t.Errorf("alive after KillRecorded: %v", left)
			}
			if killed != want {
				t.Errorf("KillRecorded killed %d processes, want %d", killed, want)
			}
			if names := listDir(t, dir); len(names) > 0 {
				t.Errorf("records left: %v", names)
			}
		})
	}
}

// A record is applied only to the processes it names: not when the leader's pid now belongs
// to a process with another start time, not when its server still runs, not from another boot.
func TestKillRecordedSparesOthers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(r *stepRecord)
		kept bool // the record stays (its server runs)
	}{
		{"pid used again", func(r *stepRecord) { r.start++ }, false},
		{"server running", func(r *stepRecord) { s := self(); r.server, r.serverStart = s.server, s.serverStart }, true},
		{"another boot", func(r *stepRecord) { r.boot = "00000000-0000-0000-0000-000000000000" }, false},
		{"another pid namespace", func(r *stepRecord) { r.pidns = "pid:[1]" }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd := exec.Command("sleep", strconv.Itoa(3000000+rand.IntN(600000)))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			pgid := cmd.Process.Pid
			r := deadServer(t)
			r.pgid = pgid
			r.start, _ = startTime(pgid)
			c.edit(&r)
			if _, err := writeStepRecord(dir, r); err != nil {
				t.Fatal(err)
			}
			killed, err := KillRecorded(context.Background(), dir, nil)
			if err != nil || killed != 0 {
				t.Errorf("KillRecorded = %d, %v; want nothing killed", killed, err)
			}
			if len(groupAlive(t, pgid)) != 1 {
				t.Error("the process the record does not name was killed")
			}
			if names := listDir(t, dir); (len(names) == 1) != c.kept {
				t.Errorf("records left: %v, want kept %v", names, c.kept)
			}
		})
	}
}

// Local records a step's process group while the step runs, with the shell's group and its
// leader's start time, and removes the record when the step ends.
func TestLocalRecordsRunningSteps(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "steps") // made by the first record
	job := newJob(t, `cat "$PROCS"/*; echo "shell pgrp=$(cut -d' ' -f5 /proc/$$/stat)"`)
	job.Env = append(job.Env, "PROCS="+dir)
	l := newLocal(t)
	l.Procs = dir
	var out syncBuffer
	if res := l.Run(context.Background(), job, &out, &recorder{t: t}); res.Status != "success" {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	got := out.String()
	m := regexp.MustCompile(`pgid=(\d+) start=(\d+) server=(\d+) `).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no record while the step ran:\n%s", got)
	}
	if !strings.Contains(got, "shell pgrp="+m[1]+"\n") {
		t.Errorf("the record names group %s, not the shell's:\n%s", m[1], got)
	}
	if m[3] != strconv.Itoa(os.Getpid()) {
		t.Errorf("the record names server %s, want %d", m[3], os.Getpid())
	}
	if names := listDir(t, dir); len(names) > 0 {
		t.Errorf("records left after the step: %v", names)
	}
}

func TestKillRecordedMissingFolder(t *testing.T) {
	t.Parallel()
	if n, err := KillRecorded(context.Background(), filepath.Join(t.TempDir(), "none"), nil); n != 0 || err != nil {
		t.Errorf("KillRecorded of a missing folder = %d, %v", n, err)
	}
}

// Each git command of a checkout is recorded while it runs, as a step is: right after it
// starts (the fake git waits for its record, at most 10 s).
func TestCheckoutIsRecorded(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "steps")
	seen := filepath.Join(t.TempDir(), "seen")
	git := filepath.Join(t.TempDir(), "git")
	script := fmt.Sprintf("#!/bin/sh\nfor i in $(seq 1000); do [ -n \"$(ls %[1]s 2>/dev/null)\" ] && break; sleep 0.01; done\n"+
		"{ cat %[1]s/*; echo \"git pid=$$\"; } > %[2]s\nexit 1\n", dir, seen)
	if err := os.WriteFile(git, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l := newLocal(t)
	l.Procs, l.Git = dir, git
	job := newJob(t, "echo never")
	job.Checkout = &Checkout{URL: "https://git.example/x.git", SHA: strings.Repeat("a", 40)}
	var out syncBuffer
	if res := l.Run(context.Background(), job, &out, &recorder{t: t}); res.Status != "failed" {
		t.Fatalf("%+v, want the checkout failed by the fake git\n%s", res, out.String())
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`pgid=(\d+) `).FindStringSubmatch(string(b))
	if m == nil || !strings.Contains(string(b), "git pid="+m[1]+"\n") {
		t.Errorf("git did not find its own group recorded: %q", b)
	}
	if names := listDir(t, dir); len(names) > 0 {
		t.Errorf("records left after the checkout: %v", names)
	}
}
