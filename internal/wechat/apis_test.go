package wechat_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/capture"

	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// testClock is a clock the fake reads through Options.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClock() *testClock { return &testClock{now: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)} }

// A mainland number unlike anything else in a log line.
const testPhone = "13912345678"

func errcodeOf(err error) int {
	var apiErr *wechat.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Errcode
	}
	return 0
}

func mustToken(t *testing.T, e *env, force bool) wechat.AccessToken {
	t.Helper()
	tok, err := e.client.StableToken(context.Background(), force)
	if err != nil {
		t.Fatalf("StableToken(force %v): %v", force, err)
	}
	return tok
}

func mustLogin(t *testing.T, e *env, openid string) wechat.Session {
	t.Helper()
	sess, err := e.client.Code2Session(context.Background(), e.fake.IssueCode(fakewechat.User{OpenID: openid}))
	if err != nil {
		t.Fatalf("Code2Session: %v", err)
	}
	return sess
}

// TestSessionKeySignature checks the signature against a vector computed
// here independently: HMAC-SHA256 of the empty string keyed with the
// session_key's base64 text. The same vector comes out of
// `printf ” | openssl dgst -sha256 -hmac 'tiihtNczf5v6AKRyjwEUhQ=='`.
func TestSessionKeySignature(t *testing.T) {
	const (
		key  = "tiihtNczf5v6AKRyjwEUhQ=="
		want = "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735"
	)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(""))
	if independent := hex.EncodeToString(mac.Sum(nil)); independent != want {
		t.Fatalf("the test's own HMAC is %s, want the stated vector %s", independent, want)
	}
	if got := wechat.SessionKeySignature(key); got != want {
		t.Errorf("SessionKeySignature(%q) = %s, want %s", key, got, want)
	}

	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 16 {
		t.Fatalf("decoding the key: %v (%d bytes)", err, len(raw))
	}
	macRaw := hmac.New(sha256.New, raw)
	if keyedByBytes := hex.EncodeToString(macRaw.Sum(nil)); keyedByBytes == want {
		t.Errorf("the HMAC keyed with the decoded bytes equals the one keyed with the text: the vector tells nothing")
	} else if wechat.SessionKeySignature(key) == keyedByBytes {
		t.Errorf("SessionKeySignature is keyed with the decoded bytes, want the base64 text")
	}
}

func TestStableToken(t *testing.T) {
	clk := newClock()
	e := newEnvWithFake(t, nil, func(o *fakewechat.Options) { o.Now = clk.Now }, nil)
	ctx := context.Background()
	const alice = "o-alice"

	before := time.Now()
	first := mustToken(t, e, false)
	after := time.Now()
	if first.Token == "" {
		t.Fatal("empty token")
	}
	// ExpiresAt is counted from the call: 7200 s after a moment within it.
	if first.ExpiresAt.Before(before.Add(7200*time.Second)) || first.ExpiresAt.After(after.Add(7200*time.Second)) {
		t.Errorf("ExpiresAt %v, want 7200 s after the call (%v … %v)", first.ExpiresAt, before, after)
	}

	clk.Advance(100 * time.Second)
	before = time.Now()
	again := mustToken(t, e, false)
	if again.Token != first.Token {
		t.Error("a second StableToken while the first is valid gave another token")
	}
	if again.ExpiresAt.Before(before.Add(7100 * time.Second)) {
		t.Errorf("ExpiresAt of the same token later: %v, want the 7100 s it has left counted from the call", again.ExpiresAt)
	}

	fresh := mustToken(t, e, true)
	if fresh.Token == first.Token {
		t.Fatal("force_refresh gave the same token")
	}
	if n := e.fake.CallsTo("stable_token"); n != 3 {
		t.Errorf("stable_token called %d times, want 3", n)
	}

	// The replaced token no longer works, and the phone code is not spent by
	// the refusal: refresh once, retry once.
	code := e.fake.IssuePhoneCode(alice, testPhone)
	_, err := e.client.GetPhoneNumber(ctx, first.Token, code, alice)
	if !errors.Is(err, wechat.ErrAccessToken) || errcodeOf(err) != 40001 {
		t.Fatalf("old token after force_refresh: err = %v, want ErrAccessToken with errcode 40001", err)
	}
	if _, err := e.client.GetPhoneNumber(ctx, fresh.Token, code, alice); err != nil {
		t.Fatalf("new token: %v", err)
	}

	// Expiry: the fake's clock moves past the token's life.
	clk.Advance(7200 * time.Second)
	_, err = e.client.GetPhoneNumber(ctx, fresh.Token, e.fake.IssuePhoneCode(alice, testPhone), alice)
	if !errors.Is(err, wechat.ErrAccessToken) || errcodeOf(err) != 42001 {
		t.Fatalf("expired token: err = %v, want ErrAccessToken with errcode 42001", err)
	}
	if renewed := mustToken(t, e, false); renewed.Token == fresh.Token {
		t.Error("StableToken after expiry gave the expired token")
	}
	if n := e.fake.PhoneExchanges(); n != 1 {
		t.Errorf("PhoneExchanges() = %d, want 1", n)
	}
}

