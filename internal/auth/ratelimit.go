package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/wxlogin/wxlogin/internal/ratelimit"
)

// ErrTooManyLogins refuses a login over the per-address limit, before any work; it
// comes with the *ratelimit.Error that says when to retry.
var ErrTooManyLogins = errors.New("auth: too many logins from this address")

// limiter is the login limit: a token bucket per client address, `burst` logins at
// once, refilled at `perMinute`. It is per instance: behind a load balancer each
// instance allows its share. IPv6 addresses share the bucket of their /64, since one
// customer holds a whole /64.
type limiter struct{ buckets *ratelimit.Limiter }

func newLimiter(perMinute, burst int) *limiter {
	return &limiter{buckets: ratelimit.New(perMinute, time.Minute, burst)}
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
func (l *limiter) take(ip string, now time.Time) error {
	if refused := l.buckets.Take(limitKey(ip), now); refused != nil {
		return fmt.Errorf("%w: %w", ErrTooManyLogins, refused)
	}
	return nil
}

// prune forgets buckets that have refilled.
func (l *limiter) prune(now time.Time) { l.buckets.Prune(now) }
