package webhook

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket per key (a trigger): each key may take burst tokens at once, and
// tokens come back at rate per second up to burst. It holds at most maxKeys buckets: when a new
// key comes and there is no room, the buckets that have refilled to full (idle long enough)
// are dropped, which loses nothing, since a new bucket starts full too; when none is full, the
// one closest to full is dropped, so the bound always holds. Safe for concurrent use.
type Limiter struct {
	rate    float64 // tokens per second
	burst   float64 // bucket size
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is one key's tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter refilling rate tokens per second into buckets of burst tokens,
// holding at most maxKeys buckets. It panics unless rate is finite and above 0, burst is at
// least 1 and maxKeys at least 1 (config.Validate checks the flags).
func NewLimiter(rate float64, burst int, maxKeys int) *Limiter {
	if !(rate > 0) || math.IsInf(rate, 0) || burst < 1 || maxKeys < 1 {
		panic("webhook: NewLimiter needs a finite rate > 0, burst >= 1 and maxKeys >= 1")
	}
	return &Limiter{
		rate:    rate,
		burst:   float64(burst),
		maxKeys: maxKeys,
		buckets: make(map[string]*bucket),
	}
}

// Allow takes one token for key at now; when none is left it returns false and how long until
// one is (rounded up, so asking again after retryAfter succeeds). A now earlier than the key's
// last call refills nothing.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	} else if now.After(b.last) {
		b.tokens = l.tokensAt(b, now)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, max(wait, 1)
}

// Take is Allow at the current time, for callers that take a limiter of this process or one
// shared by several servers alike (trigger.RateLimiter). It never fails.
func (l *Limiter) Take(_ context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	ok, retryAfter = l.Allow(key, time.Now())
	return ok, retryAfter, nil
}

// tokensAt returns b's tokens at now, refilled since b.last.
func (l *Limiter) tokensAt(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed <= 0 {
		return b.tokens
	}
	return min(l.burst, b.tokens+elapsed*l.rate)
}

// evict makes room for one bucket: it drops every bucket full at now, or, when none is, the one
// with the most tokens (the least recently used among equals). Called with l.mu held.
func (l *Limiter) evict(now time.Time) {
	var victim string
	var victimBucket *bucket
	victimTokens := math.Inf(-1)
	dropped := false
	for key, b := range l.buckets {
		t := l.tokensAt(b, now)
		if t >= l.burst {
			delete(l.buckets, key)
			dropped = true
			continue
		}
		if t > victimTokens || (t == victimTokens && b.last.Before(victimBucket.last)) {
			victim, victimBucket, victimTokens = key, b, t
		}
	}
	if !dropped && victimBucket != nil {
		delete(l.buckets, victim)
	}
}