func TestStableTokenErrors(t *testing.T) {
	cases := []struct {
		name  string
		cfg   func(*wechat.Config)
		fault fakewechat.Fault
		times int
		want  error
		calls int
	}{
		{name: "wrong secret 40125", cfg: func(c *wechat.Config) { c.Secret = "wrong-" + testSecret }, want: wechat.ErrConfig, calls: 1},
		{name: "wrong appid 40013", cfg: func(c *wechat.Config) { c.AppID = "wx-not-this-app" }, want: wechat.ErrConfig, calls: 1},
		{name: "busy once, then OK", fault: fakewechat.FaultBusy, times: 1, want: nil, calls: 2},
		{name: "busy on every attempt", fault: fakewechat.FaultBusy, times: -1, want: wechat.ErrUnavailable, calls: 3},
		{name: "rate limited", fault: fakewechat.FaultRateLimit, times: 1, want: wechat.ErrRateLimited, calls: 1},
		{name: "html 502", fault: fakewechat.FaultHTML502, times: 1, want: wechat.ErrUnavailable, calls: 1},
		{name: "truncated JSON", fault: fakewechat.FaultTruncatedJSON, times: 1, want: wechat.ErrUnavailable, calls: 1},
		{
			name: "slow past the attempt timeout, retried",
			cfg:  func(c *wechat.Config) { c.AttemptTimeout = 100 * time.Millisecond },
			// The fake's SlowDelay is raised below for this case.
			fault: fakewechat.FaultSlow, times: 1, want: nil, calls: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &capture.Buffer{}
			e := newEnvWithFake(t, logs, func(o *fakewechat.Options) {
				if tc.fault == fakewechat.FaultSlow {
					o.SlowDelay = time.Minute
				}
			}, tc.cfg)
			if tc.fault != fakewechat.FaultNone {
				e.fake.InjectFaultFor("stable_token", tc.fault, tc.times)
			}
			tok, err := e.client.StableToken(context.Background(), false)
			switch {
			case tc.want == nil && (err != nil || tok.Token == ""):
				t.Fatalf("err = %v, token empty: %v; want a token", err, tok.Token == "")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if n := e.fake.CallsTo("stable_token"); n != tc.calls {
				t.Errorf("stable_token called %d times, want %d", n, tc.calls)
			}
			secrets := []string{testSecret, "wrong-" + testSecret, tok.Token}
			checkNoLeak(t, "log", logs.String(), secrets...)
			if err != nil {
				checkNoLeak(t, "error", err.Error(), secrets...)
			}
			if !strings.Contains(logs.String(), `"api":"stable_token"`) {
				t.Errorf("log lacks the api:\n%s", logs)
			}
		})
	}
}

