package fakewechat_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/capture"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

const (
	appID  = "wxfake0123456789"
	secret = "fake-secret-never-logged-0a1b2c3d"
)

var ridSuffix = regexp.MustCompile(`, rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)

// clock is a test clock the fake reads through Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	fake  *fakewechat.Server
	url   string
	clock *clock
	logs  *capture.Buffer
	// secrets collects what the fake's log must never show.
	secrets []string
}

func newFixture(t *testing.T, opts ...func(*fakewechat.Options)) *fixture {
	t.Helper()
	f := &fixture{
		clock:   &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		logs:    &capture.Buffer{},
		secrets: []string{secret},
	}
	o := fakewechat.Options{
		AppID:     appID,
		Secret:    secret,
		Now:       f.clock.Now,
		SlowDelay: 20 * time.Millisecond,
		Logger:    slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&o)
	}
	f.fake = fakewechat.New(o)
	ts := httptest.NewServer(f.fake)
	f.url = ts.URL
	t.Cleanup(func() {
		f.fake.Close()
		ts.Close()
		out := f.logs.String()
		for _, s := range f.secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the fake's log contains %q:\n%s", s, out)
			}
		}
	})
	return f
}

// answer is jscode2session's JSON.
type answer struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
}

// exchange calls jscode2session with the right appid and secret unless
// params overrides them.
func (f *fixture) exchange(t *testing.T, code string, params ...string) answer {
	t.Helper()
	f.secrets = append(f.secrets, code)
	q := url.Values{"appid": {appID}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] == "" {
			q.Del(params[i])
		} else {
			q.Set(params[i], params[i+1])
		}
	}
	status, body := get(t, f.url+"/sns/jscode2session?"+q.Encode())
	if status != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200: %s", status, body)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	if a.Errcode != 0 && !ridSuffix.MatchString(a.Errmsg) {
		t.Errorf("errmsg %q does not end with a rid", a.Errmsg)
	}
	f.secrets = append(f.secrets, a.SessionKey)
	return a
}

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, body
}

func TestIssuedCodeIsSingleUse(t *testing.T) {
	f := newFixture(t)
	u := fakewechat.User{OpenID: "o-alice", UnionID: "u-alice"}
	code := f.fake.IssueCode(u)
	if len(code) != 32 || strings.TrimFunc(code, func(r rune) bool { return r > ' ' && r < 0x7f }) != "" {
		t.Errorf("code %q is not 32 printable characters", code)
	}
	if a := f.exchange(t, code); a.Errcode != 0 || a.OpenID != u.OpenID || a.UnionID != u.UnionID || a.SessionKey == "" {
		t.Fatalf("first use: %+v", a)
	}
	if a := f.exchange(t, code); a.Errcode != 40163 {
		t.Errorf("second use: %+v, want errcode 40163", a)
	}
	if other := f.fake.IssueCode(u); other == code {
		t.Error("IssueCode gave the same code twice")
	}
	if n := f.fake.Calls(); n != 2 {
		t.Errorf("Calls() = %d, want 2", n)
	}
}

func TestNoUnionIDIsOmitted(t *testing.T) {
	f := newFixture(t)
	code := f.fake.IssueCode(fakewechat.User{OpenID: "o-lonely"})
	f.secrets = append(f.secrets, code)
	_, body := get(t, f.url+"/sns/jscode2session?"+url.Values{"appid": {appID}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}.Encode())
	if bytes.Contains(body, []byte("unionid")) || !bytes.Contains(body, []byte(`"openid":"o-lonely"`)) {
		t.Errorf("body %s: want openid and no unionid", body)
	}
}

func TestCodeExpires(t *testing.T) {
	f := newFixture(t)
	u := fakewechat.User{OpenID: "o-bob"}
	fresh, stale := f.fake.IssueCode(u), f.fake.IssueCode(u)
	f.clock.Advance(5*time.Minute - time.Second)
	if a := f.exchange(t, fresh); a.Errcode != 0 {
		t.Errorf("code used just inside its 5 minutes: %+v", a)
	}
	f.clock.Advance(time.Second)
	if a := f.exchange(t, stale); a.Errcode != 40029 {
		t.Errorf("code used after 5 minutes: %+v, want errcode 40029", a)
	}
}

func TestUnknownCodes(t *testing.T) {
	f := newFixture(t)
	for _, code := range []string{"0a3bCdEfGhIjKlMnOpQrStUvWxYz0123", "dev-", "dev-Alice", "dev-" + strings.Repeat("a", 33), "fault-nope"} {
		if a := f.exchange(t, code); a.Errcode != 40029 {
			t.Errorf("code %q: %+v, want errcode 40029", code, a)
		}
	}
}

func TestDevCodes(t *testing.T) {
	f := newFixture(t)
	first := f.exchange(t, "dev-alice")
	second := f.exchange(t, "dev-alice")
	for _, a := range []answer{first, second} {
		if a.Errcode != 0 || a.OpenID != fakewechat.OpenIDFor(appID, "alice") || a.UnionID != fakewechat.UnionIDFor("alice") {
			t.Fatalf("dev-alice: %+v", a)
		}
	}
	if first.SessionKey == second.SessionKey {
		t.Error("two exchanges gave the same session_key")
	}
	for _, k := range []string{first.SessionKey, second.SessionKey} {
		if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 16 {
			t.Errorf("session_key %q is not base64 of 16 bytes", k)
		}
	}

	openid := fakewechat.OpenIDFor(appID, "alice")
	if len(openid) != 28 || openid[0] != 'o' || openid != fakewechat.OpenIDFor(appID, "alice") {
		t.Errorf("OpenIDFor = %q: want 28 characters starting with o, the same every time", openid)
	}
	if openid == fakewechat.OpenIDFor("wxother", "alice") || openid == fakewechat.OpenIDFor(appID, "bob") {
		t.Error("OpenIDFor must differ across apps and names")
	}
	if fakewechat.UnionIDFor("alice") == fakewechat.UnionIDFor("bob") || fakewechat.UnionIDFor("alice") == openid {
		t.Error("UnionIDFor must differ across names and from the openid")
	}
}

func TestRequestChecks(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name    string
		params  []string
		errcode int
	}{
		{"wrong appid", []string{"appid", "wxsomeoneelse"}, 40013},
		{"no appid", []string{"appid", ""}, 40013},
		{"wrong secret", []string{"secret", "not-" + secret}, 40125},
		{"wrong grant_type", []string{"grant_type", "client_credential"}, 40002},
		{"missing code", []string{"js_code", ""}, 41008},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := f.fake.IssueCode(fakewechat.User{OpenID: "o-carol"})
			if a := f.exchange(t, code, tc.params...); a.Errcode != tc.errcode {
				t.Errorf("%+v, want errcode %d", a, tc.errcode)
			}
		})
	}
}

func TestWxLoginEndpoint(t *testing.T) {
	f := newFixture(t)
	mint := func(query string) (int, string) {
		status, body := get(t, f.url+"/fake/wx.login?"+query)
		var v struct{ Code string }
		json.Unmarshal(body, &v)
		f.secrets = append(f.secrets, v.Code)
		return status, v.Code
	}

	status, code := mint("user=dave")
	if status != http.StatusOK || code == "" {
		t.Fatalf("user=dave: status %d code %q", status, code)
	}
	if a := f.exchange(t, code); a.OpenID != fakewechat.OpenIDFor(appID, "dave") || a.UnionID != fakewechat.UnionIDFor("dave") {
		t.Errorf("minted code for dave logs in as %+v", a)
	}
	if a := f.exchange(t, code); a.Errcode != 40163 {
		t.Errorf("minted code reused: %+v, want 40163", a)
	}

	_, code = mint("openid=o-erin&unionid=u-erin")
	if a := f.exchange(t, code); a.OpenID != "o-erin" || a.UnionID != "u-erin" {
		t.Errorf("minted code for o-erin logs in as %+v", a)
	}

	for _, bad := range []string{"", "user=Not%20Valid", "user=a&openid=b"} {
		if status, _ := mint(bad); status != http.StatusBadRequest {
			t.Errorf("?%s: status %d, want 400", bad, status)
		}
	}
}

func TestInjectFault(t *testing.T) {
	f := newFixture(t)
	code := f.fake.IssueCode(fakewechat.User{OpenID: "o-frank"})

	f.fake.InjectFault(fakewechat.FaultBusy, 2)
	for i := range 2 {
		if a := f.exchange(t, code); a.Errcode != -1 {
			t.Fatalf("request %d: %+v, want errcode -1", i+1, a)
		}
	}
	if a := f.exchange(t, code); a.Errcode != 0 || a.OpenID != "o-frank" {
		t.Fatalf("after 2 busy answers, the code (not consumed by them) should work: %+v", a)
	}

	f.fake.InjectFault(fakewechat.FaultRateLimit, -1)
	for range 3 {
		if a := f.exchange(t, "dev-frank"); a.Errcode != 45011 {
			t.Fatalf("%+v, want errcode 45011 until cleared", a)
		}
	}
	// An injected fault takes precedence over a fault code.
	if a := f.exchange(t, "fault-risky"); a.Errcode != 45011 {
		t.Errorf("fault-risky under an injected rate limit: %+v, want 45011", a)
	}
	f.fake.InjectFault(fakewechat.FaultNone, 0)
	if a := f.exchange(t, "dev-frank"); a.Errcode != 0 {
		t.Errorf("after clearing: %+v", a)
	}
	if n := f.fake.Calls(); n != 8 {
		t.Errorf("Calls() = %d, want 8", n)
	}
}

func TestFaultCodes(t *testing.T) {
	f := newFixture(t)
	for code, errcode := range map[string]int{"fault-busy": -1, "fault-ratelimit": 45011, "fault-risky": 40226} {
		for range 2 {
			if a := f.exchange(t, code); a.Errcode != errcode {
				t.Errorf("%s: %+v, want errcode %d", code, a, errcode)
			}
		}
	}
	if a := f.exchange(t, "fault-slow"); a.Errcode != 0 || a.OpenID != fakewechat.OpenIDFor(appID, "fault-slow") {
		t.Errorf("fault-slow should answer normally: %+v", a)
	}

	q := url.Values{"appid": {appID}, "secret": {secret}, "grant_type": {"authorization_code"}}
	q.Set("js_code", "fault-html502")
	resp, err := http.Get(f.url + "/sns/jscode2session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("<html>")) {
		t.Errorf("fault-html502: status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	q.Set("js_code", "fault-truncated")
	status, body := get(t, f.url+"/sns/jscode2session?"+q.Encode())
	if status != http.StatusOK || json.Valid(body) || !bytes.HasPrefix(body, []byte(`{"openid":`)) {
		t.Errorf("fault-truncated: status %d, body %s: want 200 and the start of a success JSON", status, body)
	}

	for _, fault := range []fakewechat.Fault{fakewechat.FaultNone, fakewechat.FaultBusy, fakewechat.FaultRateLimit, fakewechat.FaultRiskyUser,
		fakewechat.FaultSlow, fakewechat.FaultHTML502, fakewechat.FaultTruncatedJSON, fakewechat.FaultHang} {
		if want := map[fakewechat.Fault]string{
			fakewechat.FaultNone: "none", fakewechat.FaultBusy: "busy", fakewechat.FaultRateLimit: "ratelimit",
			fakewechat.FaultRiskyUser: "risky", fakewechat.FaultSlow: "slow", fakewechat.FaultHTML502: "html502",
			fakewechat.FaultTruncatedJSON: "truncated", fakewechat.FaultHang: "hang",
		}[fault]; fault.String() != want {
			t.Errorf("Fault(%d).String() = %q, want %q", int(fault), fault.String(), want)
		}
	}
}

func TestHangUntilClosed(t *testing.T) {
	fake := fakewechat.New(fakewechat.Options{AppID: appID, Secret: secret})
	arrived := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		fake.ServeHTTP(w, r)
	}))
	defer ts.Close()

	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(ts.URL + "/sns/jscode2session?" + url.Values{"appid": {appID}, "secret": {secret}, "js_code": {"fault-hang"}, "grant_type": {"authorization_code"}}.Encode())
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-arrived
	select {
	case <-done:
		t.Fatal("a hanging request answered before Close")
	default:
	}
	fake.Close()
	if status := <-done; status == http.StatusOK {
		t.Errorf("a request released by Close answered %d, want an error status", status)
	}
}

// announceWriter records Run's output and tells when it was first written.
type announceWriter struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
	once    sync.Once
}

func (a *announceWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.once.Do(func() { close(a.written) })
	return a.b.Write(p)
}

func (a *announceWriter) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.String()
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &announceWriter{written: make(chan struct{})}
	ran := make(chan error, 1)
	go func() {
		ran <- fakewechat.Run(ctx, "127.0.0.1:0", fakewechat.Options{AppID: appID, Secret: secret}, out)
	}()

	select {
	case <-out.written:
	case err := <-ran:
		t.Fatalf("Run returned at once: %v", err)
	}
	help := out.String()
	base := strings.TrimPrefix(strings.TrimSpace(firstLine(help)), "fake WeChat API listening on ")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("no base URL in the first line of:\n%s", help)
	}
	for _, want := range []string{appID, secret, "/fake/wx.login?user=", "dev-<name>", "fault-busy", "/fake/phonecode?openid=", "/cgi-bin/stable_token", "/wxa/checksession"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}

	status, body := get(t, base+"/fake/wx.login?user=gina")
	var minted struct{ Code string }
	if err := json.Unmarshal(body, &minted); status != http.StatusOK || err != nil || minted.Code == "" {
		t.Fatalf("wx.login: %d %s", status, body)
	}
	_, body = get(t, base+"/sns/jscode2session?"+url.Values{"appid": {appID}, "secret": {secret}, "js_code": {minted.Code}, "grant_type": {"authorization_code"}}.Encode())
	var a answer
	if err := json.Unmarshal(body, &a); err != nil || a.OpenID != fakewechat.OpenIDFor(appID, "gina") {
		t.Fatalf("exchange: %s", body)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if _, err := http.Get(base + "/fake/wx.login?user=gina"); err == nil {
		t.Error("the fake still answers after Run returned")
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	err := fakewechat.Run(context.Background(), "127.0.0.1:0", fakewechat.Options{AppID: appID}, io.Discard)
	if err == nil {
		t.Fatal("Run without a secret: want an error")
	}
	if err := fakewechat.Run(context.Background(), "not an address", fakewechat.Options{AppID: appID, Secret: secret}, io.Discard); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a bad address: %v, want a listen error", err)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
