package auth

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"
)

// RateLimitError refuses a login over the per-address limit, before any work.
type RateLimitError struct {
	RetryAfter time.Duration
	// first is true for the first refusal since the address last had allowance.
	first bool
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many logins from this address; retry after %s", e.RetryAfter)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1.
func (e *RateLimitError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// limiter is a token bucket per client address: `burst` logins at once, refilled at
// `perMinute`. It is per instance: behind a load balancer each instance allows its share.
// IPv6 addresses share the bucket of their /64, since one customer holds a whole /64.
type limiter struct {
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

// maxBuckets bounds the limiter's memory. When it is reached, refilled buckets are
// dropped (they are the same as new ones); if that is not enough, a tenth of the
// buckets go, so that the next full sweep is a while away.
const maxBuckets = 100_000

func newLimiter(perMinute, burst int) *limiter {
	return &limiter{rate: float64(perMinute) / 60, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// limitKey is the bucket an address belongs to.
func limitKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Is4() {
		return ip
	}
	prefix, _ := addr.Prefix(64)
	return prefix.String()
}

// take spends one token of ip's bucket, or refuses and says how long until there is one.
func (l *limiter) take(ip string, now time.Time) *RateLimitError {
	if l.rate <= 0 {
		return nil
	}
	key := limitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.shrinkLocked(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		b.refusing = false
		return nil
	}
	first := !b.refusing
	b.refusing = true
	return &RateLimitError{RetryAfter: time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), first: first}
}

// prune forgets buckets that have refilled.
func (l *limiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) shrinkLocked(now time.Time) {
	l.pruneLocked(now)
	for k := range l.buckets {
		if len(l.buckets) < maxBuckets-maxBuckets/10 {
			return
		}
		delete(l.buckets, k)
	}
}
