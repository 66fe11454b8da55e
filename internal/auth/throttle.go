package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Throttle slows down password guessing and bounds the work it causes. Every sign-in attempt
// for one key (a user name and the caller's address) is counted before its password is checked:
// at most MaxAttempts attempts per key within Window are checked, so parallel guesses cannot race
// past the limit; later ones are refused until the window has passed. A right password clears
// the key. A bounded number of password checks (bcrypt) run at once across the server; an attempt
// that waits CheckWait without its turn is refused as busy, so a flood of sign-ins, with known
// or unknown user names, cannot take the CPUs from webhooks and health checks.
//
// The counts live in the process (at most MaxKeys keys, the oldest forgotten first) unless
// Shared is set: then they live where every server sees them, so servers sharing a database
// allow MaxAttempts per key between them, not each. Safe for concurrent use; the
// zero value is not usable: use NewThrottle. A nil *Throttle throttles nothing and checks
// passwords without a bound, so callers need no check.
type Throttle struct {
	MaxAttempts int
	Window      time.Duration
	MaxKeys     int
	CheckWait   time.Duration
	// Shared, when set, keeps the attempt counts instead of this process: the store on
	// PostgreSQL, where several servers share the database. The bound on password checks
	// running at once stays per process (it guards this process's CPUs). Set it before use.
	Shared Attempts
	// SharedSalt keys the HMAC that names a key in Shared (sharedKey); it must be the same on
	// every server and secret, so the stored names cannot be reversed by guessing (a password
	// typed as a user name, with the address it came from).
	SharedSalt []byte

	mu     sync.Mutex
	keys   map[string]*failures
	checks chan struct{} // one token per password check running
	dummy  string        // the hash an unknown user's password is checked against
}

// Attempts keeps the sign-in attempt counts of several servers; store.Store implements it on
// both databases. Keys reach it as an HMAC (sharedKey), so no typed user name is stored.
type Attempts interface {
	// SignInReserve counts an attempt for key unless it has maxAttempts in its window already;
	// then ok is false and wait says when the window ends.
	SignInReserve(ctx context.Context, key string, maxAttempts int, window time.Duration) (ok bool, wait time.Duration, err error)
	// SignInRelease gives back an attempt counted but not checked.
	SignInRelease(ctx context.Context, key string) error
	// SignInClear forgets key's attempts.
	SignInClear(ctx context.Context, key string) error
}

// sharedTimeout bounds giving back or clearing an attempt in Shared; those run even when the
// caller has gone, since a count left behind would lock the key out for nothing.
const sharedTimeout = 5 * time.Second

type failures struct {
	count int       // attempts counted: failed, or being checked
	since time.Time // the first attempt of the current window
}

// DefaultCheckWait is how long a sign-in waits for its turn to have its password checked.
const DefaultCheckWait = 2 * time.Second

// NewThrottle returns a Throttle checking at most maxAttempts passwords per key and window,
// and at most half as many at once as the process has CPUs (at least one), so the other half
// stays free for everything else.
func NewThrottle(maxAttempts int, window time.Duration) *Throttle {
	return &Throttle{MaxAttempts: maxAttempts, Window: window, MaxKeys: 10000, CheckWait: DefaultCheckWait,
		keys: map[string]*failures{}, checks: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), dummy: dummyHash}
}

// Verdict is the end of a sign-in attempt.
type Verdict int

const (
	// Accepted: the password is right (the key is cleared).
	Accepted Verdict = iota
	// Rejected: a wrong password or an unknown user; the attempt stays counted.
	Rejected
	// Throttled: the key has used its attempts of the window; nothing was checked. Answer 429
	// with the wait as Retry-After.
	Throttled
	// Busy: no password check could start within CheckWait; nothing was checked or counted.
	// Answer 503 with the wait as Retry-After.
	Busy
)

