// Package dockertest gives tests a real Docker daemon and a tiny image of their own.
//
// No registry can be reached where flowd's tests run, so the image is made here: a root folder
// holding Debian's static busybox (/bin/busybox from the busybox-static package) and a link
// per applet, imported as Image (the same image `.ci/run` imports with `docker import`). A test
// that needs Docker skips with a message when no daemon answers or busybox is missing, and
// fails instead under FLOWD_TEST_REQUIRE_ALL=1 (CI).
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Image is the test image: busybox's applets in /bin, PATH=/bin, nothing else.
const Image = "flowd-test/busybox:1"

// busybox is where Debian's busybox-static puts its binary.
const busybox = "/bin/busybox"

// EnvRequireAll, set to 1, fails instead of skipping tests whose Docker is missing.
const EnvRequireAll = "FLOWD_TEST_REQUIRE_ALL"

// Client is a client of the daemon DOCKER_HOST names (the local socket by default), closed at
// cleanup, after Image exists on it. Without a daemon or busybox the test is skipped (failed
// under FLOWD_TEST_REQUIRE_ALL=1).
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		missing(t, "cannot make a Docker client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		missing(t, "no Docker daemon answers (%v): install Debian's docker.io and start dockerd, as .ci/run does", err)
	}
	if err := EnsureImage(ctx, c); err != nil {
		missing(t, "%v", err)
	}
	return c
}

// Available says whether a Docker daemon answers, for code that picks its tests.
func Available() bool {
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return err == nil
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "dockertest: " + fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequireAll) == "1" {
		t.Fatalf("%s (%s=1)", msg, EnvRequireAll)
	}
	t.Skip(msg)
}

var imageOnce sync.Mutex

// EnsureImage imports Image (RootFS, with PATH=/bin) unless the daemon c talks to has it.
// Tests get it through Client; cmd/flowd-bench calls it before its containers section.
func EnsureImage(ctx context.Context, c *client.Client) error {
	imageOnce.Lock()
	defer imageOnce.Unlock()
	if _, err := c.ImageInspect(ctx, Image); err == nil {
		return nil
	}
	root, err := RootFS()
	if err != nil {
		return err
	}
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(root), SourceName: "-"},
		Image, client.ImageImportOptions{Changes: []string{"ENV PATH=/bin"}})
	if err != nil {
		return fmt.Errorf("import %s: %w", Image, err)
	}
	defer res.Close()
	if _, err := io.Copy(io.Discard, res); err != nil {
		return fmt.Errorf("import %s: %w", Image, err)
	}
	return nil
}

// RootFS is the image's root folder as a tar: /bin/busybox, a link per applet, and empty
// /tmp and /workspace. It needs Debian's busybox-static.
func RootFS() ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read %s (install Debian's busybox-static): %w", busybox, err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"tmp/", 0o1777}, {"workspace/", 0o755}, {"etc/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: now}); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	for _, f := range []struct {
		name string
		data []byte
		mode int64
	}{{"bin/busybox", bin, 0o755}, {"etc/passwd", []byte(passwd), 0o644}, {"etc/group", []byte(group), 0o644}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
