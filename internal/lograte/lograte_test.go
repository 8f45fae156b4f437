package lograte_test

import (
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/lograte"
)

// TestOnePerInterval: the first occurrence is written, the ones within the interval
// after it are held back, and the first one past it is written with their count.
func TestOnePerInterval(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := lograte.New(10*time.Second, func() time.Time { return now })
	type step struct {
		after time.Duration // since the previous step
		ok    bool
		held  int
	}
	for i, s := range []step{
		{0, true, 0},
		{time.Second, false, 0},
		{5 * time.Second, false, 0},
		{3999 * time.Millisecond, false, 0},
		{time.Millisecond, true, 3}, // 10 s after the first
		{10 * time.Second, true, 0},
		{time.Hour, true, 0},
	} {
		now = now.Add(s.after)
		if ok, held := l.Allow(); ok != s.ok || held != s.held {
			t.Errorf("step %d: Allow() = %v, %d; want %v, %d", i, ok, held, s.ok, s.held)
		}
	}
}