// Verify decides a sign-in attempt for key with password: it counts the attempt (Throttled when
// the key has none left), asks lookup for the user's stored hash ("" for no such user, which
// costs a check of a dummy hash of the same cost, so unknown users cannot be told apart by
// time), then checks the password in one of the bounded slots. The wait is for Throttled and
// Busy. An error of lookup is returned as it is, with the attempt given back.
func (t *Throttle) Verify(ctx context.Context, key, password string, lookup func(context.Context) (hash string, err error)) (Verdict, time.Duration, error) {
	wait, ok, err := t.reserveShared(ctx, key)
	if err != nil {
		return Rejected, 0, err
	}
	if !ok {
		return Throttled, wait, nil
	}
	hash, err := lookup(ctx)
	if err != nil {
		t.releaseShared(ctx, key)
		return Rejected, 0, err
	}
	done, ok := t.startCheck(ctx)
	if !ok {
		t.releaseShared(ctx, key)
		return Busy, time.Second, nil
	}
	right := false
	if hash == "" {
		_ = CheckPassword(t.dummyHash(), password)
	} else {
		right = CheckPassword(hash, password)
	}
	done()
	if !right {
		return Rejected, 0, nil
	}
	t.succeededShared(ctx, key)
	return Accepted, 0, nil
}

// reserveShared is reserve, in Shared when it is set.
func (t *Throttle) reserveShared(ctx context.Context, key string) (wait time.Duration, ok bool, err error) {
	if t == nil || t.Shared == nil {
		wait, ok = t.reserve(key, time.Now())
		return wait, ok, nil
	}
	ok, wait, err = t.Shared.SignInReserve(ctx, t.sharedKey(key), t.MaxAttempts, t.Window)
	return wait, ok, err
}

// releaseShared is release, in Shared when it is set. Should Shared fail, the attempt stays
// counted: the limit errs on the side of refusing.
func (t *Throttle) releaseShared(ctx context.Context, key string) {
	if t == nil || t.Shared == nil {
		t.release(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	_ = t.Shared.SignInRelease(ctx, t.sharedKey(key))
}

// succeededShared is succeeded, in Shared when it is set. Should Shared fail, the count stays
// until its window ends; the sign-in has succeeded anyway.
func (t *Throttle) succeededShared(ctx context.Context, key string) {
	if t == nil || t.Shared == nil {
		t.succeeded(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	_ = t.Shared.SignInClear(ctx, t.sharedKey(key))
}

// sharedKey is key as Shared keeps it: its HMAC-SHA-256 under SharedSalt, so a password typed
// into the user name field is never stored, in clear or guessable.
func (t *Throttle) sharedKey(key string) string {
	m := hmac.New(sha256.New, t.SharedSalt)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// dummyHash is the hash an unknown user's password is checked against: of the cost of real
// ones, so the check takes as long.
func (t *Throttle) dummyHash() string {
	if t == nil || t.dummy == "" {
		return dummyHash
	}
	return t.dummy
}

// startCheck waits up to CheckWait for a password check slot; done gives it back.
func (t *Throttle) startCheck(ctx context.Context) (done func(), ok bool) {
	if t == nil {
		return func() {}, true
	}
	done = func() { <-t.checks }
	select {
	case t.checks <- struct{}{}:
		return done, true
	default:
	}
	timer := time.NewTimer(t.CheckWait)
	defer timer.Stop()
	select {
	case t.checks <- struct{}{}:
		return done, true
	case <-timer.C:
	case <-ctx.Done():
	}
	return nil, false
}

// reserve counts an attempt for key at now; ok false, with how long to wait, when the key has
// MaxAttempts attempts in its window already.
func (t *Throttle) reserve(key string, now time.Time) (wait time.Duration, ok bool) {
	if t == nil {
		return 0, true
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
	if f.count >= t.MaxAttempts {
		return f.since.Add(t.Window).Sub(now), false
	}
	f.count++
	return 0, true
}

// release gives back an attempt that was counted but not checked.
func (t *Throttle) release(key string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.keys[key]; f != nil && f.count > 0 {
		f.count--
	}
}

// succeeded clears key after a right password.
func (t *Throttle) succeeded(key string) {
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
