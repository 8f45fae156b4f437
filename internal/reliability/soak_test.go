//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestSoak runs mixed load (login, `me`, sessions, logout) for SOAK (a Go duration;
// `make soak` sets 30m) and samples the server's resident memory, goroutines, open
// files and database connections every minute (every tenth of SOAK when it is under
// 10 minutes). Every request must succeed, and each figure must stay flat: the second
// half of the run may not climb past the first half's peak by more than noise.
func TestSoak(t *testing.T) {
	raw := os.Getenv("SOAK")
	if raw == "" {
		t.Skip("the soak runs with SOAK set to a duration: make soak (30m), or SOAK=3m make soak")
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < time.Minute {
		t.Fatalf("SOAK=%q: want a Go duration of at least 1m, such as 30m", raw)
	}
	every := time.Minute
	if d < 10*time.Minute {
		every = d / 10
	}
	const workers, users = 16, 400

	s := newStack(t)
	srv := s.start("a")
	c := newClient(srv.base, workers)
	defer c.close()
	fig := newFigures(t, "soak", fmt.Sprintf("Soak: %s of mixed load", d))

	tl := newTally(false)
	ctx, stop := context.WithCancel(context.Background())
	wait := run(ctx, workers, func(ctx context.Context, w int) {
		for i := 0; ctx.Err() == nil; i++ {
			u := user(fmt.Sprintf("soak-%d", (w*7919+i)%users))
			start := time.Now()
			token, openid, a := c.login(context.Background(), s.fake.IssueCode(u))
			tl.add("login", start, a)
			if token == "" {
				pause(ctx, time.Second)
				continue
			}
			for range 3 {
				start = time.Now()
				got, a := c.me(context.Background(), token)
				if a.ok() && got != openid {
					a.Code = "(me answered another user)"
				}
				tl.add("me", start, a)
			}
			start = time.Now()
			tl.add("sessions", start, c.post(context.Background(), sessionsDoc, nil, token))
			start = time.Now()
			tl.add("logout", start, c.post(context.Background(), logoutDoc, nil, token))
		}
	})

	type sample struct {
		at       time.Duration
		requests int
		errors   int
		h        health
		sessions int // rows in the sessions table: housekeeping keeps it down
	}
	var samples []sample
	began := time.Now()
	take := func() {
		n, errs := tl.total()
		samples = append(samples, sample{time.Since(began), n, errs, srv.health(), s.count(`SELECT COUNT(*) FROM sessions`)})
	}
	fig.add("- load: %d workers, each: login (one of %d users, a fresh code), `me` three times, `sessions`, `logout`; sampled every %s", workers, users, every)
	fig.add("")
	fig.add("| time | requests | per second | errors | goroutines | DB connections | RSS MB | open files | session rows |")
	fig.add("|---|---|---|---|---|---|---|---|---|")
	for time.Since(began) < d {
		pause(ctx, min(every, d-time.Since(began)))
		take()
		cur := samples[len(samples)-1]
		prev := sample{}
		if len(samples) > 1 {
			prev = samples[len(samples)-2]
		}
		rate := float64(cur.requests-prev.requests) / (cur.at - prev.at).Seconds()
		fig.add("| %s | %d | %.0f | %d | %d | %d | %.1f | %d | %d |", cur.at.Round(time.Second), cur.requests, rate, cur.errors, cur.h.Goroutines, cur.h.SQLOpen, cur.h.RSSMB, cur.h.OpenFiles, cur.sessions)
	}
	stop()
	wait()

	total, errs := tl.total()
	if errs != 0 {
		t.Errorf("%d of %d requests failed: %s", errs, total, tl.byKind())
	}
	// Flat: the second half's peak against the first half's. The first sample is left
	// out: pools and caches are still filling.
	fig.add("")
	if len(samples) >= 4 {
		half := 1 + (len(samples)-1)/2
		peak := func(from, to int, f func(sample) float64) float64 {
			m := 0.0
			for _, s := range samples[from:to] {
				m = max(m, f(s))
			}
			return m
		}
		for _, fl := range []struct {
			what  string
			f     func(sample) float64
			slack func(first float64) float64
		}{
			{"goroutines", func(s sample) float64 { return float64(s.h.Goroutines) }, func(float64) float64 { return 20 }},
			{"open files", func(s sample) float64 { return float64(s.h.OpenFiles) }, func(float64) float64 { return 20 }},
			{"database connections", func(s sample) float64 { return float64(s.h.SQLOpen) }, func(float64) float64 { return 4 }},
			{"RSS (MB)", func(s sample) float64 { return s.h.RSSMB }, func(first float64) float64 { return first/4 + 8 }},
		} {
			first, second := peak(1, half, fl.f), peak(half, len(samples), fl.f)
			if second > first+fl.slack(first) {
				t.Errorf("%s climbed: peak %.1f in the first half of the run, %.1f in the second", fl.what, first, second)
			}
			fig.add("- %s: first-half peak %.1f, second-half peak %.1f", fl.what, first, second)
		}
	}
	fig.add("")
	fig.add("- requests: %d (%.0f per second), errors: %d; by kind: %s", total, float64(total)/time.Since(began).Seconds(), errs, tl.byKind())
	fig.add("- slowest: login %s, me %s, sessions %s, logout %s", ms(tl.slowestOf("login")), ms(tl.slowestOf("me")), ms(tl.slowestOf("sessions")), ms(tl.slowestOf("logout")))
	fig.add("- server warnings and errors logged: %s", srv.log.warnings())
	s.consistency()
}
