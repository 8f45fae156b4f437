//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/faultproxy"
)

// TestDatabaseOutage runs logins and `me` at steady load while the proxy takes the
// database away for 10 s, then gives it back: cut (every connection reset, new ones
// refused, as when the database restarts or its host drops off the network) and stall
// (connections accepted, nothing answered, as when a network path or a frozen
// database swallows packets). During the outage every request must answer in bounded
// time with a GraphQL error whose code says the service is unavailable; after it the
// service must recover by itself within 5 s; every token answered before, during or
// after must still work; no user may be duplicated; /readyz must follow the outage.
//
// A slow database (every chunk of the protocol held 200 ms each way, for 10 s) is
// checked the same way, except that it need not fail anything.
func TestDatabaseOutage(t *testing.T) {
	for _, f := range []dbFault{
		{"cut", "every database connection reset; new ones reset at once", (*faultproxy.Proxy).Cut, true},
		{"stall", "database connections accepted, nothing forwarded either way", (*faultproxy.Proxy).Stall, true},
		{"slow", "every chunk between server and database held 200 ms, each way", func(p *faultproxy.Proxy) { p.Delay(200 * time.Millisecond) }, false},
	} {
		t.Run(f.name, func(t *testing.T) { outage(t, f) })
	}
}

// dbFault is what the proxy does to the database for 10 s.
type dbFault struct {
	name, what string
	apply      func(*faultproxy.Proxy)
	// down: the database is away, and some requests must say so with UNAVAILABLE.
	down bool
}

const (
	outageWorkers = 16
	outageBefore  = 8 * time.Second
	outageFor     = 10 * time.Second
	outageAfter   = 15 * time.Second
	// recoveryBound is the issue's demand: working again within 5 s of the database
	// coming back.
	recoveryBound = 5 * time.Second
)

