package accesstoken_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/accesstoken"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// requestBudget is what a request gives the token manager: a manager that went round
// instead of failing would end on it.
const requestBudget = 5 * time.Second

// check is a call that needs the access token: checksession for a user WeChat does not
// know, which answers 87009 when the token works.
func (f *fixture) check(m *accesstoken.Manager) (used []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestBudget)
	defer cancel()
	err = m.Do(ctx, func(tok string) error {
		used = append(used, tok)
		return f.client.CheckSessionKey(ctx, tok, "o-nobody", "AAAAAAAAAAAAAAAAAAAAAA==")
	})
	return used, err
}

// wantRejected: the call failed with the clear error, not by running out of time.
func wantRejected(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, accesstoken.ErrRejected) || !errors.Is(err, wechat.ErrAccessToken) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: %v; want ErrRejected at once", what, err)
	}
}

// TestTokenRejectedEverywhere: WeChat rejects every use of the token (40001). Each call
// fails with ErrRejected; the fleet of two instances forces at most one refresh per
// 30 s and makes a few stable_token calls, however many calls come.
func TestTokenRejectedEverywhere(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		fleet := []*accesstoken.Manager{f.instance(), f.instance()}
		if _, err := fleet[0].Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.fake.RejectAccessTokens(40001, -1)
		for round := 1; round <= 2; round++ {
			calls := f.fake.CallsTo("stable_token")
			for i := range 20 {
				_, err := f.check(fleet[i%2])
				wantRejected(t, "a call while WeChat rejects every token", err)
			}
			if n := f.fake.ForceRefreshCalls(); n > round {
				t.Errorf("%d forced refreshes in %d windows of 30 s, want at most one per window", n, round)
			}
			// Per instance: the normal call that hands the token back, and the forced one.
			if n := f.fake.CallsTo("stable_token") - calls; n > 2*len(fleet) {
				t.Errorf("%d stable_token calls for 20 rejected calls on %d instances, want %d at most", n, len(fleet), 2*len(fleet))
			}
			f.clock.Advance(31 * time.Second)
		}
		if !strings.Contains(f.logs.String(), "WeChat keeps rejecting the access token") {
			t.Error("no log line says WeChat keeps rejecting the token")
		}
	})
}

// TestForcedRefreshTooSoonDoesNotLoop: another server forced a refresh moments ago, so
// WeChat hands the rejected token back even to a forced refresh. The call fails with
// ErrRejected after one forced refresh; later calls, and another instance, do not
// force again within 30 s.
func TestForcedRefreshTooSoonDoesNotLoop(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		if _, err := f.client.StableToken(context.Background(), true); err != nil { // another server
			t.Fatal(err)
		}
		a, other := f.instance(), f.instance()
		tok, err := a.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.fake.RejectAccessTokens(40001, -1)
		used, err := f.check(a)
		wantRejected(t, "forced refresh within 30 s of another", err)
		if len(used) != 1 || used[0] != tok {
			t.Errorf("fn called %d times, want once: the forced refresh gave the same token back", len(used))
		}
		if n := f.fake.ForceRefreshCalls(); n != 2 {
			t.Errorf("ForceRefreshCalls() = %d, want 2: the other server's and one by the manager", n)
		}
		calls := f.fake.CallsTo("stable_token")
		_, err = f.check(a)
		wantRejected(t, "the same instance again", err)
		if n := f.fake.CallsTo("stable_token"); n != calls {
			t.Errorf("%d more stable_token calls from an instance that knows the token is rejected, want none", n-calls)
		}
		_, err = f.check(other)
		wantRejected(t, "another instance", err)
		if n := f.fake.ForceRefreshCalls(); n != 2 {
			t.Errorf("ForceRefreshCalls() = %d after another instance's call, want still 2: the fleet forced moments ago", n)
		}
		if n := f.fake.CallsTo("stable_token"); n > calls+1 {
			t.Errorf("another instance made %d stable_token calls, want 1", n-calls)
		}
		if logs := f.logs.String(); strings.Contains(logs, tok) || strings.Contains(logs, secret) {
			t.Error("the log holds the token or the secret")
		}
	})
}

