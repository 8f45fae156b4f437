package wechat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "s3cr3t-0f-the-app-do-not-leak-9f8e7d6c"
)

type env struct {
	fake   *fakewechat.Server
	url    string
	client *wechat.Client
}

// newEnv starts the fake WeChat over real HTTP and a client for it. Short
// timeouts keep the hang and slow cases quick; retries back off by little.
func newEnv(t *testing.T, logs *capture.Buffer, mutate func(*wechat.Config)) *env {
	t.Helper()
	return newEnvWithFake(t, logs, nil, mutate)
}

// newEnvWithFake is newEnv with the fake's options changed by fakeOpts too.
func newEnvWithFake(t *testing.T, logs *capture.Buffer, fakeOpts func(*fakewechat.Options), mutate func(*wechat.Config)) *env {
	t.Helper()
	opts := fakewechat.Options{AppID: testAppID, Secret: testSecret, SlowDelay: 50 * time.Millisecond}
	if fakeOpts != nil {
		fakeOpts(&opts)
	}
	fake := fakewechat.New(opts)
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	t.Cleanup(fake.Close) // runs first: releases hanging requests so ts.Close returns
	cfg := wechat.Config{
		BaseURL:        ts.URL + "/",
		AppID:          testAppID,
		Secret:         testSecret,
		AttemptTimeout: 2 * time.Second,
		RetryBackoff:   time.Millisecond,
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := wechat.New(cfg)
	if err != nil {
		t.Fatalf("wechat.New: %v", err)
	}
	return &env{fake: fake, url: ts.URL, client: c}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []wechat.Config{
		{BaseURL: "", AppID: "wxapp", Secret: testSecret},
		{BaseURL: "api.weixin.qq.com", AppID: "wxapp", Secret: testSecret},
		{BaseURL: "ftp://api.weixin.qq.com", AppID: "wxapp", Secret: testSecret},
		{BaseURL: "https://", AppID: "wxapp", Secret: testSecret},
		{BaseURL: "https://user:" + testSecret + "@api.weixin.qq.com", AppID: "wxapp", Secret: testSecret},
		{BaseURL: "https://api.weixin.qq.com", Secret: testSecret},
		{BaseURL: "https://api.weixin.qq.com", AppID: "wxapp"},
	} {
		if _, err := wechat.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		} else if cfg.Secret != "" && strings.Contains(err.Error(), cfg.Secret) {
			t.Errorf("New error %q reveals the secret", err)
		}
	}
	c, err := wechat.New(wechat.Config{BaseURL: "https://api.weixin.qq.com", AppID: "wxapp", Secret: "s"})
	if err != nil {
		t.Fatalf("New with a valid config: %v", err)
	}
	if c.AppID() != "wxapp" {
		t.Errorf("AppID() = %q, want wxapp", c.AppID())
	}
}

func TestCode2SessionSuccess(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, u := range []fakewechat.User{
		{OpenID: "o-with-union", UnionID: "u-1"},
		{OpenID: "o-without-union"},
	} {
		sess, err := e.client.Code2Session(context.Background(), e.fake.IssueCode(u))
		if err != nil {
			t.Fatalf("Code2Session(%+v): %v", u, err)
		}
		if sess.OpenID != u.OpenID || sess.UnionID != u.UnionID {
			t.Errorf("got openid %q unionid %q, want %q %q", sess.OpenID, sess.UnionID, u.OpenID, u.UnionID)
		}
		if sess.SessionKey == "" {
			t.Error("empty session_key")
		}
	}
}

// anyCalls leaves the number of calls to outcome.check.
const anyCalls = -1

// outcome is what one scenario must end with.
type outcome struct {
	want  error // nil: success
	calls int   // exact number of calls WeChat received; anyCalls: left to check
	check func(t *testing.T, e *env, err error)
}