// TestGetPhoneNumber drives getuserphonenumber through real HTTP. A phone
// code is billed on each success and works once, so the client retries only
// what certainly did not spend it.
func TestGetPhoneNumber(t *testing.T) {
	const alice, bob = "o-alice", "o-bob"
	type setupFn func(t *testing.T, e *env, clk *testClock) (token, code, openid string)
	issue := func(t *testing.T, e *env, clk *testClock) (string, string, string) {
		return mustToken(t, e, false).Token, e.fake.IssuePhoneCode(alice, testPhone), alice
	}
	withFault := func(f fakewechat.Fault, times int) setupFn {
		return func(t *testing.T, e *env, clk *testClock) (string, string, string) {
			tok, code, openid := issue(t, e, clk)
			e.fake.InjectFaultFor("getuserphonenumber", f, times)
			return tok, code, openid
		}
	}
	cases := []struct {
		name     string
		cfg      func(*wechat.Config)
		slow     time.Duration // the fake's SlowDelay; 0: newEnv's
		setup    setupFn
		want     error
		errcode  int  // when want is an *APIError's sentinel
		calls    int  // requests to getuserphonenumber
		billed   int  // PhoneExchanges afterwards
		notSent  bool // refused before any attempt: no log line
		logHas   []string
		moreTest func(t *testing.T, e *env, token, code string)
	}{
		{
			name: "success", setup: issue, want: nil, calls: 1, billed: 1,
			logHas: []string{`"level":"DEBUG"`, `"country_code":"86"`, `"openid":"o-alice"`},
		},
		{
			name: "without openid", want: nil, calls: 1, billed: 1,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				tok, code, _ := issue(t, e, clk)
				return tok, code, ""
			},
		},
		{
			name: "code reused", want: wechat.ErrInvalidCode, errcode: 40029, calls: 2, billed: 1,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				tok, code, openid := issue(t, e, clk)
				if _, err := e.client.GetPhoneNumber(context.Background(), tok, code, openid); err != nil {
					t.Fatalf("first use: %v", err)
				}
				return tok, code, openid
			},
		},
		{
			name: "another user's code", want: wechat.ErrInvalidCode, errcode: 40029, calls: 1, billed: 0,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				tok, code, _ := issue(t, e, clk)
				return tok, code, bob
			},
			moreTest: func(t *testing.T, e *env, token, code string) {
				// Refused for bob, the code is still alice's to use.
				if _, err := e.client.GetPhoneNumber(context.Background(), token, code, alice); err != nil {
					t.Errorf("the owner after a refused use by another: %v", err)
				}
			},
		},
		{
			name: "expired code", want: wechat.ErrInvalidCode, errcode: 40029, calls: 1, billed: 0,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				tok, code, openid := issue(t, e, clk)
				clk.Advance(5 * time.Minute)
				return tok, code, openid
			},
		},
		{
			name: "unknown code", want: wechat.ErrInvalidCode, errcode: 40029, calls: 1, billed: 0,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				return mustToken(t, e, false).Token, "0a3bCdEfGhIjKlMnOpQrStUvWxYz0123", alice
			},
		},
		{
			name: "token invalidated mid-flight", want: wechat.ErrAccessToken, errcode: 40001, calls: 1, billed: 0,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				tok, code, openid := issue(t, e, clk)
				e.fake.InvalidateAccessTokens() // another server refreshed
				return tok, code, openid
			},
			moreTest: func(t *testing.T, e *env, token, code string) {
				// Refresh once, retry once: the refused attempt did not spend the code.
				fresh := mustToken(t, e, false)
				if fresh.Token == token {
					t.Fatal("StableToken after the invalidation gave the old token")
				}
				if _, err := e.client.GetPhoneNumber(context.Background(), fresh.Token, code, alice); err != nil {
					t.Errorf("retry with a fresh token: %v", err)
				}
			},
		},
		{
			name: "busy once, then OK", setup: withFault(fakewechat.FaultBusy, 1), want: nil, calls: 2, billed: 1,
			logHas: []string{`"attempt":2`, `"errcode":-1`},
		},
		{
			name: "busy on every attempt", setup: withFault(fakewechat.FaultBusy, -1), want: wechat.ErrUnavailable, errcode: -1, calls: 3, billed: 0,
		},
		{
			name: "rate limited", setup: withFault(fakewechat.FaultRateLimit, 1), want: wechat.ErrRateLimited, errcode: 45011, calls: 1, billed: 0,
		},
		{
			name: "out of quota", setup: withFault(fakewechat.FaultQuota, 1), want: wechat.ErrQuotaExhausted, errcode: 1400001, calls: 1, billed: 0,
		},
		{
			name: "code from another mini-program", setup: withFault(fakewechat.FaultForeignCode, 1), want: wechat.ErrForeignCode, errcode: 40013, calls: 1, billed: 0,
		},
		{
			name: "html 502 is not retried", setup: withFault(fakewechat.FaultHTML502, 1), want: wechat.ErrUnavailable, calls: 1, billed: 0,
		},
		{
			// The fake exchanged (and billed) the code before its answer broke.
			name: "truncated answer is not retried", setup: withFault(fakewechat.FaultTruncatedJSON, 1), want: wechat.ErrUnavailable, calls: 1, billed: 1,
		},
		{
			// WeChat spent the code but answered too late: a retry would bill
			// again, or find the code used. Exactly one call.
			name:  "attempt timeout is not retried",
			cfg:   func(c *wechat.Config) { c.AttemptTimeout = 100 * time.Millisecond },
			slow:  time.Minute,
			setup: withFault(fakewechat.FaultSlow, -1), want: wechat.ErrUnavailable, calls: 1, billed: 1,
			logHas: []string{`"retryable":false`, "attempt timeout"},
		},
		{
			name:  "hang is not retried",
			cfg:   func(c *wechat.Config) { c.AttemptTimeout = 100 * time.Millisecond },
			setup: withFault(fakewechat.FaultHang, -1), want: wechat.ErrUnavailable, calls: 1, billed: 0,
		},
		{
			// Nothing was sent, so trying again is safe.
			name: "connection refused is retried",
			cfg: func(c *wechat.Config) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				c.BaseURL = "http://" + ln.Addr().String()
				ln.Close()
			},
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				return "a-token-never-sent", e.fake.IssuePhoneCode(alice, testPhone), alice
			},
			want: wechat.ErrUnavailable, calls: 0, billed: 0,
			logHas: []string{`"attempt":3`, `"retryable":true`},
		},
		{
			name: "empty code is not sent", want: wechat.ErrInvalidCode, calls: 0, billed: 0, notSent: true,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				return mustToken(t, e, false).Token, "", alice
			},
		},
		{
			name: "empty token is not sent", want: wechat.ErrAccessToken, calls: 0, billed: 0, notSent: true,
			setup: func(t *testing.T, e *env, clk *testClock) (string, string, string) {
				return "", e.fake.IssuePhoneCode(alice, testPhone), alice
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &capture.Buffer{}
			clk := newClock()
			e := newEnvWithFake(t, logs, func(o *fakewechat.Options) {
				o.Now = clk.Now
				if tc.slow > 0 {
					o.SlowDelay = tc.slow
				}
			}, tc.cfg)
			token, code, openid := tc.setup(t, e, clk)
			info, err := e.client.GetPhoneNumber(context.Background(), token, code, openid)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want errors.Is %v", err, tc.want)
			case tc.errcode != 0 && errcodeOf(err) != tc.errcode:
				t.Errorf("err = %v, want errcode %d", err, tc.errcode)
			}
			if err == nil {
				want := wechat.PhoneInfo{
					// A mainland number comes bare, as WeChat gives it.
					PhoneNumber: testPhone, PurePhoneNumber: testPhone, CountryCode: "86",
					WatermarkAppID: testAppID, WatermarkTimestamp: clk.Now().Unix(),
				}
				if info != want {
					t.Errorf("got %+v, want %+v", []string{info.PhoneNumber, info.PurePhoneNumber, info.CountryCode, info.WatermarkAppID, fmt.Sprint(info.WatermarkTimestamp)},
						[]string{want.PhoneNumber, want.PurePhoneNumber, want.CountryCode, want.WatermarkAppID, fmt.Sprint(want.WatermarkTimestamp)})
				}
			}
			if n := e.fake.CallsTo("getuserphonenumber"); n != tc.calls {
				t.Errorf("getuserphonenumber called %d times, want %d", n, tc.calls)
			}
			if n := e.fake.PhoneExchanges(); n != tc.billed {
				t.Errorf("PhoneExchanges() = %d, want %d", n, tc.billed)
			}
			if tc.moreTest != nil {
				tc.moreTest(t, e, token, code)
			}

			secrets := []string{testSecret, token, code, testPhone}
			if err != nil {
				checkNoLeak(t, "error", err.Error(), secrets...)
			}
			out := logs.String()
			checkNoLeak(t, "log", out, secrets...)
			if !tc.notSent {
				for _, want := range append(tc.logHas, `"api":"getuserphonenumber"`, "access_token=REDACTED", `"method":"POST"`) {
					if !strings.Contains(out, want) {
						t.Errorf("log lacks %s:\n%s", want, out)
					}
				}
			}
		})
	}
}

