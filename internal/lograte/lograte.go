// Package lograte keeps a log line that recurs with every request to at most one per
// interval: when the database refuses connections, every request fails the same way,
// and one line a request (thousands a second) would bury everything else in the log.
// The line that is written says how many it stands for.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets one occurrence of a line through per interval.
type Limiter struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	next time.Time // when the next occurrence may be written
	held int       // occurrences held back since the last one written
}

// New returns a Limiter that lets one occurrence through per interval, timed by now
// (nil: time.Now).
func New(interval time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{interval: interval, now: now}
}

// Allow reports whether this occurrence is to be written and, when it is, how many
// were held back since the last one that was.
func (l *Limiter) Allow() (ok bool, held int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return false, 0
	}
	held, l.held = l.held, 0
	l.next = now.Add(l.interval)
	return true, held
}