// TestCode2SessionOutcomes drives every errcode and fault through real HTTP,
// checks the sentinel and how often WeChat was called, and checks that the
// log of each call (JSON at Debug) leaks neither the secret, nor the code,
// nor a session_key, while it does show the rid and the redacted URL.
func TestCode2SessionOutcomes(t *testing.T) {
	alice := fakewechat.User{OpenID: "o-alice", UnionID: "u-alice"}
	rid := `"rid":"`

	cases := []struct {
		name string
		cfg  func(*wechat.Config)
		// setup prepares the fake and returns the code to send, and any
		// other secret the log must not contain.
		setup func(t *testing.T, e *env) (code string, secrets []string)
		outcome
		logHas []string
	}{
		{
			name:    "success",
			setup:   func(t *testing.T, e *env) (string, []string) { return e.fake.IssueCode(alice), nil },
			outcome: outcome{want: nil, calls: 1},
			logHas:  []string{`"level":"DEBUG"`, `"openid":"o-alice"`},
		},
		{
			name:    "unknown code 40029",
			setup:   func(t *testing.T, e *env) (string, []string) { return "0a3bCdEfGhIjKlMnOpQrStUvWxYz0123", nil },
			outcome: outcome{want: wechat.ErrInvalidCode, calls: 1},
			logHas:  []string{`"level":"WARN"`, `"errcode":40029`, rid},
		},
		{
			name: "reused code 40163",
			setup: func(t *testing.T, e *env) (string, []string) {
				code := e.fake.IssueCode(alice)
				sess, err := e.client.Code2Session(context.Background(), code)
				if err != nil {
					t.Fatalf("first use: %v", err)
				}
				return code, []string{sess.SessionKey}
			},
			outcome: outcome{want: wechat.ErrInvalidCode, calls: 2}, // the first use, then one for the reuse
			logHas:  []string{`"errcode":40163`, rid},
		},
		{
			name: "ratelimit 45011",
			setup: func(t *testing.T, e *env) (string, []string) {
				e.fake.InjectFault(fakewechat.FaultRateLimit, 1)
				return e.fake.IssueCode(alice), nil
			},
			outcome: outcome{want: wechat.ErrRateLimited, calls: 1},
			logHas:  []string{`"errcode":45011`, rid},
		},
		{
			name:    "risky user 40226",
			setup:   func(t *testing.T, e *env) (string, []string) { return "fault-risky", nil },
			outcome: outcome{want: wechat.ErrRiskyUser, calls: 1},
			logHas:  []string{`"errcode":40226`, rid},
		},
		{
			name: "wrong secret 40125",
			cfg:  func(c *wechat.Config) { c.Secret = "wrong-" + testSecret },
			setup: func(t *testing.T, e *env) (string, []string) {
				return e.fake.IssueCode(alice), []string{"wrong-" + testSecret}
			},
			outcome: outcome{want: wechat.ErrConfig, calls: 1},
			logHas:  []string{`"errcode":40125`, rid},
		},
		{
			name:    "wrong appid 40013",
			cfg:     func(c *wechat.Config) { c.AppID = "wx-not-this-app" },
			setup:   func(t *testing.T, e *env) (string, []string) { return e.fake.IssueCode(alice), nil },
			outcome: outcome{want: wechat.ErrConfig, calls: 1},
			logHas:  []string{`"errcode":40013`, rid},
		},
		{
			name: "html 502 is not retried",
			setup: func(t *testing.T, e *env) (string, []string) {
				e.fake.InjectFault(fakewechat.FaultHTML502, -1)
				return e.fake.IssueCode(alice), nil
			},
			outcome: outcome{want: wechat.ErrUnavailable, calls: 1},
			logHas:  []string{`"http_status":502`},
		},
		{
			name: "truncated JSON is not retried",
			setup: func(t *testing.T, e *env) (string, []string) {
				e.fake.InjectFault(fakewechat.FaultTruncatedJSON, -1)
				return e.fake.IssueCode(alice), nil
			},
			outcome: outcome{want: wechat.ErrUnavailable, calls: 1},
			logHas:  []string{`"http_status":200`, `"level":"WARN"`},
		},
		{
			name: "busy on every attempt",
			cfg:  func(c *wechat.Config) { c.MaxAttempts = 4 },
			setup: func(t *testing.T, e *env) (string, []string) {
				e.fake.InjectFault(fakewechat.FaultBusy, -1)
				return e.fake.IssueCode(alice), nil
			},
			outcome: outcome{want: wechat.ErrUnavailable, calls: 4, check: func(t *testing.T, e *env, err error) {
				var apiErr *wechat.APIError
				if !errors.As(err, &apiErr) || apiErr.Errcode != -1 {
					t.Errorf("err = %v, want an *APIError with errcode -1", err)
				}
			}},
			logHas: []string{`"attempt":4`, `"errcode":-1`, rid},
		},
		{
			name: "busy once, then OK",
			setup: func(t *testing.T, e *env) (string, []string) {
				e.fake.InjectFault(fakewechat.FaultBusy, 1)
				return e.fake.IssueCode(alice), nil
			},
			outcome: outcome{want: nil, calls: 2},
			logHas:  []string{`"attempt":2`, `"errcode":-1`, `"level":"DEBUG"`},
		},
		{
			// The second attempt starts with 100 ms left and is cut off by the
			// overall deadline, not by its own 300 ms timeout.
			name: "hang runs into the deadline",
			cfg: func(c *wechat.Config) {
				c.AttemptTimeout = 300 * time.Millisecond
				c.Deadline = 400 * time.Millisecond
			},
			setup: func(t *testing.T, e *env) (string, []string) { return "fault-hang", nil },
			outcome: outcome{want: wechat.ErrUnavailable, calls: anyCalls, check: func(t *testing.T, e *env, err error) {
				if n := e.fake.Calls(); n < 1 || n > 2 {
					t.Errorf("WeChat called %d times, want 1 or 2 within a 400ms deadline", n)
				}
				if !strings.Contains(err.Error(), "deadline") {
					t.Errorf("err = %v, want it to say the deadline ended the call", err)
				}
			}},
			logHas: []string{`"level":"WARN"`},
		},
		{
			name:    "slow but within the attempt timeout",
			setup:   func(t *testing.T, e *env) (string, []string) { return "fault-slow", nil },
			outcome: outcome{want: nil, calls: 1},
		},
		{
			name: "nothing listens (connection refused)",
			cfg: func(c *wechat.Config) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				c.BaseURL = "http://" + ln.Addr().String()
				ln.Close()
			},
			setup:   func(t *testing.T, e *env) (string, []string) { return e.fake.IssueCode(alice), nil },
			outcome: outcome{want: wechat.ErrUnavailable, calls: 0},
			logHas:  []string{`"attempt":3`, `"level":"WARN"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &capture.Buffer{}
			e := newEnv(t, logs, tc.cfg)
			code, secrets := tc.setup(t, e)
			sess, err := e.client.Code2Session(context.Background(), code)
			checkOutcome(t, e, err, tc.outcome)
			if err == nil && (sess.OpenID == "" || sess.SessionKey == "") {
				t.Errorf("success without openid or session_key: %v", sess)
			}
			if err != nil {
				checkNoLeak(t, "error", err.Error(), testSecret, code)
			}

			out := logs.String()
			checkNoLeak(t, "log", out, append(secrets, testSecret, code, sess.SessionKey)...)
			for _, want := range append(tc.logHas, "secret=REDACTED", "js_code=REDACTED", `"api":"jscode2session"`, `"duration":`) {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %s:\n%s", want, out)
				}
			}
		})
	}

	t.Run("closed server", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		ts := httptest.NewServer(e.fake)
		ts.Close()
		c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Code2Session(context.Background(), "dev-alice")
		if !errors.Is(err, wechat.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		checkNoLeak(t, "error", err.Error(), testSecret, "dev-alice")
	})
}

func checkOutcome(t *testing.T, e *env, err error, o outcome) {
	t.Helper()
	switch {
	case o.want == nil && err != nil:
		t.Fatalf("err = %v, want success", err)
	case o.want != nil && !errors.Is(err, o.want):
		t.Fatalf("err = %v, want errors.Is %v", err, o.want)
	}
	if o.calls != anyCalls {
		if n := e.fake.Calls(); n != o.calls {
			t.Errorf("WeChat called %d times, want %d", n, o.calls)
		}
	}
	if o.check != nil {
		o.check(t, e, err)
	}
}

func checkNoLeak(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains %q:\n%s", what, s, text)
		}
	}
}

func TestEmptyCodeIsNotSent(t *testing.T) {
	e := newEnv(t, nil, nil)
	if _, err := e.client.Code2Session(context.Background(), ""); !errors.Is(err, wechat.ErrInvalidCode) {
		t.Fatalf("err = %v, want ErrInvalidCode", err)
	}
	if n := e.fake.Calls(); n != 0 {
		t.Errorf("WeChat called %d times, want 0", n)
	}
}

func TestAPIErrorCarriesRID(t *testing.T) {
	t.Run("from the fake", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		_, err := e.client.Code2Session(context.Background(), "no-such-code")
		var apiErr *wechat.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v, want an *APIError", err)
		}
		if apiErr.API != "jscode2session" || apiErr.Errcode != 40029 || apiErr.RID == "" ||
			!strings.HasSuffix(apiErr.Errmsg, ", rid: "+apiErr.RID) {
			t.Errorf("got %+v, want jscode2session, 40029 and the rid at the end of errmsg", apiErr)
		}
	})
	t.Run("exact message", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"errcode":40029,"errmsg":"invalid code, rid: 6592a1b2-0f3c1a2b-5d6e7f80"}`)
		}))
		t.Cleanup(ts.Close)
		c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Code2Session(context.Background(), "some-code")
		var apiErr *wechat.APIError
		if !errors.As(err, &apiErr) || apiErr.RID != "6592a1b2-0f3c1a2b-5d6e7f80" {
			t.Fatalf("err = %#v, want rid 6592a1b2-0f3c1a2b-5d6e7f80", err)
		}
		want := "wechat jscode2session: errcode 40029: invalid code, rid: 6592a1b2-0f3c1a2b-5d6e7f80"
		if err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	})
}