func TestSessionKeyChecks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, nil)
	const alice = "o-alice"
	sess := mustLogin(t, e, alice)
	if got := e.fake.SessionKeyOf(alice); got != sess.SessionKey {
		t.Fatalf("SessionKeyOf = %q, want the key of the latest login", got)
	}
	tok := mustToken(t, e, false).Token

	if err := e.client.CheckSessionKey(ctx, tok, alice, sess.SessionKey); err != nil {
		t.Fatalf("current key: %v, want nil", err)
	}
	newKey, err := e.client.ResetUserSessionKey(ctx, tok, alice, sess.SessionKey)
	if err != nil {
		t.Fatalf("ResetUserSessionKey: %v", err)
	}
	if newKey == "" || newKey == sess.SessionKey || e.fake.SessionKeyOf(alice) != newKey {
		t.Fatalf("reset gave %q (old %q, fake holds %q): want a new key, the fake's current one", newKey, sess.SessionKey, e.fake.SessionKeyOf(alice))
	}
	if raw, err := base64.StdEncoding.DecodeString(newKey); err != nil || len(raw) != 16 {
		t.Errorf("new key %q is not base64 of 16 bytes", newKey)
	}

	stale := []struct {
		name string
		call func() error
	}{
		{"check with the key replaced by reset", func() error { return e.client.CheckSessionKey(ctx, tok, alice, sess.SessionKey) }},
		{"reset with the key replaced by reset", func() error {
			_, err := e.client.ResetUserSessionKey(ctx, tok, alice, sess.SessionKey)
			return err
		}},
		{"check for a user the fake never saw", func() error { return e.client.CheckSessionKey(ctx, tok, "o-nobody", newKey) }},
		{"empty key, not sent", func() error { return e.client.CheckSessionKey(ctx, tok, alice, "") }},
	}
	for _, tc := range stale {
		if err := tc.call(); !errors.Is(err, wechat.ErrSessionKeyStale) {
			t.Errorf("%s: err = %v, want ErrSessionKeyStale", tc.name, err)
		}
	}
	if err := e.client.CheckSessionKey(ctx, tok, alice, newKey); err != nil {
		t.Errorf("the key reset gave: %v, want nil", err)
	}

	// A new login replaces the key too.
	relogin := mustLogin(t, e, alice)
	if err := e.client.CheckSessionKey(ctx, tok, alice, newKey); !errors.Is(err, wechat.ErrSessionKeyStale) || errcodeOf(err) != 87009 {
		t.Errorf("key from before a new login: err = %v, want ErrSessionKeyStale with 87009", err)
	}
	if err := e.client.CheckSessionKey(ctx, tok, alice, relogin.SessionKey); err != nil {
		t.Errorf("key of the new login: %v", err)
	}

	e.fake.InvalidateAccessTokens()
	if err := e.client.CheckSessionKey(ctx, tok, alice, relogin.SessionKey); !errors.Is(err, wechat.ErrAccessToken) {
		t.Errorf("invalidated token: err = %v, want ErrAccessToken", err)
	}
	if _, err := e.client.ResetUserSessionKey(ctx, tok, alice, relogin.SessionKey); !errors.Is(err, wechat.ErrAccessToken) {
		t.Errorf("invalidated token: err = %v, want ErrAccessToken", err)
	}
	if got := e.fake.SessionKeyOf(alice); got != relogin.SessionKey {
		t.Error("a refused reset changed the key")
	}
}

