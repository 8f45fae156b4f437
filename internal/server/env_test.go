package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/accesstoken"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/capture"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/metrics"
	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/profile"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/server"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/verify"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

const (
	testAppID  = "wxtestapp0000001"
	testSecret = "test-app-secret-9f3b1c"
	// A second mini-program of the same Open Platform account, for tests that ask.
	testAppID2  = "wxtestapp0000002"
	testSecret2 = "test-app-secret-2-d41e"
	// contractBound is the contract's promise: a login answers within 10 s.
	contractBound = 10 * time.Second
)

// env is wxlogin running over real HTTP against a fake WeChat over real HTTP, on a
// real database, with its log captured.
type env struct {
	t         testing.TB
	db        *database.DB
	fake      *fakewechat.Server
	wechatLog *recorder // every answer the fake sent, to know the session_keys
	logs      *capture.Buffer
	clock     *clock
	fakeClock *clock
	secretKey []byte
	wcfg      wechat.Config
	fakeOpts  fakewechat.Options
	// second is the second mini-program's fake WeChat, when withSecondApp asked for it.
	second    *fakewechat.Server
	secondURL string
	// api, playground and cors are the HTTP edge's switches; newEnv turns the first
	// two on, as in dev mode.
	api        graph.Options
	playground bool
	cors       []string
	// loginTimeout, policy and trusted are the auth service's; zero values are its
	// defaults.
	loginTimeout time.Duration
	policy       auth.Policy
	trusted      []netip.Prefix
	// pushToken and pushKey receive WeChat's pushes (withPush).
	pushToken string
	pushKey   []byte
	// introspection is /oauth/introspect's clients and limits.
	introspection server.Introspection
	instances     []*httptest.Server
	handlers      []http.Handler // each instance's handler, for benchmarks that skip the network
	services      []*auth.Service
	// productionLog logs as the server does in production (JSON at Info) into
	// io.Discard, for benchmarks; tests capture every line at Debug instead.
	productionLog bool
	client        *http.Client
}

type envOption func(*env)

// withFake adjusts the fake WeChat's options.
func withFake(f func(*fakewechat.Options)) envOption { return func(e *env) { f(&e.fakeOpts) } }

// withSecondApp serves a second mini-program, with a fake WeChat of its own.
func withSecondApp() envOption {
	return func(e *env) {
		e.second = fakewechat.New(fakewechat.Options{AppID: testAppID2, Secret: testSecret2, Now: e.fakeClock.Now})
	}
}

// withDB serves from db, opened by the test, instead of a fresh database of the backend.
func withDB(db *database.DB) envOption { return func(e *env) { e.db = db } }

// withIntrospection serves /oauth/introspect to the clients, each limited to perMinute
// requests with bursts of burst.
func withIntrospection(perMinute, burst int, clients ...verify.Client) envOption {
	return func(e *env) {
		e.introspection = server.Introspection{Clients: clients, PerMinute: perMinute, Burst: burst, Now: e.clock.Now}
	}
}

// withWeChat adjusts the WeChat client's configuration.
func withWeChat(f func(*wechat.Config)) envOption { return func(e *env) { f(&e.wcfg) } }

func newEnv(t testing.TB, b testdb.Backend, opts ...envOption) *env {
	t.Helper()
	e := &env{
		t:          t,
		logs:       &capture.Buffer{},
		clock:      newClock(),
		fakeClock:  newClock(),
		secretKey:  bytes.Repeat([]byte{7}, 32),
		client:     &http.Client{Timeout: contractBound},
		api:        graph.Options{Introspection: true, Suggestions: true},
		playground: true,
	}
	e.fakeOpts = fakewechat.Options{AppID: testAppID, Secret: testSecret, Now: e.fakeClock.Now, SlowDelay: 50 * time.Millisecond}
	// Short timeouts keep fault tests quick; TestHangWithDefaultTimeouts checks the
	// production defaults against the contract's bound.
	e.wcfg = wechat.Config{
		AppID: testAppID, Secret: testSecret,
		AttemptTimeout: 300 * time.Millisecond, Deadline: 1200 * time.Millisecond, RetryBackoff: 5 * time.Millisecond,
	}
	for _, o := range opts {
		o(e)
	}
	if e.db == nil {
		e.db = b.Open(t)
	}
	t.Cleanup(func() {
		// A failed test shows the server's errors, which say why better than a code.
		if t.Failed() {
			for line := range strings.Lines(e.logs.String()) {
				if strings.Contains(line, `"level":"ERROR"`) {
					t.Log(strings.TrimSpace(line))
				}
			}
		}
	})
	e.fake = fakewechat.New(e.fakeOpts)
	e.wechatLog = &recorder{next: e.fake}
	fakeSrv := httptest.NewServer(e.wechatLog)
	t.Cleanup(func() { e.fake.Close(); fakeSrv.Close() })
	e.wcfg.BaseURL = fakeSrv.URL
	if e.second != nil {
		secondSrv := httptest.NewServer(e.second)
		t.Cleanup(func() { e.second.Close(); secondSrv.Close() })
		e.secondURL = secondSrv.URL
	}
	e.addInstance()
	return e
}

