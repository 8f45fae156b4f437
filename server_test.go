package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/capture"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// started runs serve in the background and waits for it to listen.
type started struct {
	base   string
	token  string // the last login's, for tests that log in and go on
	stderr *capture.Buffer
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, vars map[string]string) *started {
	t.Helper()
	vars["WXLOGIN_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{stderr: &capture.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- serve(ctx, func(k string) string { return vars[k] }, s.stderr) }()
	listen := regexp.MustCompile(`listen"?[=:]"?(127\.0\.0\.1:\d+)`) // text in dev mode, JSON otherwise
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listen.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = "http://" + m[1]
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve returned before listening: %v\n%s", err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start listening:\n%s", s.stderr)
		}
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends what SIGTERM sends and expects a clean exit.
func (s *started) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		t.Errorf("serve after the signal: %v, want a clean exit", err)
	}
}

// testSecretKey is the WXLOGIN_SECRET_KEY of the configured servers the tests start.
const testSecretKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// configured is a fake WeChat for the app in o, serving until the test ends, and the
// settings of a server configured for it (not in dev mode) on the database dbURL.
func configured(t *testing.T, dbURL string, o fakewechat.Options) (*fakewechat.Server, map[string]string) {
	t.Helper()
	fake := fakewechat.New(o)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, map[string]string{
		"WECHAT_APPID": o.AppID, "WECHAT_SECRET": o.Secret, "WECHAT_API_BASE": srv.URL,
		"WXLOGIN_SECRET_KEY": testSecretKey, "WXLOGIN_DATABASE_URL": dbURL,
	}
}

func (s *started) graphql(t *testing.T, token, doc string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": doc})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestDevModeWithNothingConfigured(t *testing.T) {
	t.Chdir(t.TempDir())
	s := start(t, map[string]string{})
	out := s.stderr.String()
	for _, want := range []string{"DEV MODE", "dev-alice", "/graphql", "playground"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev-mode banner lacks %q:\n%s", want, out)
		}
	}
	login := s.graphql(t, "", `mutation { login(code: "dev-alice") { token isNewUser user { id openid } } }`)
	token, _ := dig(login, "data", "login", "token").(string)
	if token == "" || dig(login, "data", "login", "user", "openid") != fakewechat.OpenIDFor("wxdevfake0000001", "alice") {
		t.Fatalf("dev login = %v", login)
	}
	me := s.graphql(t, token, `{ me { openid } }`)
	if dig(me, "data", "me", "openid") != fakewechat.OpenIDFor("wxdevfake0000001", "alice") {
		t.Errorf("me = %v", me)
	}
	if dig(login, "data", "login", "isNewUser") != true {
		t.Errorf("first dev-alice login = %v, want isNewUser", login)
	}
	// dev-alice works again and again, as a fresh wx.login code does: the same dev user,
	// returning, past the bound on logins per code; dev-bob is somebody else.
	userID := dig(login, "data", "login", "user", "id")
	for i := range auth.MaxLoginsPerCode + 2 {
		again := s.graphql(t, "", `mutation { login(code: "dev-alice") { token isNewUser user { id } } }`)
		if dig(again, "data", "login", "token") == token || dig(again, "data", "login", "user", "id") != userID || dig(again, "data", "login", "isNewUser") != false {
			t.Errorf("dev-alice login %d = %v, want a new session for returning user %v", i+2, again, userID)
		}
	}
	// A phone code from the dev fake, through wxlogin's own /dev/fake route.
	resp, err := http.Get(s.base + "/dev/fake/phonecode?openid=" + fakewechat.OpenIDFor("wxdevfake0000001", "alice") + "&phone=13800000000")
	if err != nil {
		t.Fatal(err)
	}
	var minted struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	bound := s.graphql(t, token, `mutation { bindPhoneNumber(code: "`+minted.Code+`") { phoneNumber } }`)
	if dig(bound, "data", "bindPhoneNumber", "phoneNumber") != "+8613800000000" {
		t.Errorf("dev phone binding = %v", bound)
	}
	bob := s.graphql(t, "", `mutation { login(code: "dev-bob") { isNewUser user { id } } }`)
	if dig(bob, "data", "login", "isNewUser") != true || dig(bob, "data", "login", "user", "id") == userID {
		t.Errorf("dev-bob login = %v, want a new user other than alice", bob)
	}
	s.stop(t)
	if _, err := os.Stat("wxlogin.db"); err != nil {
		t.Errorf("dev mode did not keep its SQLite file in the working folder: %v", err)
	}
}

