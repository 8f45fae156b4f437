// Package ratelimit is a token bucket per key, bounded in memory. The login limit per
// client address and the per-user limits on fields that call WeChat are each one
// Limiter. A Limiter is per instance: behind a load balancer each instance allows its
// share.
package ratelimit

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Error refuses a request over the limit, before any work.
type Error struct {
	RetryAfter time.Duration
	// First is true for the first refusal since the key last had allowance: callers
	// that record refusals record one per dry spell, not one per request.
	First bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("rate limited; retry after %s", e.RetryAfter)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1.
func (e *Error) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// Limiter holds a bucket per key: burst requests at once, refilled at n per period.
type Limiter struct {
	rate  float64 // tokens per second; 0: no limit
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens   float64
	at       time.Time
	refusing bool // the last take was refused
}

// MaxKeys bounds a Limiter's memory. When it is reached, refilled buckets are dropped
// (they are the same as new ones); if that is not enough, a tenth of the buckets go, so
// that the next full sweep is a while away.
const MaxKeys = 100_000

// New returns a Limiter allowing burst requests at once per key (at least 1), refilled
// at n every period. n <= 0 or period <= 0 is no limit.
func New(n int, period time.Duration, burst int) *Limiter {
	l := &Limiter{burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
	if n > 0 && period > 0 {
		l.rate = float64(n) / period.Seconds()
	}
	return l
}

// Take spends one token of key's bucket, or refuses and says how long until there is one.
func (l *Limiter) Take(key string, now time.Time) *Error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= MaxKeys {
			l.shrinkLocked(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens, b.at = l.refilled(b, now), now
	if b.tokens >= 1 {
		b.tokens--
		b.refusing = false
		return nil
	}
	first := !b.refusing
	b.refusing = true
	return &Error{RetryAfter: l.until(b.tokens), First: first}
}

// Peek refuses as Take would, without spending a token: for limits that count only
// failures, checked before the attempt and taken after a failed one.
func (l *Limiter) Peek(key string, now time.Time) *Error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		if tokens := l.refilled(b, now); tokens < 1 {
			return &Error{RetryAfter: l.until(tokens)}
		}
	}
	return nil
}

// refilled is what a bucket holds at now.
func (l *Limiter) refilled(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
}

// until is how long a bucket holding tokens takes to hold one.
func (l *Limiter) until(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / l.rate * float64(time.Second))
}

// Prune forgets buckets that have refilled.
func (l *Limiter) Prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

// Len is how many buckets the Limiter holds.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

func (l *Limiter) shrinkLocked(now time.Time) {
	l.pruneLocked(now)
	for k := range l.buckets {
		if len(l.buckets) < MaxKeys-MaxKeys/10 {
			return
		}
		delete(l.buckets, k)
	}
}