// TestOddAnswers covers answers the fake does not give: an unknown errcode,
// success without the fields, an oversized body, an echoed secret.
func TestOddAnswers(t *testing.T) {
	cases := []struct {
		name string
		body string
		want error
	}{
		{"explicit errcode 0", `{"errcode":0,"errmsg":"ok","openid":"o1","session_key":"a2V5"}`, nil},
		{"unknown errcode", `{"errcode":40999,"errmsg":"something new"}`, wechat.ErrUnexpected},
		{"missing code 41008", `{"errcode":41008,"errmsg":"missing code"}`, wechat.ErrInvalidCode},
		{"success without session_key", `{"openid":"o1"}`, wechat.ErrUnavailable},
		{"success without openid", `{"session_key":"a2V5"}`, wechat.ErrUnavailable},
		{"JSON null", `null`, wechat.ErrUnavailable},
		{"oversized body", `{"openid":"o1","session_key":"a2V5","pad":"` + strings.Repeat("x", 70<<10) + `"}`, wechat.ErrUnavailable},
		{"errmsg echoes secret and code", `{"errcode":40125,"errmsg":"invalid appsecret ` + testSecret + ` for code the-code, rid: 1-2-3"}`, wechat.ErrConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var mu sync.Mutex
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(ts.Close)
			c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Code2Session(context.Background(), "the-code")
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				checkNoLeak(t, "error", err.Error(), testSecret, "the-code")
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != 1 {
				t.Errorf("called %d times, want 1", calls)
			}
		})
	}
}