func outage(t *testing.T, f dbFault) {
	name := f.name
	s := newStack(t)
	srv := s.start("a")
	c := newClient(srv.base, outageWorkers+4)
	defer c.close()
	fig := newFigures(t, "outage-"+name, "Database outage under load: "+name)

	// The load: each worker logs a user in (each user three times, so that first logins
	// and logins again both run), then asks `me` three times with the token.
	tl := newTally(true)
	toks := &tokens{}
	var attempted sync.Map // openids a login was tried for
	ctx, stopLoad := context.WithCancel(context.Background())
	wait := run(ctx, outageWorkers, func(ctx context.Context, w int) {
		for i := 0; ctx.Err() == nil; i++ {
			u := user(fmt.Sprintf("%s-w%d-u%d", name, w, i/3))
			attempted.Store(u.OpenID, true)
			start := time.Now()
			token, openid, a := c.login(context.Background(), s.fake.IssueCode(u))
			tl.add("login", start, a)
			if token == "" {
				pause(ctx, 50*time.Millisecond) // a client backs off a little after an error
				continue
			}
			toks.add(token, openid, "a")
			for range 3 {
				start := time.Now()
				got, a := c.me(context.Background(), token)
				if a.ok() && got != openid {
					a.Code = "(me answered another user)"
				}
				tl.add("me", start, a)
				if !a.ok() {
					pause(ctx, 50*time.Millisecond)
				}
			}
		}
	})

	// /readyz, polled as a load balancer would.
	type probe struct {
		at     time.Time
		status int
	}
	var probes []probe
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		rc := newClient(srv.base, 1)
		defer rc.close()
		for ctx.Err() == nil {
			probes = append(probes, probe{time.Now(), rc.ready()})
			pause(ctx, 200*time.Millisecond)
		}
	}()

	watch := srv.watch(500 * time.Millisecond)
	pause(ctx, outageBefore)
	before := srv.health()
	cutAt := time.Now()
	f.apply(s.proxy)
	pause(ctx, outageFor)
	restoredAt := time.Now()
	s.proxy.Restore()
	pause(ctx, outageAfter)
	stopLoad()
	wait()
	<-readyDone
	peak := watch.stop()
	c.close()
	after := srv.settle(before, 10*time.Second)

	// Phases, by when each request started.
	events := tl.snapshot()
	phase := func(e event) string {
		switch {
		case e.Start.Before(cutAt) && e.End.Before(cutAt):
			return "before"
		case e.Start.Before(restoredAt):
			return "during"
		default:
			return "after"
		}
	}
	counts := map[string]map[string]int{"before": {}, "during": {}, "after": {}}
	var slowest time.Duration
	var lastFailAfter, firstOKAfter time.Time
	for _, e := range events {
		ph := phase(e)
		counts[ph][e.Op+" "+e.Kind]++
		slowest = max(slowest, e.End.Sub(e.Start))
		if ph == "after" {
			if e.Kind != "ok" && e.End.After(lastFailAfter) {
				lastFailAfter = e.End
			}
			if e.Kind == "ok" && (firstOKAfter.IsZero() || e.End.Before(firstOKAfter)) {
				firstOKAfter = e.End
			}
		}
	}
	recovery := firstOKAfter.Sub(restoredAt)
	if !lastFailAfter.IsZero() {
		recovery = max(recovery, lastFailAfter.Sub(restoredAt))
	}
	var notReadyAt, readyAgainAt time.Time
	for _, p := range probes {
		if p.at.After(cutAt) && p.at.Before(restoredAt) && p.status != 200 && notReadyAt.IsZero() {
			notReadyAt = p.at
		}
		if p.at.After(restoredAt) && p.status == 200 && readyAgainAt.IsZero() {
			readyAgainAt = p.at
		}
	}

	// The promises.
	for _, e := range events {
		if took := e.End.Sub(e.Start); took > requestDeadline+answerSlack {
			t.Errorf("a %s started %s into the outage answered after %s, past the %s request deadline", e.Op, e.Start.Sub(cutAt).Round(time.Millisecond), took.Round(time.Millisecond), requestDeadline)
			break
		}
	}
	for ph, m := range counts {
		for k, n := range m {
			_, kind, _ := strings.Cut(k, " ")
			switch {
			case kind == "ok":
			case ph == "during" && kind == "UNAVAILABLE":
			case ph == "after" && kind == "UNAVAILABLE":
				// counted in the recovery time
			default:
				t.Errorf("%s the outage: %d × %q; want only successes, or UNAVAILABLE while the database is away", ph, n, k)
			}
		}
	}
	if f.down && counts["during"]["login UNAVAILABLE"]+counts["during"]["me UNAVAILABLE"] == 0 {
		t.Errorf("no request answered UNAVAILABLE during the outage: %v", counts["during"])
	}
	if firstOKAfter.IsZero() || recovery > recoveryBound {
		t.Errorf("recovery took %s after the database came back (first success %s, last failure %s), want within %s",
			recovery.Round(time.Millisecond), firstOKAfter.Sub(restoredAt).Round(time.Millisecond), lastFailAfter.Sub(restoredAt).Round(time.Millisecond), recoveryBound)
	}
	if f.down && notReadyAt.IsZero() {
		t.Error("/readyz never failed while the database was away")
	}
	if readyAgainAt.IsZero() || readyAgainAt.Sub(restoredAt) > recoveryBound {
		t.Errorf("/readyz answered 200 again %s after the database came back, want within %s", readyAgainAt.Sub(restoredAt).Round(time.Millisecond), recoveryBound)
	}
	verified, lost := verifyTokens(t, newClient(srv.base, 8), toks.all())
	users := s.consistency()
	var tried int
	attempted.Range(func(any, any) bool { tried++; return true })
	loggedIn := map[string]bool{}
	for _, it := range toks.all() {
		loggedIn[it.openid] = true
	}
	if users < len(loggedIn) || users > tried {
		t.Errorf("%d users in the database; want between %d (who got a token) and %d (who tried)", users, len(loggedIn), tried)
	}
	if after.grewFrom(before) {
		t.Errorf("goroutines grew: after the load %s; before the outage %s", after, before)
	}

	total, errs := tl.total()
	fig.add("- load: %d workers, each: login (a user logs in three times), then `me` three times with the token; %s steady, %s of fault, %s after", outageWorkers, outageBefore, outageFor, outageAfter)
	fig.add("- fault: %s", f.what)
	fig.add("- requests: %d, of which %d errors; slowest answer %s (request deadline %s)", total, errs, ms(slowest), requestDeadline)
	for _, ph := range []string{"before", "during", "after"} {
		fig.add("- %s: %s", ph, countsString(counts[ph]))
	}
	fig.add("- recovery: %s after the database came back (first success after %s)", ms(recovery), ms(firstOKAfter.Sub(restoredAt)))
	if notReadyAt.IsZero() {
		fig.add("- /readyz: 200 throughout")
	} else {
		fig.add("- /readyz: 503 from %s after the fault began, 200 again %s after it ended", ms(notReadyAt.Sub(cutAt)), ms(readyAgainAt.Sub(restoredAt)))
	}
	fig.add("- tokens answered: %d, of which %d no longer resolve with `me` afterwards; users: %d (%d openids got a token, %d were tried)", verified, lost, users, len(loggedIn), tried)
	fig.add("- server: before the fault %s; peak %s; after %s", before, peak, after)
	fig.add("- proxy: %+v", s.proxy.Stats())
	fig.add("- server warnings and errors logged: %s", srv.log.warnings())
}
