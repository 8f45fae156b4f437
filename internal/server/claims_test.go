package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestRefusedCodeAnswersEveryWaiterWithOneWeChatCall: many requests with one code that
// WeChat refuses, spread over two instances, all get WeChat's answer, and WeChat is
// asked once.
func TestRefusedCodeAnswersEveryWaiterWithOneWeChatCall(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		for _, tc := range []struct {
			name  string
			fault fakewechat.Fault
			code  string
			want  string
		}{
			{name: "invalid code", code: "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5Q", want: "INVALID_CODE"},
			{name: "rate limited", fault: fakewechat.FaultRateLimit, want: "RATE_LIMITED"},
			{name: "risky user", fault: fakewechat.FaultRiskyUser, want: "FORBIDDEN"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, b)
				e.addInstance()
				code := tc.code
				if code == "" {
					code = e.fake.IssueCode(alice)
				}
				e.fake.InjectFault(tc.fault, -1)
				got := make([]string, 12)
				var wg sync.WaitGroup
				for i := range got {
					wg.Go(func() { _, got[i] = e.login(i%2, code) })
				}
				wg.Wait()
				for i, c := range got {
					if c != tc.want {
						t.Errorf("login %d: %q, want %s", i, c, tc.want)
					}
				}
				if n := e.fake.Calls(); n != 1 {
					t.Errorf("WeChat calls = %d, want 1", n)
				}
				// A retry moments later gets the same answer, still without WeChat.
				if _, c := e.login(1, code); c != tc.want || e.fake.Calls() != 1 {
					t.Errorf("retry: %q with %d WeChat calls, want %s with 1", c, e.fake.Calls(), tc.want)
				}
				e.assertNothingLeft("refused logins")
			})
		}
	})
}

// TestClaimOfADeadInstanceIsTakenOver: an instance that died while exchanging a code
// leaves a pending claim; once its lease has run out, a retry goes through.
func TestClaimOfADeadInstanceIsTakenOver(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		code := e.fake.IssueCode(alice)
		claimElsewhere(e, code, -time.Second)
		if _, c := e.login(0, code); c != "" {
			t.Errorf("login over a dead claim: %q, want success", c)
		}
		if n := e.fake.Calls(); n != 1 {
			t.Errorf("WeChat calls = %d, want 1", n)
		}
	})
}

// TestLiveClaimElsewhereIsWaitedForWithinTheBound: while another instance holds a code
// and does not finish, a request with the same code waits no longer than its login
// timeout, answers WECHAT_UNAVAILABLE, and leaves the other's claim alone.
func TestLiveClaimElsewhereIsWaitedForWithinTheBound(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.loginTimeout = 300 * time.Millisecond })
		code := e.fake.IssueCode(alice)
		claimElsewhere(e, code, 15*time.Second)
		if _, c := e.login(0, code); c != "WECHAT_UNAVAILABLE" {
			t.Errorf("login while another instance holds the code: %q, want WECHAT_UNAVAILABLE", c)
		}
		if n := e.fake.Calls(); n != 0 {
			t.Errorf("WeChat calls = %d, want 0: the other instance is asking", n)
		}
		if n := e.count()["login_codes"]; n != 1 {
			t.Errorf("%d code rows, want the other instance's claim kept", n)
		}
	})
}

// TestSpentCodesArePurged: a code's record lasts its 5-minute window, then goes.
func TestSpentCodesArePurged(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.mustLogin(0, e.fake.IssueCode(alice))
		ctx := context.Background()
		if p, _ := e.services[0].Purge(ctx); p.Codes != 0 {
			t.Errorf("purge within the window removed %d code rows", p.Codes)
		}
		e.clock.Advance(5*time.Minute + time.Second)
		if p, err := e.services[0].Purge(ctx); p.Codes != 1 || err != nil {
			t.Errorf("purge after the window = %+v, %v; want 1 code row", p, err)
		}
		if got := e.count(); got["login_codes"] != 0 || got["users"] != 1 || got["sessions"] != 1 {
			t.Errorf("rows after purge = %v; want the code gone and the user and session kept", got)
		}
	})
}

// claimElsewhere records a code as being exchanged by another instance whose lease
// on it ends after lease (negative: it has already run out, the instance died).
func claimElsewhere(e *env, code string, lease time.Duration) {
	e.t.Helper()
	now := e.clock.Now().UTC()
	e.db.LoginCode.Create().
		SetCodeHash(auth.CodeHash(testAppID, code)).
		SetState(logincode.StatePending).
		SetLeaseUntil(now.Add(lease)).
		SetExpiresAt(now.Add(5 * time.Minute)).
		ExecX(context.Background())
}
