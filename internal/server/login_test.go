package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

var alice = fakewechat.User{OpenID: "oAlice0000000000000000000001", UnionID: "uAlice000000000000000000001"}

func TestLoginMeLogout(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		before := e.clock.Now()
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if !p.IsNewUser || p.User.Openid != alice.OpenID || strOrNil(p.User.Unionid) != alice.UnionID {
			t.Errorf("first login = %+v, want a new user with alice's openid and unionid", p)
		}
		if len(p.Token) != 43 {
			t.Errorf("token %d characters, want 43 (32 random bytes, base64url)", len(p.Token))
		}
		if want := before.Add(7 * 24 * time.Hour); p.ExpiresAt.Before(want.Add(-time.Minute)) || p.ExpiresAt.After(want.Add(time.Minute)) {
			t.Errorf("expiresAt = %v, want about %v (the 7-day idle timeout, sooner than the 30-day lifetime)", p.ExpiresAt, want)
		}

		me, code := e.me(0, p.Token)
		if code != "" || me.ID != p.User.ID || me.Openid != alice.OpenID {
			t.Fatalf("me = %+v, %s; want the logged-in user %s", me, code, p.User.ID)
		}

		r := e.post(0, p.Token, `mutation { logout }`, nil)
		if r.Code() != "" || string(r.Data["logout"]) != "true" {
			t.Fatalf("logout = %s %+v", r.Data["logout"], r.Errors)
		}
		if _, code := e.me(0, p.Token); code != "UNAUTHENTICATED" {
			t.Errorf("me after logout: %q, want UNAUTHENTICATED", code)
		}
		if r := e.post(0, p.Token, `mutation { logout }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("second logout: %q, want UNAUTHENTICATED", r.Code())
		}
	})
}

func TestSecondLoginIsTheSameUser(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		first := e.mustLogin(0, e.fake.IssueCode(alice))
		e.clock.Advance(time.Hour)
		second := e.mustLogin(0, e.fake.IssueCode(alice))
		if second.IsNewUser || second.User.ID != first.User.ID {
			t.Errorf("second login: user %s new=%v; want %s, not new", second.User.ID, second.IsNewUser, first.User.ID)
		}
		if !second.User.LastLoginAt.After(first.User.LastLoginAt) || !second.User.CreatedAt.Equal(first.User.CreatedAt) {
			t.Errorf("second login: createdAt %v lastLoginAt %v; want createdAt kept and lastLoginAt moved on from %v",
				second.User.CreatedAt, second.User.LastLoginAt, first.User.LastLoginAt)
		}
		for _, tok := range []string{first.Token, second.Token} {
			if u, code := e.me(0, tok); code != "" || u.ID != first.User.ID {
				t.Errorf("me with one of the two sessions = %+v %s", u, code)
			}
		}
		// A returning login answers with the profile as it is, and its time is stored.
		if _, c := e.updateProfile(second.Token, map[string]any{"nickname": "Alice", "avatarUrl": "https://example.com/a.png"}); c != "" {
			t.Fatalf("updateProfile: %s", c)
		}
		e.clock.Advance(time.Hour)
		r := e.post(0, "", `mutation($code: String!) { login(code: $code) { isNewUser user { id nickname avatarUrl createdAt lastLoginAt } } }`,
			map[string]any{"code": e.fake.IssueCode(alice)})
		var third struct {
			IsNewUser bool
			User      struct {
				ID, Nickname, AvatarURL string
				CreatedAt, LastLoginAt  time.Time
			}
		}
		if c := r.Code(); c != "" || json.Unmarshal(r.Data["login"], &third) != nil {
			t.Fatalf("third login: %s %s", c, r.Data["login"])
		}
		if third.IsNewUser || third.User.ID != first.User.ID || third.User.Nickname != "Alice" || third.User.AvatarURL != "https://example.com/a.png" ||
			!third.User.CreatedAt.Equal(first.User.CreatedAt) || !third.User.LastLoginAt.After(second.User.LastLoginAt.Add(time.Hour)) {
			t.Errorf("third login = %+v; want the same user, not new, with its nickname and avatar, created %v, last logged in an hour after %v",
				third, first.User.CreatedAt, second.User.LastLoginAt)
		}
		if u, c := e.me(0, second.Token); c != "" || !u.LastLoginAt.Equal(third.User.LastLoginAt) {
			t.Errorf("me after the third login: lastLoginAt %v %s, want %v as stored", u.LastLoginAt, c, third.User.LastLoginAt)
		}

		bob := e.mustLogin(0, e.fake.IssueCode(fakewechat.User{OpenID: "oBob00000000000000000000001"}))
		if !bob.IsNewUser || bob.User.ID == first.User.ID || bob.User.Unionid != nil {
			t.Errorf("another person's login = %+v; want a new user without unionid", bob)
		}
		if got := e.count(); got["users"] != 2 || got["identities"] != 2 || got["sessions"] != 4 {
			t.Errorf("rows = %v, want 2 users, 2 identities, 4 sessions", got)
		}
	})
}

func TestReplayedCodeLogsInAgainWithoutWeChat(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		code := e.fake.IssueCode(alice)
		first := e.mustLogin(0, code)
		again := e.mustLogin(0, code)     // a retry after a lost response
		elsewhere := e.mustLogin(1, code) // the retry lands on another instance
		for _, p := range []loginPayload{again, elsewhere} {
			if p.User.ID != first.User.ID || p.IsNewUser != first.IsNewUser {
				t.Errorf("replay = user %s new=%v; want the first answer: %s new=%v", p.User.ID, p.IsNewUser, first.User.ID, first.IsNewUser)
			}
			if p.Token == first.Token {
				t.Error("a replay returned the first login's token: tokens must not be rebuildable")
			}
			if _, c := e.me(0, p.Token); c != "" {
				t.Errorf("me with a replay's token: %s", c)
			}
		}
		if n := e.fake.Calls(); n != 1 {
			t.Errorf("WeChat calls = %d, want 1", n)
		}

		// Past wxlogin's 5-minute window the record is gone: the code goes to WeChat,
		// which refuses it as used.
		e.clock.Advance(6 * time.Minute)
		if _, c := e.login(0, code); c != "INVALID_CODE" {
			t.Errorf("replay after 6 minutes: %q, want INVALID_CODE", c)
		}
		if n := e.fake.Calls(); n != 2 {
			t.Errorf("WeChat calls = %d, want 2 (the replay past the window asks again)", n)
		}
	})
}

func TestRacingFirstLoginsMakeOneUser(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		codes := e.codes(32, alice)
		results := make([]loginPayload, len(codes))
		errs := make([]string, len(codes))
		var wg sync.WaitGroup
		for i, c := range codes {
			wg.Go(func() { results[i], errs[i] = e.login(i%2, c) })
		}
		wg.Wait()
		newUsers, ids := 0, map[string]bool{}
		for i, p := range results {
			if errs[i] != "" {
				t.Errorf("login %d failed: %s", i, errs[i])
				continue
			}
			ids[p.User.ID] = true
			if p.IsNewUser {
				newUsers++
			}
		}
		if len(ids) != 1 || newUsers != 1 {
			t.Errorf("32 racing first logins gave %d users and %d isNewUser answers, want 1 and 1", len(ids), newUsers)
		}
		if got := e.count(); got["users"] != 1 || got["identities"] != 1 || got["sessions"] != 32 {
			t.Errorf("rows = %v, want 1 user, 1 identity, 32 sessions", got)
		}
	})
}

func TestSimultaneousLoginsWithOneCodeCallWeChatOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		for _, instances := range []int{1, 2} {
			t.Run(fmt.Sprintf("%d instances", instances), func(t *testing.T) {
				e := newEnv(t, b)
				for range instances - 1 {
					e.addInstance()
				}
				code := e.fake.IssueCode(alice)
				results := make([]loginPayload, 16)
				errs := make([]string, 16)
				var wg sync.WaitGroup
				for i := range results {
					wg.Go(func() { results[i], errs[i] = e.login(i%instances, code) })
				}
				wg.Wait()
				// The code logs in MaxLoginsPerCode times, all as the same new user; the
				// other requests are told it is used.
				tokens, users := map[string]bool{}, map[string]bool{}
				for i, p := range results {
					switch errs[i] {
					case "":
						tokens[p.Token] = true
						users[p.User.ID] = true
						if !p.IsNewUser {
							t.Errorf("login %d: isNewUser false; every login with the code that created the user says true", i)
						}
					case "INVALID_CODE":
					default:
						t.Errorf("login %d failed: %s, want a login or INVALID_CODE", i, errs[i])
					}
				}
				if len(tokens) != auth.MaxLoginsPerCode || len(users) != 1 {
					t.Errorf("%d distinct tokens for %d users, want %d for 1", len(tokens), len(users), auth.MaxLoginsPerCode)
				}
				if n := e.fake.Calls(); n != 1 {
					t.Errorf("WeChat calls = %d, want 1", n)
				}
				if got := e.count(); got["users"] != 1 || got["sessions"] != auth.MaxLoginsPerCode {
					t.Errorf("rows = %v, want 1 user and %d sessions", got, auth.MaxLoginsPerCode)
				}
			})
		}
	})
}

// A spent code is a retry, not a credential: someone who saw a person's code gets at
// most the logins a double tap and a retry need, on any instance, and the person's own
// session is untouched.
func TestReplayedCodeIsBounded(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		code := e.fake.IssueCode(alice)
		victim, errCode := e.login(0, code)
		if errCode != "" {
			t.Fatalf("first login: %s", errCode)
		}
		for i := 2; i <= 10; i++ {
			p, errCode := e.login(i%2, code)
			switch {
			case i <= auth.MaxLoginsPerCode && (errCode != "" || p.User.ID != victim.User.ID || p.Token == victim.Token):
				t.Errorf("login %d with the code (a retry): %q, user %s; want a new session of %s", i, errCode, p.User.ID, victim.User.ID)
			case i > auth.MaxLoginsPerCode && errCode != "INVALID_CODE":
				t.Errorf("login %d with the code: %q, want INVALID_CODE", i, errCode)
			}
		}
		if got := e.count(); got["sessions"] != auth.MaxLoginsPerCode {
			t.Errorf("%d sessions, want %d", got["sessions"], auth.MaxLoginsPerCode)
		}
		if n := e.fake.Calls(); n != 1 {
			t.Errorf("WeChat calls = %d, want 1", n)
		}
		if r := e.post(0, victim.Token, `{ me { id } }`, nil); r.Code() != "" {
			t.Errorf("the first login's session after the replays: %v, want it working", r.Errors)
		}
	})
}

func TestWeChatFaultsGiveTheirCodeAndLeaveNothing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		cases := []struct {
			name  string
			fault fakewechat.Fault
			// code makes the code to log in with; default: a fresh valid one.
			code      func(e *env) string
			want      string
			wantCalls int    // 0: do not check
			says      string // what the message says, when it is WeChat's trouble
		}{
			{name: "busy after retries", fault: fakewechat.FaultBusy, want: "WECHAT_UNAVAILABLE", wantCalls: 3, says: "WeChat is busy just now"},
			{name: "rate limited", fault: fakewechat.FaultRateLimit, want: "RATE_LIMITED", wantCalls: 1},
			{name: "risky user", fault: fakewechat.FaultRiskyUser, want: "FORBIDDEN", wantCalls: 1},
			{name: "html 502", fault: fakewechat.FaultHTML502, want: "WECHAT_UNAVAILABLE", wantCalls: 1, says: "could not be reached or answered with an error"},
			{name: "truncated json", fault: fakewechat.FaultTruncatedJSON, want: "WECHAT_UNAVAILABLE", wantCalls: 1, says: "could not be reached or answered with an error"},
			{name: "hang", fault: fakewechat.FaultHang, want: "WECHAT_UNAVAILABLE", says: "did not answer in time"},
			{name: "slower than the attempt timeout", fault: fakewechat.FaultSlow, want: "WECHAT_UNAVAILABLE", says: "did not answer in time"},
			{name: "unknown code", code: func(*env) string { return "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P" }, want: "INVALID_CODE", wantCalls: 1},
			{name: "expired code", code: func(e *env) string {
				c := e.fake.IssueCode(alice)
				e.fakeClock.Advance(5*time.Minute + time.Second)
				return c
			}, want: "INVALID_CODE", wantCalls: 1},
			{name: "code used by someone else", code: func(e *env) string {
				c := e.fake.IssueCode(alice)
				spendAtWeChat(e, c)
				return c
			}, want: "INVALID_CODE", wantCalls: 2},
			{name: "wrong app secret", code: func(e *env) string { return e.fake.IssueCode(alice) }, want: "INTERNAL", wantCalls: 1},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var opts []envOption
				switch tc.name {
				case "wrong app secret":
					opts = append(opts, withWeChat(func(c *wechat.Config) { c.Secret = "not-the-secret" }))
				case "slower than the attempt timeout":
					opts = append(opts, withFake(func(o *fakewechat.Options) { o.SlowDelay = time.Minute }))
				}
				e := newEnv(t, b, opts...)
				code := e.fake.IssueCode(alice)
				if tc.code != nil {
					code = tc.code(e)
				}
				e.fake.InjectFault(tc.fault, -1)
				r := e.post(0, "", loginMutation, map[string]any{"code": code})
				if got := r.Code(); got != tc.want || (tc.says != "" && !strings.Contains(r.Errors[0].Message, tc.says)) {
					t.Errorf("login = %q %v, want %s saying %q", got, r.Errors, tc.want, tc.says)
				}
				if tc.wantCalls != 0 && e.fake.Calls() != tc.wantCalls {
					t.Errorf("WeChat calls = %d, want %d", e.fake.Calls(), tc.wantCalls)
				}
				e.assertNothingLeft("a failed login")
			})
		}
	})
}

func TestRetriedBusyLoginSucceeds(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.fake.InjectFault(fakewechat.FaultBusy, 1)
		if _, c := e.login(0, e.fake.IssueCode(alice)); c != "" {
			t.Errorf("login after one busy answer: %s, want success", c)
		}
		if n := e.fake.Calls(); n != 2 {
			t.Errorf("WeChat calls = %d, want 2 (one busy, one retry)", n)
		}
		// A slow WeChat within the attempt timeout is just slow.
		e.fake.InjectFault(fakewechat.FaultSlow, 1)
		if _, c := e.login(0, e.fake.IssueCode(alice)); c != "" {
			t.Errorf("login through a slow WeChat: %s, want success", c)
		}
	})
}

// TestHangWithDefaultTimeouts checks the production timeouts against the contract: a
// WeChat that never answers still gets the client an answer within 10 s.
func TestHangWithDefaultTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the WeChat client's full default deadline")
	}
	b := testdb.Backends(t)[0]
	e := newEnv(t, b, withWeChat(func(c *wechat.Config) { c.AttemptTimeout, c.Deadline, c.RetryBackoff = 0, 0, 0 }))
	e.fake.InjectFault(fakewechat.FaultHang, -1)
	if _, c := e.login(0, e.fake.IssueCode(alice)); c != "WECHAT_UNAVAILABLE" {
		t.Errorf("login against a hanging WeChat = %q, want WECHAT_UNAVAILABLE within %s", c, contractBound)
	}
}

func TestBadInputNeverReachesWeChat(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		for name, code := range map[string]string{
			"empty":             "",
			"129 bytes":         strings.Repeat("a", 129),
			"control character": "abc\x01def",
			"newline":           "abc\ndef",
			"tab":               "abc\tdef",
			"DEL":               "abc\x7f",
			"not ASCII":         "código",
		} {
			if _, c := e.login(0, code); c != "BAD_USER_INPUT" {
				t.Errorf("%s code: %q, want BAD_USER_INPUT", name, c)
			}
		}
		if r := e.post(0, "", `mutation { login { token } }`, nil); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("login without code: %q, want BAD_USER_INPUT", r.Code())
		}
		if r := e.post(0, "", `mutation { login(code: 42) { token } }`, nil); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("login with a number: %q, want BAD_USER_INPUT", r.Code())
		}
		if r := e.post(0, "", `mutation { login(code: "x") { token `, nil); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("unparseable document: %q, want BAD_USER_INPUT", r.Code())
		}
		if n := e.fake.Calls(); n != 0 {
			t.Errorf("bad input reached WeChat %d times", n)
		}
		// 128 printable bytes is a well-formed code: it goes to WeChat, which refuses it.
		if _, c := e.login(0, strings.Repeat("~", 128)); c != "INVALID_CODE" {
			t.Errorf("128-byte code: %q, want INVALID_CODE", c)
		}
		e.assertNothingLeft("only bad input")
	})
}

func TestBadTokensAreUnauthenticated(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		live := e.mustLogin(0, e.fake.IssueCode(alice))
		revoked := e.mustLogin(0, e.fake.IssueCode(alice))
		e.post(0, revoked.Token, `mutation { logout }`, nil)
		unknown := strings.Repeat("A", 43)

		headers := map[string][]string{
			"missing":         nil,
			"empty":           {""},
			"scheme only":     {"Bearer"},
			"basic":           {"Basic " + live.Token},
			"short":           {"Bearer abc"},
			"not base64url":   {"Bearer " + strings.Repeat("!", 43)},
			"unknown":         {"Bearer " + unknown},
			"revoked":         {"Bearer " + revoked.Token},
			"two headers":     {"Bearer " + live.Token, "Bearer " + live.Token},
			"token with junk": {"Bearer " + live.Token + "x"},
			"non-ASCII":       {"Bearer ключ\tключ"},
			"very long":       {"Bearer " + strings.Repeat("A", 8000)},
		}
		for name, values := range headers {
			for _, doc := range []string{`{ me { id } }`, `mutation { logout }`} {
				req := newGraphQLRequest(e, doc)
				for _, v := range values {
					req.Header.Add("Authorization", v)
				}
				if r := e.send(req); r.Code() != "UNAUTHENTICATED" || r.Status != 200 {
					t.Errorf("%s token, %s: %d %q, want 200 UNAUTHENTICATED", name, doc, r.Status, r.Code())
				}
			}
		}
		if _, c := e.me(0, live.Token); c != "" {
			t.Errorf("the live token stopped working: %s", c)
		}

		// A stale token does not get in the way of logging in again.
		req := newGraphQLRequest(e, `mutation { login(code: "`+e.fake.IssueCode(alice)+`") { token } }`)
		req.Header.Set("Authorization", "Bearer "+revoked.Token)
		if r := e.send(req); r.Code() != "" {
			t.Errorf("login with a revoked token in the header: %q", r.Code())
		}

		e.clock.Advance(30*24*time.Hour + time.Second)
		if _, c := e.me(0, live.Token); c != "UNAUTHENTICATED" {
			t.Errorf("me after 30 days: %q, want UNAUTHENTICATED", c)
		}
		if n := e.fake.Calls(); n != 3 {
			t.Errorf("WeChat calls = %d, want 3 (the logins only)", n)
		}
	})
}

func TestLogoutIsHonouredByEveryInstance(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if u, c := e.me(1, p.Token); c != "" || u.ID != p.User.ID {
			t.Fatalf("token from instance 0 on instance 1: %+v %s", u, c)
		}
		if r := e.post(1, p.Token, `mutation { logout }`, nil); r.Code() != "" {
			t.Fatalf("logout on instance 1: %s", r.Code())
		}
		if _, c := e.me(0, p.Token); c != "UNAUTHENTICATED" {
			t.Errorf("instance 0 after logout on instance 1: %q, want UNAUTHENTICATED", c)
		}
	})
}

// spendAtWeChat uses a code directly at the fake, as another server would.
func spendAtWeChat(e *env, code string) {
	e.t.Helper()
	resp, err := e.client.Get(e.wcfg.BaseURL + "/sns/jscode2session?appid=" + testAppID + "&secret=" + testSecret + "&js_code=" + code + "&grant_type=authorization_code")
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
}

func TestOneLoginPerRequest(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		code := e.fake.IssueCode(alice)
		for name, doc := range map[string]string{
			"aliased": `mutation($c: String!) { a: login(code: $c) { token } b: login(code: $c) { token } }`,
			"through a fragment": `mutation($c: String!) { a: login(code: $c) { token } ...More }
				fragment More on Mutation { b: login(code: $c) { token } }`,
		} {
			r := e.post(0, "", doc, map[string]any{"c": code})
			if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "one login per request") {
				t.Errorf("%s: %q %v, want BAD_USER_INPUT saying one login per request", name, r.Code(), r.Errors)
			}
		}
		if n := e.fake.Calls(); n != 0 {
			t.Errorf("WeChat calls = %d, want 0: the request is refused before it runs", n)
		}
		// One login asking for every field is fine.
		if _, c := e.login(0, code); c != "" {
			t.Errorf("a single login: %q", c)
		}
	})
}
