package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/ratelimit"
)

// refusal is the limit's answer in a refused take's error, or nil.
func refusal(err error) *ratelimit.Error {
	var r *ratelimit.Error
	if errors.As(err, &r) && errors.Is(err, ErrTooManyLogins) {
		return r
	}
	return nil
}

func TestLimiterBurstRefillAndFirstRefusal(t *testing.T) {
	l := newLimiter(60, 2)
	now := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		if err := l.take("203.0.113.7", now); err != nil {
			t.Fatalf("take %d within the burst: %v", i+1, err)
		}
	}
	first := refusal(l.take("203.0.113.7", now))
	second := refusal(l.take("203.0.113.7", now))
	if first == nil || !first.First || second == nil || second.First {
		t.Fatalf("refusals = %+v, %+v; want the first marked first and the second not", first, second)
	}
	if first.RetryAfterSeconds() != 1 {
		t.Errorf("retryAfter = %d s, want 1 at 60 a minute", first.RetryAfterSeconds())
	}
	if err := l.take("203.0.113.7", now.Add(time.Second)); err != nil {
		t.Errorf("after a second's refill: %v", err)
	}
	if again := refusal(l.take("203.0.113.7", now.Add(time.Second))); again == nil || !again.First {
		t.Errorf("the next dry spell's first refusal = %+v, want it marked first", again)
	}
}

func TestLimiterKeysIPv6ByPrefix(t *testing.T) {
	l := newLimiter(60, 1)
	now := time.Unix(1_700_000_000, 0)
	if l.take("2001:db8:1:2::1", now) != nil {
		t.Fatal("first address of the /64 refused")
	}
	if l.take("2001:db8:1:2:ffff::9", now) == nil {
		t.Error("another address in the same /64 got a bucket of its own")
	}
	if l.take("2001:db8:1:3::1", now) != nil {
		t.Error("another /64 shares the bucket")
	}
	if l.take("::ffff:203.0.113.7", now) != nil || l.take("203.0.113.8", now) != nil {
		t.Error("IPv4 addresses share a bucket")
	}
}
