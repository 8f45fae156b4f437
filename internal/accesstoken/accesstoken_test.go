package accesstoken_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/accesstoken"
	"github.com/wxlogin/wxlogin/internal/capture"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"

	"log/slog"
)

const (
	appID  = "wxtokenapp000001"
	secret = "token-app-secret-5e1a"
)

// clock is a settable time source: real time moved on by Advance.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type fixture struct {
	fake   *fakewechat.Server
	client *wechat.Client
	db     *database.DB
	clock  *clock
	ring   *seal.Keyring
	logs   *capture.Buffer
}

func newFixture(t *testing.T, b testdb.Backend) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{}, db: b.Open(t), logs: &capture.Buffer{}}
	f.fake = fakewechat.New(fakewechat.Options{AppID: appID, Secret: secret, Now: f.clock.Now})
	srv := httptest.NewServer(f.fake)
	t.Cleanup(func() { f.fake.Close(); srv.Close() })
	var err error
	f.client, err = wechat.New(wechat.Config{BaseURL: srv.URL, AppID: appID, Secret: secret, Logger: f.logger(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.ring, _ = seal.NewKeyring(bytes.Repeat([]byte{9}, 32))
	return f
}

func (f *fixture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// instance is one wxlogin instance's manager on the shared database.
func (f *fixture) instance() *accesstoken.Manager {
	return accesstoken.New(accesstoken.Options{DB: f.db, Source: f.client, Keyring: f.ring, Now: f.clock.Now, Logger: f.logger()})
}

func TestFleetMakesOneTokenCall(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		instances := []*accesstoken.Manager{f.instance(), f.instance()}
		tokens := make([]string, 40)
		errs := make([]error, 40)
		var wg sync.WaitGroup
		for i := range tokens {
			wg.Go(func() { tokens[i], errs[i] = instances[i%2].Token(context.Background()) })
		}
		wg.Wait()
		for i := range tokens {
			if errs[i] != nil || tokens[i] != tokens[0] || tokens[0] == "" {
				t.Fatalf("call %d: %q, %v; want the one token", i, tokens[i], errs[i])
			}
		}
		if n := f.fake.CallsTo("stable_token"); n != 1 {
			t.Errorf("stable_token calls = %d for 40 requests on 2 instances, want 1", n)
		}
		// A third instance started later reads the shared token, without a call.
		if tok, err := f.instance().Token(context.Background()); err != nil || tok != tokens[0] {
			t.Errorf("a new instance: %q, %v", tok, err)
		}
		if n := f.fake.CallsTo("stable_token"); n != 1 {
			t.Errorf("stable_token calls = %d after a new instance, want 1", n)
		}
	})
}

func TestRefreshAheadOfExpiry(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		first, _ := m.Token(context.Background())
		f.clock.Advance(2*time.Hour - 10*time.Second) // past the refresh point, seconds from expiry
		// The token still works: it comes back at once, and the refresh runs behind.
		if got, err := m.Token(context.Background()); err != nil || got != first {
			t.Fatalf("near expiry: %q, %v; want the still-working token at once", got, err)
		}
		waitFor(t, "the background refresh", func() bool { return f.fake.CallsTo("stable_token") == 2 })
		f.clock.Advance(20 * time.Second) // the first token has expired at WeChat
		third, _ := m.Token(context.Background())
		if third == first {
			t.Error("still handing out a token past its expiry")
		}
		for range 10 {
			m.Token(context.Background())
		}
		if n := f.fake.CallsTo("stable_token"); n > 3 {
			t.Errorf("%d stable_token calls: refreshing on every call near expiry", n)
		}
	})
}

func TestRejectedTokenIsRefreshedOnceAndRetriedOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		a, other := f.instance(), f.instance()
		old, _ := a.Token(context.Background())
		f.fake.InvalidateAccessTokens() // another server forced a refresh
		var used []string
		err := a.Do(context.Background(), func(tok string) error {
			used = append(used, tok)
			return f.client.CheckSessionKey(context.Background(), tok, "o-nobody", "AAAAAAAAAAAAAAAAAAAAAA==")
		})
		if len(used) != 2 || used[0] != old || used[1] == old {
			t.Errorf("tokens used = %d (%v), want the old one, then a new one", len(used), used[0] == old)
		}
		if errors.Is(err, wechat.ErrAccessToken) {
			t.Errorf("after one refresh: %v, want the call through with the new token", err)
		}
		// The other instance picks up the new token from the database, with no call.
		calls := f.fake.CallsTo("stable_token")
		if tok, _ := other.Token(context.Background()); tok != used[1] {
			t.Error("the other instance does not share the refreshed token")
		}
		if f.fake.CallsTo("stable_token") != calls {
			t.Error("the other instance made its own token call")
		}

		// A token that keeps failing is retried once only.
		n := 0
		err = a.Do(context.Background(), func(string) error { n++; return wechat.ErrAccessToken })
		if n != 2 || !errors.Is(err, wechat.ErrAccessToken) {
			t.Errorf("always rejected: %d calls, %v; want 2 and the error", n, err)
		}
	})
}

func TestTokenStaysOutOfLogsAndDatabase(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		tok, err := f.instance().Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		row := f.db.AccessToken.Query().OnlyX(context.Background())
		if bytes.Contains(row.Token, []byte(tok)) {
			t.Error("the database holds the token in plain form")
		}
		if bytes.Contains([]byte(f.logs.String()), []byte(tok)) || bytes.Contains([]byte(f.logs.String()), []byte(secret)) {
			t.Error("the log holds the token or the secret")
		}
	})
}

// waitFor waits, boundedly, for something the code under test does in the background.
func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
	}
}

// TestOneCallerGivingUpDoesNotFailOthers: the refresh is not tied to the request that
// started it.
func TestOneCallerGivingUpDoesNotFailOthers(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		f.fake.InjectFaultFor("stable_token", fakewechat.FaultSlow, 1)
		impatient, cancel := context.WithCancel(context.Background())
		cancel() // gone before the refresh could finish
		if _, err := m.Token(impatient); err == nil {
			t.Error("a caller that gave up got a token")
		}
		if tok, err := m.Token(context.Background()); err != nil || tok == "" {
			t.Errorf("a patient caller after an impatient one: %q, %v", tok, err)
		}
	})
}

// TestFailingRefreshKeepsTheWorkingToken: when WeChat fails near expiry, callers keep
// the token that still works, without waiting and without asking on every call.
func TestFailingRefreshKeepsTheWorkingToken(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		f := newFixture(t, b)
		m := f.instance()
		first, _ := m.Token(context.Background())
		f.fake.InjectFaultFor("stable_token", fakewechat.FaultHTML502, -1)
		f.clock.Advance(2*time.Hour - 3*time.Minute)
		for range 20 {
			if got, err := m.Token(context.Background()); err != nil || got != first {
				t.Fatalf("with WeChat failing: %q, %v; want the working token", got, err)
			}
		}
		waitFor(t, "the failed refresh", func() bool { return f.fake.CallsTo("stable_token") >= 2 })
		time.Sleep(50 * time.Millisecond) // let any wrongly repeated refresh start
		for range 20 {
			m.Token(context.Background())
		}
		if n := f.fake.CallsTo("stable_token"); n > 3 {
			t.Errorf("%d stable_token calls: a failing WeChat is asked on every call", n)
		}
	})
}