func TestConfiguredServerMigratesAndLogsIn(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		fake, vars := configured(t, b.URL(t), fakewechat.Options{AppID: "wxprod0000000001", Secret: "prod-secret"})
		var token string
		for round := range 2 { // the second start finds the schema in place
			s := start(t, vars)
			if strings.Contains(s.stderr.String(), "DEV MODE") {
				t.Error("configured server says it is in dev mode")
			}
			if first := strings.SplitN(s.stderr.String(), "\n", 2)[0]; !json.Valid([]byte(first)) {
				t.Errorf("outside dev mode the log is not JSON: %s", first)
			}
			// Durations as people write them, not nanoseconds.
			for line := range strings.Lines(s.stderr.String()) {
				var l struct {
					Msg    string
					Config struct {
						SessionTTL any `json:"session_ttl"`
					}
				}
				if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "wxlogin serving" && l.Config.SessionTTL != "720h0m0s" {
					t.Errorf("the start-up line has session_ttl %v, want \"720h0m0s\"", l.Config.SessionTTL)
				}
			}
			code := fake.IssueCode(fakewechat.User{OpenID: "oProd000000000000000000000001"})
			login := s.graphql(t, "", `mutation { login(code: "`+code+`") { token isNewUser } }`)
			if got := dig(login, "data", "login", "isNewUser"); got != (round == 0) {
				t.Errorf("start %d: isNewUser = %v (%v)", round+1, got, login)
			}
			if round == 1 {
				// A token from before the restart still works.
				if me := s.graphql(t, token, `{ me { openid } }`); dig(me, "data", "me", "openid") == nil {
					t.Errorf("token from before the restart: %v", me)
				}
			}
			token, _ = dig(login, "data", "login", "token").(string)
			if round == 1 {
				// The number stored in the old form below was rewritten at start-up.
				waitFor(t, s.stderr, `"msg":"phone: stored numbers rewritten in E.164","rows":1`)
			}
			s.stop(t)
			if round == 0 {
				storeOldFormPhoneNumber(t, vars, "oProd000000000000000000000001", "13800000000")
			}
		}
		if got := storedPhoneNumber(t, vars, "oProd000000000000000000000001"); got != "+8613800000000" {
			t.Errorf("stored number after the second start = %q, want +8613800000000", got)
		}
	})
}

// storeOldFormPhoneNumber writes number into openid's user as an earlier version did:
// sealed as WeChat gave it.
func storeOldFormPhoneNumber(t *testing.T, vars map[string]string, openid, number string) {
	t.Helper()
	db, ring := openStore(t, vars)
	u := db.Identity.Query().Where(identity.Openid(openid)).OnlyX(context.Background()).QueryUser().OnlyX(context.Background())
	db.User.UpdateOne(u).SetPhoneNumber(ring.Seal([]byte(number), phone.Binding(u.ID))).ExecX(context.Background())
}

// storedPhoneNumber is the number sealed in openid's user row.
func storedPhoneNumber(t *testing.T, vars map[string]string, openid string) string {
	t.Helper()
	db, ring := openStore(t, vars)
	u := db.Identity.Query().Where(identity.Openid(openid)).OnlyX(context.Background()).QueryUser().OnlyX(context.Background())
	if u.PhoneNumber == nil {
		return ""
	}
	plain, err := ring.Open(*u.PhoneNumber, phone.Binding(u.ID))
	if err != nil {
		t.Fatal(err)
	}
	return string(plain)
}

func openStore(t *testing.T, vars map[string]string) (*database.DB, *seal.Keyring) {
	t.Helper()
	db, err := database.Open(context.Background(), vars["WXLOGIN_DATABASE_URL"], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := base64.StdEncoding.DecodeString(vars["WXLOGIN_SECRET_KEY"])
	ring, err := seal.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return db, ring
}

// waitFor waits for a log line holding want.
func waitFor(t *testing.T, logs *capture.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %s:\n%s", want, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDrainsInFlightLoginOnShutdown(t *testing.T) {
	fake, vars := configured(t, "sqlite://"+t.TempDir()+"/wxlogin.db", fakewechat.Options{AppID: "wxprod0000000001", Secret: "prod-secret", SlowDelay: 300 * time.Millisecond})
	s := start(t, vars)
	fake.InjectFault(fakewechat.FaultSlow, 1)
	code := fake.IssueCode(fakewechat.User{OpenID: "oDrain00000000000000000000001"})
	var login map[string]any
	var wg sync.WaitGroup
	wg.Go(func() { login = s.graphql(t, "", `mutation { login(code: "`+code+`") { token } }`) })
	for waited := time.Duration(0); fake.Calls() == 0; waited += 5 * time.Millisecond {
		if waited > 10*time.Second {
			t.Fatal("the login never reached WeChat")
		}
		time.Sleep(5 * time.Millisecond) // until the login is in flight, waiting on WeChat
	}
	s.stop(t)
	wg.Wait()
	if dig(login, "data", "login", "token") == nil {
		t.Errorf("the in-flight login was cut off by shutdown: %v", login)
	}
}

func TestRefusesToStartWithBadConfig(t *testing.T) {
	var stderr capture.Buffer
	err := serve(context.Background(), func(k string) string {
		return map[string]string{"WECHAT_APPID": "wx1", "WXLOGIN_SECRET_KEY": "short"}[k]
	}, &stderr)
	if err == nil {
		t.Fatal("serve started with an appid, no secret and a bad key")
	}
	for _, want := range []string{"WECHAT_SECRET", "WXLOGIN_SECRET_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start-up error %q does not name %s", err, want)
		}
	}
}

