package secret

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	box, err := New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := box.Seal([]byte("hunter2"))
	b, _ := box.Seal([]byte("hunter2"))
	if bytes.Equal(a, b) || bytes.Contains(a, []byte("hunter2")) {
		t.Fatal("sealing must use a fresh nonce and hide the value")
	}
	got, err := box.Open(a)
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := New(bytes.Repeat([]byte{2}, 32))
	if _, err := other.Open(a); err == nil {
		t.Fatal("a value opened with the wrong key")
	}
	a[len(a)-1] ^= 1
	if _, err := box.Open(a); err == nil {
		t.Fatal("a damaged value opened")
	}
	if _, err := box.Open([]byte("short")); err == nil {
		t.Fatal("a too-short value opened")
	}
}

func TestLoadKeyGeneratesOnceWithMode0600(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	k2, err := LoadKey("", dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("the generated key changed on the second load")
	}
}

func TestLoadKeyFromEnvironment(t *testing.T) {
	t.Parallel()
	want := bytes.Repeat([]byte{9}, 32)
	dir := t.TempDir()
	got, err := LoadKey(hex.EncodeToString(want), dir)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("LoadKey = %x, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("a key file was written although FLOWD_SECRET_KEY was set")
	}
	for _, bad := range []string{"zz", hex.EncodeToString(want[:16])} {
		if _, err := LoadKey(bad, dir); err == nil {
			t.Errorf("LoadKey(%q) accepted a bad key", bad)
		}
	}
}

// TestLoadKeyConcurrentStartsAgree: servers starting at once in one data folder all end up
// with the same key, and none reads a half-written file.
func TestLoadKeyConcurrentStartsAgree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 16
	keys := make(chan []byte, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			k, err := LoadKey("", dir)
			keys <- k
			errs <- err
		}()
	}
	var first []byte
	for range n {
		k, err := <-keys, <-errs
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = k
		} else if !bytes.Equal(first, k) {
			t.Fatal("two concurrent starts got different keys")
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary key files left behind: %v", left)
	}
}