// TestRefreshInTheOverlap: ahead of expiry the manager gets the next token, which
// WeChat hands out in the current one's last 5 minutes while the old one still works.
func TestRefreshInTheOverlap(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		first, _ := m.Token(context.Background())
		f.clock.Advance(2*time.Hour - 3*time.Minute)
		if got, err := m.Token(context.Background()); err != nil || got != first {
			t.Fatalf("3 minutes before expiry: %q, %v; want the still-working token at once", got, err)
		}
		// The refresh is done once the manager hands out its token: WeChat having
		// answered is not enough, the answer is stored after.
		var next string
		waitFor(t, "the refresh ahead of expiry", func() bool {
			tok, err := m.Token(context.Background())
			next = tok
			return err == nil && tok != first
		})
		for name, tok := range map[string]string{"the old token": first, "the next token": next} {
			if err := f.client.CheckSessionKey(context.Background(), tok, "o-nobody", "AAAAAAAAAAAAAAAAAAAAAA=="); errors.Is(err, wechat.ErrAccessToken) {
				t.Errorf("%s in the overlap: %v, want it working", name, err)
			}
		}
		f.clock.Advance(3 * time.Minute)
		used, err := f.check(m)
		if errors.Is(err, wechat.ErrAccessToken) || len(used) != 1 || used[0] != next {
			t.Errorf("past the old token's end: %v with %d tokens used, want the next token at once", err, len(used))
		}
		if n := f.fake.CallsTo("stable_token"); n != 2 {
			t.Errorf("stable_token calls = %d, want 2", n)
		}
		if n := f.fake.ForceRefreshCalls(); n != 0 {
			t.Errorf("ForceRefreshCalls() = %d, want 0", n)
		}
	})
}

// TestForcedRefreshPastDailyCap: WeChat's 20 forced refreshes of the day are spent
// (45009 past them). A rejected token is reported as such, with an error log line
// that says the cap is used up.
func TestForcedRefreshPastDailyCap(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		for range 20 { // another server spends the day's forced refreshes
			if _, err := f.client.StableToken(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(31 * time.Second)
		}
		m := f.instance()
		f.fake.RejectAccessTokens(40001, -1)
		_, err := f.check(m)
		wantRejected(t, "past the daily cap", err)
		if !errors.Is(err, wechat.ErrDailyQuota) {
			t.Errorf("past the daily cap: %v, want it to say WeChat's daily quota", err)
		}
		if !strings.Contains(f.logs.String(), "daily cap of forced refreshes (20) is used up") {
			t.Error("no log line says the daily cap of forced refreshes is used up")
		}
		if n := f.fake.ForceRefreshCalls(); n != 21 {
			t.Errorf("ForceRefreshCalls() = %d, want 21: one by the manager", n)
		}
		_, err = f.check(m)
		wantRejected(t, "again past the daily cap", err)
		if n := f.fake.ForceRefreshCalls(); n != 21 {
			t.Errorf("ForceRefreshCalls() = %d after a second call, want still 21", n)
		}
	})
}

// TestMalformedTokenIsReplaced: 40014 is a rejected token like 40001: replaced once,
// and the call retried once with the new one.
func TestMalformedTokenIsReplaced(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		old, _ := m.Token(context.Background())
		f.fake.RejectAccessTokens(40014, 1)
		used, err := f.check(m)
		if errors.Is(err, wechat.ErrAccessToken) || len(used) != 2 || used[0] != old || used[1] == old {
			t.Errorf("after 40014: %v, %d tokens used (the old one first: %v); want the call through with a new token", err, len(used), len(used) > 0 && used[0] == old)
		}
		if n := f.fake.ForceRefreshCalls(); n != 1 {
			t.Errorf("ForceRefreshCalls() = %d, want 1: WeChat handed the rejected token back", n)
		}
	})
}

// TestIPNotAllowed: 40164 from stable_token is a configuration error, returned as it is:
// no retry, no forced refresh, neither the secret nor a token in the log.
func TestIPNotAllowed(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		f.fake.SetIPAllowList("203.0.113.7")
		for i := 1; i <= 2; i++ {
			used, err := f.check(m)
			if !errors.Is(err, wechat.ErrIPNotAllowed) || errors.Is(err, wechat.ErrAccessToken) || len(used) != 0 {
				t.Fatalf("call %d: %v; want ErrIPNotAllowed before any call needing the token", i, err)
			}
			if n := f.fake.CallsTo("stable_token"); n != i {
				t.Errorf("stable_token calls = %d after %d calls, want %d", n, i, i)
			}
		}
		if n := f.fake.ForceRefreshCalls(); n != 0 {
			t.Errorf("ForceRefreshCalls() = %d, want 0", n)
		}
		if strings.Contains(f.logs.String(), secret) {
			t.Error("the log holds the secret")
		}
		f.fake.SetIPAllowList()
		if _, err := f.check(m); errors.Is(err, wechat.ErrIPNotAllowed) {
			t.Errorf("once the address is allowed: %v", err)
		}
	})
}