func TestSessionKeyRetries(t *testing.T) {
	ctx := context.Background()
	const alice = "o-alice"
	t.Run("check, busy once", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		sess, tok := mustLogin(t, e, alice), mustToken(t, e, false).Token
		e.fake.InjectFaultFor("checksession", fakewechat.FaultBusy, 1)
		if err := e.client.CheckSessionKey(ctx, tok, alice, sess.SessionKey); err != nil {
			t.Fatalf("err = %v, want nil after a retry", err)
		}
		if n := e.fake.CallsTo("checksession"); n != 2 {
			t.Errorf("checksession called %d times, want 2", n)
		}
	})
	t.Run("check, attempt timeout is retried", func(t *testing.T) {
		e := newEnvWithFake(t, nil, func(o *fakewechat.Options) { o.SlowDelay = time.Minute },
			func(c *wechat.Config) { c.AttemptTimeout = 100 * time.Millisecond })
		sess, tok := mustLogin(t, e, alice), mustToken(t, e, false).Token
		e.fake.InjectFaultFor("checksession", fakewechat.FaultSlow, 1)
		if err := e.client.CheckSessionKey(ctx, tok, alice, sess.SessionKey); err != nil {
			t.Fatalf("err = %v, want nil after a retry", err)
		}
		if n := e.fake.CallsTo("checksession"); n != 2 {
			t.Errorf("checksession called %d times, want 2", n)
		}
	})
	t.Run("reset, busy once", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		sess, tok := mustLogin(t, e, alice), mustToken(t, e, false).Token
		e.fake.InjectFaultFor("resetusersessionkey", fakewechat.FaultBusy, 1)
		key, err := e.client.ResetUserSessionKey(ctx, tok, alice, sess.SessionKey)
		if err != nil || key != e.fake.SessionKeyOf(alice) {
			t.Fatalf("err = %v, key current %v; want the new key after a retry", err, key == e.fake.SessionKeyOf(alice))
		}
	})
	t.Run("reset whose answer was lost", func(t *testing.T) {
		// The slow attempt replaced the key, then timed out; the retry signs
		// with the old key and gets 87009. That is WeChat's slowness, not a
		// stale key the caller held: ErrUnavailable, not ErrSessionKeyStale.
		e := newEnvWithFake(t, nil, func(o *fakewechat.Options) { o.SlowDelay = time.Minute },
			func(c *wechat.Config) { c.AttemptTimeout = 100 * time.Millisecond })
		sess, tok := mustLogin(t, e, alice), mustToken(t, e, false).Token
		e.fake.InjectFaultFor("resetusersessionkey", fakewechat.FaultSlow, 1)
		_, err := e.client.ResetUserSessionKey(ctx, tok, alice, sess.SessionKey)
		if !errors.Is(err, wechat.ErrUnavailable) || errors.Is(err, wechat.ErrSessionKeyStale) {
			t.Fatalf("err = %v, want ErrUnavailable and not ErrSessionKeyStale", err)
		}
		if n := e.fake.CallsTo("resetusersessionkey"); n != 2 {
			t.Errorf("resetusersessionkey called %d times, want 2", n)
		}
		if e.fake.SessionKeyOf(alice) == sess.SessionKey {
			t.Error("the slow attempt should have replaced the key")
		}
		checkNoLeak(t, "error", err.Error(), tok, sess.SessionKey, wechat.SessionKeySignature(sess.SessionKey))
	})
}