func (e *env) logger() *slog.Logger {
	if e.productionLog {
		return slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil)))
	}
	return slog.New(server.LogHandler(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// addInstance starts one more wxlogin instance on the same database and key.
func (e *env) addInstance() *httptest.Server {
	e.t.Helper()
	ring, err := seal.NewKeyring(e.secretKey)
	if err != nil {
		e.t.Fatal(err)
	}
	// The main app, then the second when the test asked for one: each with its own
	// client and its own access token.
	configs := []wechat.Config{e.wcfg}
	if e.second != nil {
		second := e.wcfg
		second.BaseURL, second.AppID, second.Secret = e.secondURL, testAppID2, testSecret2
		configs = append(configs, second)
	}
	meter := metrics.New()
	meter.Database("wxlogin", e.db.SQL)
	for _, op := range persisted.Builtin().Operations {
		meter.KnownOperations(op.Name)
	}
	var platform []wxapp.App
	for _, cfg := range configs {
		cfg.Logger = e.logger()
		cfg.Observe = meter.WeChat
		cfg.Now = e.clock.Now
		wc, err := wechat.New(cfg)
		if err != nil {
			e.t.Fatal(err)
		}
		tokens := accesstoken.New(accesstoken.Options{DB: e.db, Source: wc, Keyring: ring, Now: e.clock.Now, Logger: e.logger()})
		platform = append(platform, wxapp.App{Client: wc, Tokens: tokens})
	}
	svc, err := auth.New(auth.Options{
		DB: e.db, Apps: platform, Keyring: ring, Policy: e.policy, TrustedProxies: e.trusted,
		LoginTimeout: e.loginTimeout, Now: e.clock.Now, Logger: e.logger(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	phones := phone.New(phone.Options{DB: e.db, Apps: platform, Keyring: ring, Now: e.clock.Now, Logger: e.logger()})
	openData := opendata.New(opendata.Options{Apps: platform, Keyring: ring, Now: e.clock.Now, Logger: e.logger()})
	h := server.New(server.Options{
		Auth: svc, Profile: profile.New(e.db.Client), Phone: phones, OpenData: openData, DB: e.db, Ent: e.db.Client, Metrics: meter, Logger: e.logger(),
		API: e.api, Playground: e.playground, CORSOrigins: e.cors, Introspection: e.introspection,
		PushToken: e.pushToken, PushAESKey: e.pushKey, Now: e.clock.Now,
	})
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	e.instances = append(e.instances, srv)
	e.handlers = append(e.handlers, h)
	e.services = append(e.services, svc)
	return srv
}

// gqlResult is a GraphQL response as a client reads it.
type gqlResult struct {
	Status int
	Data   map[string]json.RawMessage
	Errors []gqlError
	Header http.Header
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the first error's extensions.code, or "" when there is no error.
func (r gqlResult) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// post sends a GraphQL document to instance i as a mini-program would.
func (e *env) post(i int, token, query string, vars map[string]any) gqlResult {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.instances[i].URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 MicroMessenger/8.0.50 miniProgram")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) gqlResult {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Errorf("%s %s: %v (the contract bounds a login at %s)", req.Method, req.URL.Path, err, contractBound)
		return gqlResult{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r gqlResult
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Errorf("response is not JSON (status %d): %s", resp.StatusCode, raw)
	}
	r.Status, r.Header = resp.StatusCode, resp.Header
	if r.Status >= 500 {
		e.t.Errorf("status %d: %s", r.Status, raw)
	}
	return r
}

const loginMutation = `mutation Login($code: String!) {
  login(code: $code) { token expiresAt isNewUser user { id openid unionid createdAt lastLoginAt } }
}`

type loginPayload struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	IsNewUser bool      `json:"isNewUser"`
	User      user      `json:"user"`
}

type user struct {
	ID          string    `json:"id"`
	Openid      string    `json:"openid"`
	Unionid     *string   `json:"unionid"`
	CreatedAt   time.Time `json:"createdAt"`
	LastLoginAt time.Time `json:"lastLoginAt"`
}

// login logs in on instance i; on an error it returns the error's code.
func (e *env) login(i int, code string) (loginPayload, string) {
	e.t.Helper()
	r := e.post(i, "", loginMutation, map[string]any{"code": code})
	if c := r.Code(); c != "" {
		if r.Data != nil && string(r.Data["login"]) != "" && string(r.Data["login"]) != "null" {
			e.t.Errorf("an error response carries login data: %s", r.Data["login"])
		}
		return loginPayload{}, c
	}
	var p loginPayload
	if err := json.Unmarshal(r.Data["login"], &p); err != nil {
		e.t.Fatalf("login payload: %v", err)
	}
	return p, ""
}

// mustLogin logs in and fails the test on an error.
func (e *env) mustLogin(i int, code string) loginPayload {
	e.t.Helper()
	p, c := e.login(i, code)
	if c != "" {
		e.t.Fatalf("login failed with %s", c)
	}
	return p
}

// me asks who the token belongs to; on an error it returns the error's code.
func (e *env) me(i int, token string) (user, string) {
	e.t.Helper()
	r := e.post(i, token, `{ me { id openid unionid createdAt lastLoginAt } }`, nil)
	if c := r.Code(); c != "" {
		return user{}, c
	}
	var u user
	if err := json.Unmarshal(r.Data["me"], &u); err != nil {
		e.t.Fatalf("me payload: %v", err)
	}
	return u, ""
}

// count returns the number of rows in each of wxlogin's tables.
func (e *env) count() map[string]int {
	e.t.Helper()
	ctx := context.Background()
	return map[string]int{
		"users":       e.db.User.Query().CountX(ctx),
		"identities":  e.db.Identity.Query().CountX(ctx),
		"sessions":    e.db.Session.Query().CountX(ctx),
		"login_codes": e.db.LoginCode.Query().CountX(ctx),
	}
}

// assertNothingLeft checks what a failed login may leave: no user, identity or
// session, and no code record that could log anyone in. The only row allowed is a
// failed-code marker, which ends within 10 s and is then purged.
func (e *env) assertNothingLeft(after string) {
	e.t.Helper()
	ctx := context.Background()
	for table, n := range e.count() {
		if table != "login_codes" && n != 0 {
			e.t.Errorf("%d rows left in %s after %s", n, table, after)
		}
	}
	for _, rec := range e.db.LoginCode.Query().AllX(ctx) {
		if rec.State != logincode.StateFailed || rec.ExpiresAt.After(e.clock.Now().Add(10*time.Second)) {
			e.t.Errorf("login code row left after %s: state %s, expires %s", after, rec.State, rec.ExpiresAt)
		}
	}
	e.clock.Advance(11 * time.Second)
	if _, err := e.services[0].Purge(ctx); err != nil {
		e.t.Fatal(err)
	}
	if n := e.count()["login_codes"]; n != 0 {
		e.t.Errorf("%d login code rows left 11 s after %s and a purge", n, after)
	}
}

// sessionKeys returns every session_key the fake WeChat handed out.
func (e *env) sessionKeys() []string {
	var keys []string
	for _, body := range e.wechatLog.bodies() {
		var a struct {
			SessionKey string `json:"session_key"`
		}
		if json.Unmarshal(body, &a) == nil && a.SessionKey != "" {
			keys = append(keys, a.SessionKey)
		}
	}
	return keys
}

// recorder keeps every response body the fake WeChat sends.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	all  [][]byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := &teeWriter{ResponseWriter: w}
	r.next.ServeHTTP(rec, req)
	r.mu.Lock()
	r.all = append(r.all, rec.buf.Bytes())
	r.mu.Unlock()
}

func (r *recorder) bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.all...)
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	t.buf.Write(b)
	return t.ResponseWriter.Write(b)
}

func (t *teeWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// clock is a settable time source shared by the code under test: real time moved on
// by Advance, or, once frozen, a fixed instant moved only by Advance.
type clock struct {
	offset atomic.Int64
	frozen atomic.Int64 // UnixNano of the frozen instant; 0 when running
}

func newClock() *clock { return &clock{} }

func (c *clock) Now() time.Time {
	base := time.Now()
	if f := c.frozen.Load(); f != 0 {
		base = time.Unix(0, f)
	}
	return base.Add(time.Duration(c.offset.Load()))
}

func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Freeze stops the clock where it is, so that tests of rates do not depend on how fast
// the machine runs them.
func (c *clock) Freeze() { c.frozen.Store(time.Now().UnixNano()) }

// codes returns n fresh codes for one WeChat user.
func (e *env) codes(n int, u fakewechat.User) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = e.fake.IssueCode(u)
	}
	return out
}

func strOrNil(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func newGraphQLRequest(e *env, doc string) *http.Request {
	body, _ := json.Marshal(map[string]any{"query": doc})
	req, _ := http.NewRequest(http.MethodPost, e.instances[0].URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func jsonUnmarshal(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