func TestCallerCancels(t *testing.T) {
	t.Run("before the call", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.client.Code2Session(ctx, "dev-alice"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("while WeChat hangs", func(t *testing.T) {
		fake := fakewechat.New(fakewechat.Options{AppID: testAppID, Secret: testSecret})
		arrived := make(chan struct{}, 8)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			fake.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		t.Cleanup(fake.Close)
		c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret, AttemptTimeout: time.Minute, Deadline: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		_, err = c.Code2Session(ctx, "fault-hang")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if errors.Is(err, wechat.ErrUnavailable) {
			t.Errorf("a caller's cancellation should not read as WeChat being unavailable: %v", err)
		}
		if n := fake.Calls(); n != 1 {
			t.Errorf("WeChat called %d times, want 1 (no retry after a cancel)", n)
		}
	})
}

func TestSessionNeverPrintsItsKey(t *testing.T) {
	s := wechat.Session{OpenID: "o1", UnionID: "u1", SessionKey: "c2Vzc2lvbi1rZXktc2VjcmV0"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "session", s)
	for _, text := range []string{buf.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(text, s.SessionKey) {
			t.Errorf("session_key printed: %s", text)
		}
		if !strings.Contains(text, "o1") {
			t.Errorf("openid missing: %s", text)
		}
	}
}

// TestRetryAfterTimeoutDoesNotBlameTheCode: a WeChat that spends the code but answers
// too late makes the retry see 40163 "code been used". That is WeChat's slowness, not a
// bad code: the caller must get ErrUnavailable, not ErrInvalidCode.
func TestRetryAfterTimeoutDoesNotBlameTheCode(t *testing.T) {
	fake := fakewechat.New(fakewechat.Options{AppID: testAppID, Secret: testSecret, SlowDelay: time.Minute})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	t.Cleanup(fake.Close)
	c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret,
		AttemptTimeout: 200 * time.Millisecond, Deadline: 5 * time.Second, RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fake.InjectFault(fakewechat.FaultSlow, 1)
	_, err = c.Code2Session(context.Background(), fake.IssueCode(fakewechat.User{OpenID: "o-slow"}))
	if !errors.Is(err, wechat.ErrUnavailable) || errors.Is(err, wechat.ErrInvalidCode) {
		t.Errorf("err = %v, want ErrUnavailable and not ErrInvalidCode", err)
	}
	if n := fake.Calls(); n < 2 {
		t.Errorf("WeChat called %d times, want the slow attempt and a retry", n)
	}
}
