package auth

import (
	"net"
	"strings"
	"sync"
	"time"
)

// Throttle slows down password guessing: after MaxFailures wrong passwords for one key (a
// user name and the caller's address) within Window, further attempts for that key are refused
// until the window has passed; a right password clears the key. It keeps at most MaxKeys keys
// (the oldest are forgotten first). Safe for concurrent use; the zero value is not usable: use
// NewThrottle. A nil *Throttle throttles nothing, so callers need no check.
type Throttle struct {
	MaxFailures int
	Window      time.Duration
	MaxKeys     int

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	count int
	since time.Time // the first failure of the current window
}

// NewThrottle returns a Throttle allowing maxFailures wrong passwords per key and window.
func NewThrottle(maxFailures int, window time.Duration) *Throttle {
	return &Throttle{MaxFailures: maxFailures, Window: window, MaxKeys: 10000, keys: map[string]*failures{}}
}

// Wait reports how long key must wait before its next attempt (0: it may try now).
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.keys[key]
	if f == nil || f.count < t.MaxFailures {
		return 0
	}
	if end := f.since.Add(t.Window); now.Before(end) {
		return end.Sub(now)
	}
	delete(t.keys, key)
	return 0
}

// Failed records a wrong password for key.
func (t *Throttle) Failed(key string, now time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.keys[key]
	if f == nil || now.Sub(f.since) >= t.Window {
		if f == nil && len(t.keys) >= t.MaxKeys {
			t.evictOldest()
		}
		f = &failures{since: now}
		t.keys[key] = f
	}
	f.count++
}

// Succeeded clears key after a right password.
func (t *Throttle) Succeeded(key string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

func (t *Throttle) evictOldest() {
	var oldest string
	var at time.Time
	for k, f := range t.keys {
		if oldest == "" || f.since.Before(at) {
			oldest, at = k, f.since
		}
	}
	delete(t.keys, oldest)
}

// ThrottleKey is the key of a sign-in attempt: the user name and the caller's address
// (http.Request.RemoteAddr; its port is dropped).
func ThrottleKey(username, remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	return strings.ToLower(username) + "\x00" + remoteAddr
}
