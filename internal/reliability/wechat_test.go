//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestWeChatFaults puts each of the fake WeChat's faults on every code2Session call
// while 16 clients log in at once, each with a fresh code. Every login must answer
// within the contract's 10 s with the code the fault calls for; WeChat must be asked
// at most as often as the retry policy allows (3 attempts, and only busy and
// timeouts are retried); a failed login must leave no user, identity, session or
// pending claim behind; and the server's goroutines must come back down afterwards.
func TestWeChatFaults(t *testing.T) {
	const workers = 16
	s := newStack(t)
	srv := s.start("a")
	c := newClient(srv.base, workers)
	defer c.close()
	fig := newFigures(t, "wechat-faults", "WeChat misbehaving under load")

	// logins runs n logins, workers at a time, each with a fresh code of its own user.
	logins := func(n int, prefix string) []answer {
		out := make([]answer, n)
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					_, _, out[i] = c.login(context.Background(), s.fake.IssueCode(user(fmt.Sprintf("%s-%d", prefix, i))))
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		return out
	}
	rows := func() [4]int {
		return [4]int{
			s.count(`SELECT COUNT(*) FROM users`),
			s.count(`SELECT COUNT(*) FROM identities`),
			s.count(`SELECT COUNT(*) FROM sessions`),
			s.count(`SELECT COUNT(*) FROM login_codes WHERE state = 'pending'`),
		}
	}

	// Warm up at the same concurrency, so that the WeChat client's connections are at
	// their working size before the baseline is taken. The database pool may stay
	// smaller (first logins that arrive together share a transaction); grewFrom does not
	// count its connections' goroutines.
	for _, a := range logins(64, "warm") {
		if !a.ok() {
			t.Fatalf("a login with a healthy WeChat: %s", a.kind())
		}
	}
	c.close()
	time.Sleep(3 * time.Second) // idle connections to and from the server close
	baseline := srv.health()
	fig.add("- load: %d clients logging in at once, each login with a fresh code of its own user; the fault on every code2Session call", workers)
	fig.add("- baseline after 64 healthy logins: %s", baseline)
	fig.add("")
	fig.add("| fault | logins | answers | slowest | WeChat calls | rows added (users, identities, sessions), pending claims | goroutines after (peak) |")
	fig.add("|---|---|---|---|---|---|---|")

	for _, f := range []struct {
		fault    fakewechat.Fault
		n        int
		want     string // the kind every login must get
		maxCalls int    // per login
		newUsers bool   // the logins succeed and make their users
	}{
		{fakewechat.FaultBusy, 48, "WECHAT_UNAVAILABLE", 3, false},
		{fakewechat.FaultRateLimit, 64, "RATE_LIMITED", 1, false},
		{fakewechat.FaultRiskyUser, 64, "FORBIDDEN", 1, false},
		{fakewechat.FaultSlow, 32, "ok", 1, true},
		{fakewechat.FaultHTML502, 64, "WECHAT_UNAVAILABLE", 1, false},
		{fakewechat.FaultTruncatedJSON, 64, "WECHAT_UNAVAILABLE", 1, false},
		{fakewechat.FaultHang, 16, "WECHAT_UNAVAILABLE", 3, false},
	} {
		name := f.fault.String()
		before := rows()
		calls0 := s.fake.Calls()
		watch := srv.watch(250 * time.Millisecond)
		s.fake.InjectFault(f.fault, -1)
		answers := logins(f.n, name)
		s.fake.InjectFault(fakewechat.FaultNone, 0)
		peak := watch.stop()
		calls := s.fake.Calls() - calls0

		kinds := map[string]int{}
		var slowest time.Duration
		for _, a := range answers {
			kinds[a.kind()]++
			slowest = max(slowest, a.Took)
		}
		if kinds[f.want] != f.n {
			t.Errorf("%s: answers %s; want %d × %s", name, countsString(kinds), f.n, f.want)
		}
		if slowest > loginBound+answerSlack {
			t.Errorf("%s: the slowest login answered after %s, past the contract's %s", name, slowest.Round(time.Millisecond), loginBound)
		}
		if calls < f.n || calls > f.n*f.maxCalls {
			t.Errorf("%s: WeChat was called %d times for %d logins; want between %d and %d", name, calls, f.n, f.n, f.n*f.maxCalls)
		}
		after := rows()
		left := [4]int{after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3]}
		want := [4]int{}
		if f.newUsers {
			want = [4]int{f.n, f.n, f.n, 0}
		}
		if left != want {
			t.Errorf("%s: rows added (users, identities, sessions) and pending claims = %v, want %v", name, left, want)
		}
		c.close()
		settled := srv.settle(baseline, 15*time.Second)
		if settled.grewFrom(baseline) {
			t.Errorf("%s: 15 s after the logins %s; before the faults %s", name, settled, baseline)
		}
		// And a healthy login works straight after.
		if _, _, a := c.login(context.Background(), s.fake.IssueCode(user(name+"-after"))); !a.ok() {
			t.Errorf("%s: a login once the fault was cleared: %s", name, a.kind())
		}
		fig.add("| %s | %d | %s | %s | %d (%.2f per login) | %v | %d (peak %d) |",
			name, f.n, countsString(kinds), ms(slowest), calls, float64(calls)/float64(f.n), left, settled.Goroutines, peak.Goroutines)
	}
	s.consistency()
	c.close()
	end := srv.settle(baseline, 15*time.Second)
	fig.add("")
	fig.add("- server at the end: %s (baseline %s)", end, baseline)
	fig.add("- server warnings and errors logged: %s", srv.log.warnings())
}