// TestNoSecretsInLogs runs every API, in success and failure, with the log
// at Debug, and checks that no line shows the access token, the app secret,
// a phone code, a session_key, a signature or the phone number.
func TestNoSecretsInLogs(t *testing.T) {
	ctx := context.Background()
	logs := &capture.Buffer{}
	e := newEnvWithFake(t, logs, func(o *fakewechat.Options) { o.SlowDelay = time.Minute },
		func(c *wechat.Config) { c.AttemptTimeout = 300 * time.Millisecond })
	const alice = "o-alice"
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	keep(testSecret, testPhone, "+86"+testPhone)

	sess := mustLogin(t, e, alice)
	old := mustToken(t, e, false)
	tok := mustToken(t, e, true)
	keep(sess.SessionKey, wechat.SessionKeySignature(sess.SessionKey), old.Token, tok.Token)

	code := e.fake.IssuePhoneCode(alice, testPhone)
	keep(code)
	_, err := e.client.GetPhoneNumber(ctx, old.Token, code, alice) // 40001
	note(err)
	info, err := e.client.GetPhoneNumber(ctx, tok.Token, code, alice)
	if err != nil || info.PurePhoneNumber != testPhone {
		t.Fatalf("GetPhoneNumber: %v", err)
	}
	_, err = e.client.GetPhoneNumber(ctx, tok.Token, code, alice) // used
	note(err)
	for _, f := range []fakewechat.Fault{fakewechat.FaultBusy, fakewechat.FaultTruncatedJSON, fakewechat.FaultSlow} {
		c := e.fake.IssuePhoneCode(alice, testPhone)
		keep(c)
		e.fake.InjectFaultFor("getuserphonenumber", f, 1)
		_, err = e.client.GetPhoneNumber(ctx, tok.Token, c, alice)
		note(err)
	}

	note(e.client.CheckSessionKey(ctx, tok.Token, alice, sess.SessionKey))
	newKey, err := e.client.ResetUserSessionKey(ctx, tok.Token, alice, sess.SessionKey)
	if err != nil {
		t.Fatalf("ResetUserSessionKey: %v", err)
	}
	keep(newKey, wechat.SessionKeySignature(newKey))
	note(e.client.CheckSessionKey(ctx, tok.Token, alice, sess.SessionKey)) // stale
	e.fake.InjectFaultFor("checksession", fakewechat.FaultHTML502, 1)
	note(e.client.CheckSessionKey(ctx, tok.Token, alice, newKey))
	e.fake.InjectFaultFor("resetusersessionkey", fakewechat.FaultSlow, 1)
	_, err = e.client.ResetUserSessionKey(ctx, tok.Token, alice, newKey) // lost answer
	note(err)
	keep(e.fake.SessionKeyOf(alice))

	out := logs.String()
	checkNoLeak(t, "log", out, secrets...)
	for _, err := range errs {
		checkNoLeak(t, "error", err.Error(), secrets...)
	}
	if len(errs) < 7 {
		t.Errorf("%d failures, want the 7 provoked", len(errs))
	}
	for _, want := range []string{
		`"api":"stable_token"`, `"api":"getuserphonenumber"`, `"api":"checksession"`, `"api":"resetusersessionkey"`,
		"access_token=REDACTED", "signature=REDACTED", `"errcode":40001`, `"errcode":87009`, `"expires_at":`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestNewAPIsOddAnswers covers answers the fake does not give: successes
// without their fields, unknown errcodes, errmsgs echoing what was sent.
func TestNewAPIsOddAnswers(t *testing.T) {
	const (
		token = "the-access-token"
		code  = "the-phone-code"
		key   = "c2Vzc2lvbi1rZXkxMjM0NQ=="
	)
	sig := wechat.SessionKeySignature(key)
	calls := map[string]func(c *wechat.Client) error{
		"stable_token": func(c *wechat.Client) error {
			_, err := c.StableToken(context.Background(), false)
			return err
		},
		"getuserphonenumber": func(c *wechat.Client) error {
			_, err := c.GetPhoneNumber(context.Background(), token, code, "o1")
			return err
		},
		"checksession": func(c *wechat.Client) error {
			return c.CheckSessionKey(context.Background(), token, "o1", key)
		},
		"resetusersessionkey": func(c *wechat.Client) error {
			_, err := c.ResetUserSessionKey(context.Background(), token, "o1", key)
			return err
		},
	}
	cases := []struct {
		api, body string
		want      error
	}{
		{"stable_token", `{"access_token":"","expires_in":7200}`, wechat.ErrUnavailable},
		{"stable_token", `{"access_token":"t","expires_in":0}`, wechat.ErrUnavailable},
		{"stable_token", `{"errcode":40001,"errmsg":"invalid credential"}`, wechat.ErrAccessToken},
		{"getuserphonenumber", `{"errcode":0,"errmsg":"ok"}`, wechat.ErrUnavailable},
		{"getuserphonenumber", `{"errcode":40029,"errmsg":"invalid code ` + code + ` with token ` + token + `, rid: 1-2-3"}`, wechat.ErrInvalidCode},
		{"getuserphonenumber", `{"errcode":42001,"errmsg":"access_token expired"}`, wechat.ErrAccessToken},
		{"getuserphonenumber", `{"errcode":40999,"errmsg":"something new"}`, wechat.ErrUnexpected},
		{"checksession", `{"errcode":0,"errmsg":"ok"}`, nil},
		{"checksession", `{}`, nil},
		{"checksession", `{"errcode":87009,"errmsg":"invalid signature ` + sig + ` for ` + key + `"}`, wechat.ErrSessionKeyStale},
		{"resetusersessionkey", `{"errcode":0,"errmsg":"ok","openid":"o1"}`, wechat.ErrUnavailable},
		{"resetusersessionkey", `{"errcode":0,"errmsg":"ok","openid":"o2","session_key":"bmV3"}`, wechat.ErrUnavailable},
		{"resetusersessionkey", `{"errcode":0,"errmsg":"ok","openid":"o1","session_key":"bmV3"}`, nil},
		{"resetusersessionkey", `not json`, wechat.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.api+" "+tc.body, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				mu.Unlock()
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(ts.Close)
			c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			err = calls[tc.api](c)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				checkNoLeak(t, "error", err.Error(), testSecret, token, code, key, sig)
			}
			mu.Lock()
			defer mu.Unlock()
			if n != 1 {
				t.Errorf("called %d times, want 1", n)
			}
		})
	}
}

