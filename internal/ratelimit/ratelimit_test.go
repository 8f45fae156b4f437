package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestBurstRefillAndFirstRefusal(t *testing.T) {
	l := New(60, time.Minute, 2)
	now := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		if err := l.Take("k", now); err != nil {
			t.Fatalf("take %d within the burst: %v", i+1, err)
		}
	}
	first := l.Take("k", now)
	second := l.Take("k", now)
	if first == nil || !first.First || second == nil || second.First {
		t.Fatalf("refusals = %+v, %+v; want the first marked first and the second not", first, second)
	}
	if first.RetryAfterSeconds() != 1 {
		t.Errorf("retryAfter = %d s, want 1 at 60 a minute", first.RetryAfterSeconds())
	}
	if err := l.Take("k", now.Add(time.Second)); err != nil {
		t.Errorf("after a second's refill: %v", err)
	}
	if again := l.Take("k", now.Add(time.Second)); again == nil || !again.First {
		t.Errorf("the next dry spell's first refusal = %+v, want it marked first", again)
	}
	if err := l.Take("other", now); err != nil {
		t.Errorf("another key shares the bucket: %v", err)
	}
}

func TestSlowRefillSaysHowLongToWait(t *testing.T) {
	l := New(10, time.Hour, 1) // one every 6 minutes
	now := time.Unix(1_700_000_000, 0)
	if err := l.Take("k", now); err != nil {
		t.Fatal(err)
	}
	refused := l.Take("k", now.Add(time.Minute))
	if refused == nil || refused.RetryAfterSeconds() != 300 {
		t.Fatalf("a minute after the only token: %+v, want retry after 300 s", refused)
	}
	if err := l.Take("k", now.Add(6*time.Minute)); err != nil {
		t.Errorf("6 minutes later: %v", err)
	}
}

func TestNoLimit(t *testing.T) {
	l := New(0, time.Minute, 1)
	now := time.Unix(1_700_000_000, 0)
	for range 1000 {
		if err := l.Take("k", now); err != nil {
			t.Fatalf("a limiter with no rate refused: %v", err)
		}
	}
	if l.Len() != 0 {
		t.Errorf("a limiter with no rate keeps %d buckets", l.Len())
	}
}

func TestPruneForgetsRefilledBuckets(t *testing.T) {
	l := New(60, time.Minute, 5)
	now := time.Unix(1_700_000_000, 0)
	l.Take("spent", now)
	l.Take("spent", now)
	l.Prune(now.Add(time.Second))
	if l.Len() != 1 {
		t.Fatalf("%d buckets after a second, want the part-spent one kept", l.Len())
	}
	l.Prune(now.Add(3 * time.Second))
	if l.Len() != 0 {
		t.Errorf("%d buckets after they refilled, want none", l.Len())
	}
}

func TestMemoryIsBounded(t *testing.T) {
	l := New(1, time.Minute, 5) // slow refill: buckets stay part-spent
	now := time.Unix(1_700_000_000, 0)
	for i := range MaxKeys + 5000 {
		l.Take(fmt.Sprintf("key-%d", i), now)
	}
	if n := l.Len(); n > MaxKeys {
		t.Errorf("%d buckets, want at most %d", n, MaxKeys)
	}
}

// TestPeekSpendsNothing: Peek refuses exactly when Take would, and never spends.
func TestPeekSpendsNothing(t *testing.T) {
	l := New(60, time.Minute, 2)
	now := time.Unix(1_700_000_000, 0)
	for range 5 {
		if err := l.Peek("k", now); err != nil {
			t.Fatalf("peeking at a full bucket: %v", err)
		}
	}
	l.Take("k", now)
	l.Take("k", now)
	if err := l.Peek("k", now); err == nil || err.RetryAfterSeconds() != 1 {
		t.Fatalf("peeking at an empty bucket: %v, want a refusal for 1 s", err)
	}
	if err := l.Peek("k", now.Add(time.Second)); err != nil {
		t.Errorf("peeking after a second's refill: %v", err)
	}
	if err := l.Take("k", now.Add(time.Second)); err != nil {
		t.Errorf("the refilled token was spent by peeking: %v", err)
	}
}