// What a client sends is clipped before it is logged, and headers are bounded: a
// 60 KiB User-Agent on a login and a logout-all, and a 20 KiB path, leave lines of a
// few hundred bytes; a 1 MiB header is refused before anything reads it.
func TestClientFieldsAreClippedInLogs(t *testing.T) {
	t.Chdir(t.TempDir())
	s := start(t, map[string]string{})
	send := func(method, path, ua, token, doc string) int {
		t.Helper()
		var body *strings.Reader
		if doc != "" {
			b, _ := json.Marshal(map[string]string{"query": doc})
			body = strings.NewReader(string(b))
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, s.base+path, body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", ua)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if doc != "" && out["errors"] != nil {
			t.Errorf("%s: %v", doc, out["errors"])
		}
		if tok, ok := dig(out, "data", "login", "token").(string); ok {
			s.token = tok
		}
		return resp.StatusCode
	}
	if code := send(http.MethodGet, "/healthz", "big-header "+strings.Repeat("h", 1<<20), "", ""); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 1 MiB User-Agent: HTTP %d, want 431", code)
	}
	before := len(s.stderr.String())
	ua := "ua-" + strings.Repeat("u", 60<<10)
	send(http.MethodPost, "/graphql", ua, "", `mutation { login(code: "dev-alice") { token } }`)
	send(http.MethodPost, "/graphql", ua, s.token, `mutation { logoutAll(keepCurrent: true) }`)
	send(http.MethodGet, "/"+strings.Repeat("p", 20<<10), ua, "", "")
	logged := s.stderr.String()[before:]
	for _, run := range []string{strings.Repeat("u", 513), strings.Repeat("p", 257)} {
		if strings.Contains(logged, run) {
			t.Errorf("the log holds %d bytes of what the client sent in a row, want it clipped", len(run))
		}
	}
	if !strings.Contains(logged, "ua-uuu") || !strings.Contains(logged, "msg=audit") {
		t.Errorf("the log lacks the audit lines with the clipped User-Agent:\n%.2000s", logged)
	}
	// Three requests, each with an access line, and two audit lines: a few KiB,
	// where the requests carried 200 KiB.
	if len(logged) > 8<<10 {
		t.Errorf("three requests with 60 KiB User-Agents logged %d bytes, want under 8 KiB", len(logged))
	}
}

// With WXLOGIN_OPS_ADDR, /metrics is served only on the operators' listener; the
// probes answer on both.
func TestOpsListenerTakesMetrics(t *testing.T) {
	t.Chdir(t.TempDir())
	s := start(t, map[string]string{"WXLOGIN_OPS_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`msg="?ops serving"? addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no line says where the ops listener is:\n%s", s.stderr)
	}
	ops := "http://" + m[1]
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get(s.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("public /metrics: HTTP %d, want 404", code)
	}
	if code, body := get(ops + "/metrics"); code != http.StatusOK || !strings.Contains(body, "wxlogin_http_requests_total") {
		t.Errorf("ops /metrics: HTTP %d, want 200 with wxlogin's metrics", code)
	}
	for _, base := range []string{s.base, ops} {
		for _, probe := range []string{"/healthz", "/readyz"} {
			if code, _ := get(base + probe); code != http.StatusOK {
				t.Errorf("%s%s: HTTP %d, want 200", base, probe, code)
			}
		}
	}
	if code, _ := get(ops + "/graphql"); code != http.StatusNotFound {
		t.Errorf("ops /graphql: HTTP %d, want 404: the API is not on the operators' listener", code)
	}
}

// TestRefusesADatabaseURLThatChangesTheCharacterSet: a MySQL URL asking for another
// character set (in GBK or Big5 an escaped quote can end a string, and an avatar URL
// can carry a statement) stops start-up with a message naming the parameter and the
// ones that are accepted.
func TestRefusesADatabaseURLThatChangesTheCharacterSet(t *testing.T) {
	var mysqlURL string
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			mysqlURL = b.URL(t)
		}
	}
	if mysqlURL == "" {
		t.Skip("needs MySQL")
	}
	for _, param := range []string{"character_set_client=gbk", "character_set_connection=big5", "charset=gbk"} {
		vars := map[string]string{"WXLOGIN_ADDR": "127.0.0.1:0", "WXLOGIN_DATABASE_URL": mysqlURL + "?" + param}
		ctx, cancel := context.WithCancel(context.Background())
		stderr := &capture.Buffer{}
		done := make(chan error, 1)
		go func() { done <- serve(ctx, func(k string) string { return vars[k] }, stderr) }()
		var err error
	wait:
		for deadline := time.Now().Add(30 * time.Second); ; {
			select {
			case err = <-done:
				break wait
			case <-time.After(10 * time.Millisecond):
			}
			if strings.Contains(stderr.String(), "wxlogin serving") || time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("serve started with ?%s:\n%s", param, stderr)
			}
		}
		cancel()
		name, _, _ := strings.Cut(param, "=")
		if err == nil || !strings.Contains(err.Error(), `"`+name+`" is not accepted`) || !strings.Contains(err.Error(), "accepted: allowCleartextPasswords") {
			t.Errorf("?%s: start-up error %v, want one naming the parameter and the accepted ones", param, err)
		}
	}
}