// TestRequestsAsDocumented checks what the client sends, against a recorder.
func TestRequestsAsDocumented(t *testing.T) {
	type seen struct{ method, path, query, contentType, body string }
	var mu sync.Mutex
	var got []seen
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		switch r.URL.Path {
		case "/cgi-bin/stable_token":
			fmt.Fprint(w, `{"access_token":"tok","expires_in":7200}`)
		case "/wxa/business/getuserphonenumber":
			fmt.Fprint(w, `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"+8613800000000","purePhoneNumber":"13800000000","countryCode":"86","watermark":{"timestamp":1700000000,"appid":"wxa"}}}`)
		case "/wxa/resetusersessionkey":
			fmt.Fprint(w, `{"errcode":0,"errmsg":"ok","openid":"o1","session_key":"bmV3"}`)
		default:
			fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
		}
	}))
	t.Cleanup(ts.Close)
	c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: "wxa", Secret: "sec"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "tiihtNczf5v6AKRyjwEUhQ=="
	sig := "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735"
	if _, err := c.StableToken(ctx, true); err != nil {
		t.Fatal(err)
	}
	info, err := c.GetPhoneNumber(ctx, "tok", "pc", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if info.PhoneNumber != "+8613800000000" || info.PurePhoneNumber != "13800000000" || info.CountryCode != "86" ||
		info.WatermarkAppID != "wxa" || info.WatermarkTimestamp != 1700000000 {
		t.Errorf("PhoneInfo from the documented example: %+v", []any{info.PhoneNumber, info.PurePhoneNumber, info.CountryCode, info.WatermarkAppID, info.WatermarkTimestamp})
	}
	if err := c.CheckSessionKey(ctx, "tok", "o1", key); err != nil {
		t.Fatal(err)
	}
	if k, err := c.ResetUserSessionKey(ctx, "tok", "o1", key); err != nil || k != "bmV3" {
		t.Fatalf("reset: %q, %v", k, err)
	}
	sessionQuery := "access_token=tok&openid=o1&sig_method=hmac_sha256&signature=" + sig
	want := []seen{
		{"POST", "/cgi-bin/stable_token", "", "application/json", `{"grant_type":"client_credential","appid":"wxa","secret":"sec","force_refresh":true}`},
		{"POST", "/wxa/business/getuserphonenumber", "access_token=tok", "application/json", `{"code":"pc","openid":"o1"}`},
		{"GET", "/wxa/checksession", sessionQuery, "", ""},
		{"GET", "/wxa/resetusersessionkey", sessionQuery, "", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d:\n got  %+v\n want %+v", i+1, got[i], want[i])
		}
	}
}

func TestTokenAndPhoneNeverPrint(t *testing.T) {
	tok := wechat.AccessToken{Token: "ACCESS-TOKEN-SECRET", ExpiresAt: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}
	info := wechat.PhoneInfo{PhoneNumber: "+86" + testPhone, PurePhoneNumber: testPhone, CountryCode: "86", WatermarkAppID: "wxa", WatermarkTimestamp: 1700000000}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("got", "token", tok, "phone", info)
	for _, text := range []string{buf.String(), fmt.Sprint(tok, info), fmt.Sprintf("%v %+v %#v %s %v %+v %#v %s", tok, tok, tok, tok, info, info, info, info)} {
		checkNoLeak(t, "output", text, tok.Token, testPhone)
		if !strings.Contains(text, "2024-05-01") || !strings.Contains(text, "86") {
			t.Errorf("the expiry or the country code is missing: %s", text)
		}
	}
}
