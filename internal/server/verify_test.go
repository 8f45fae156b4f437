package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/faultproxy"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/verify"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// verifyAnswer is what a gateway reads of a forward-auth answer.
type verifyAnswer struct {
	status int
	header http.Header
	body   string
}

// verify asks instance i's forward auth about a token ("" sends no Authorization), by
// method and path.
func (e *env) verify(i int, method, path, authorization string) verifyAnswer {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.instances[i].URL+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, resp.Header.Get("Cache-Control"))
	}
	return verifyAnswer{resp.StatusCode, resp.Header, string(body)}
}

// wantValid checks an answer for the user p logged in as, with the session sid.
func wantValid(t *testing.T, what string, a verifyAnswer, p loginPayload, sid string) {
	t.Helper()
	want := map[string]string{
		verify.HeaderUserID: p.User.ID, verify.HeaderOpenID: p.User.Openid,
		verify.HeaderAppID: testAppID, verify.HeaderSessionID: sid,
	}
	if p.User.Unionid != nil {
		want[verify.HeaderUnionID] = *p.User.Unionid
	}
	if a.status != http.StatusOK || a.body != "" {
		t.Fatalf("%s: %d %q, want 200 and no body", what, a.status, a.body)
	}
	for h, v := range want {
		if got := a.header.Get(h); got != v {
			t.Errorf("%s: %s = %q, want %q", what, h, got, v)
		}
	}
	if _, ok := want[verify.HeaderUnionID]; !ok && len(a.header.Values(verify.HeaderUnionID)) > 0 {
		t.Errorf("%s: %s sent for a user without a unionid", what, verify.HeaderUnionID)
	}
}

func wantRefused(t *testing.T, what string, a verifyAnswer) {
	t.Helper()
	if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with Bearer error=\"invalid_token\"", what, a.status, a.header.Get("WWW-Authenticate"))
	}
	if a.header.Get(verify.HeaderUserID) != "" || a.header.Get(verify.HeaderOpenID) != "" {
		t.Errorf("%s: a refusal carries a user: %v", what, a.header)
	}
}

// TestForwardAuth: /auth/verify, by any method and under any path, says who a valid
// token belongs to in headers, and answers 401 for every token that is not one: none,
// malformed, unknown, expired, logged out (at once where the logout was made, within
// the contract's 5 s on another instance).
func TestForwardAuth(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		withUnion := e.mustLogin(0, e.fake.IssueCode(alice))
		plain := e.mustLogin(0, e.fake.IssueCode(bob))
		for _, c := range []struct{ method, path string }{
			{"GET", "/auth/verify"}, {"HEAD", "/auth/verify"}, {"POST", "/auth/verify"},
			{"PUT", "/auth/verify/orders/42"}, {"GET", "/auth/verify/api/v1/cart?x=1"}, {"DELETE", "/auth/verify/"},
		} {
			what := c.method + " " + c.path
			wantValid(t, what, e.verify(0, c.method, c.path, "Bearer "+withUnion.Token), withUnion, e.currentSessionID(withUnion.Token))
		}
		wantValid(t, "a user without a unionid", e.verify(1, "GET", "/auth/verify", "Bearer "+plain.Token), plain, e.currentSessionID(plain.Token))

		for name, authz := range map[string]string{
			"no token":         "",
			"not bearer":       "Basic " + plain.Token,
			"malformed":        "Bearer not-a-token",
			"unknown":          "Bearer " + strings.Repeat("A", 43),
			"two tokens":       "Bearer " + plain.Token + " " + plain.Token,
			"a token too long": "Bearer " + strings.Repeat("A", 5000),
		} {
			wantRefused(t, name, e.verify(0, "GET", "/auth/verify", authz))
		}

		// A logout on instance 1 of a session instance 0 has just answered for from
		// its cache: refused at once on 1, on 0 once its cache is past (the contract's
		// 5 s).
		wantValid(t, "before the logout", e.verify(0, "GET", "/auth/verify", "Bearer "+plain.Token), plain, e.currentSessionID(plain.Token))
		if r := e.post(1, plain.Token, `mutation { logout }`, nil); r.Code() != "" {
			t.Fatalf("logout: %s", r.Code())
		}
		wantRefused(t, "on the instance of the logout", e.verify(1, "GET", "/auth/verify", "Bearer "+plain.Token))
		e.clock.Advance(5 * time.Second)
		wantRefused(t, "on another instance 5 s after the logout", e.verify(0, "GET", "/auth/verify", "Bearer "+plain.Token))

		// Expired: past the idle timeout.
		e.clock.Advance(31 * 24 * time.Hour)
		wantRefused(t, "expired", e.verify(0, "GET", "/auth/verify", "Bearer "+withUnion.Token))

		metrics := e.metrics(0)
		for _, line := range []string{
			`wxlogin_verifications_total{endpoint="forward_auth",outcome="valid"} 7`,
			`wxlogin_verifications_total{endpoint="forward_auth",outcome="invalid"} 8`,
		} {
			if !strings.Contains(metrics, line) {
				t.Errorf("metrics lack %s", line)
			}
		}
		if strings.Contains(e.logs.String(), plain.Token) || strings.Contains(e.logs.String(), withUnion.Token) {
			t.Error("a token reached the log")
		}
	})
}

// metrics returns instance i's /metrics.
func (e *env) metrics(i int) string {
	e.t.Helper()
	resp, err := e.client.Get(e.instances[i].URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// unreachableDatabase is an env on MariaDB behind a fault proxy, with a user logged
// in; cut cuts the database off. It skips without MariaDB.
func unreachableDatabase(t *testing.T, opts ...envOption) (e *env, token string, cut func()) {
	b := mysqlBackend(t)
	u, err := url.Parse(b.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	db, err := database.Open(context.Background(), u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e = newEnv(t, b, append(opts, withDB(db))...)
	token = e.mustLogin(0, e.fake.IssueCode(fakewechat.User{OpenID: "oCut00000000000000000000001"})).Token
	e.clock.Advance(5 * time.Second) // past the session cache: the next check reads the database
	return e, token, proxy.Cut
}

// mysqlBackend is MariaDB's backend; it skips the test without one.
func mysqlBackend(t *testing.T) testdb.Backend {
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			return b
		}
	}
	t.Skip("needs MySQL")
	return testdb.Backend{}
}

// TestForwardAuthWithoutTheDatabase: a token that cannot be checked is 503, not a 401
// that would send every client to log in again, nor a 200.
func TestForwardAuthWithoutTheDatabase(t *testing.T) {
	e, token, cut := unreachableDatabase(t)
	cut()
	if a := e.verify(0, "GET", "/auth/verify", "Bearer "+token); a.status != http.StatusServiceUnavailable {
		t.Errorf("database cut off: %d, want 503", a.status)
	}
	if a := e.verify(0, "GET", "/auth/verify", ""); a.status != http.StatusUnauthorized {
		t.Errorf("no token, database cut off: %d, want 401 (nothing to look up)", a.status)
	}
}

// The introspection clients of the tests.
var (
	orders   = verify.Client{ID: "orders", Secret: "orders-secret-0123456789"}
	payments = verify.Client{ID: "payments", Secret: "payments:secret/with+odd&chars"}
)

// introspect posts token to instance i's introspection endpoint as client (nil: no
// credentials) and returns the status and the decoded answer.
func (e *env) introspect(i int, client *verify.Client, token string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.instances[i].URL+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != nil {
		req.SetBasicAuth(url.QueryEscape(client.ID), url.QueryEscape(client.Secret))
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, http.Header, map[string]any) {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil && resp.StatusCode != http.StatusNotFound {
		e.t.Errorf("%s: %d, not JSON: %q", req.URL.Path, resp.StatusCode, raw)
	}
	if resp.Header.Get("Cache-Control") != "no-store" && resp.StatusCode != http.StatusNotFound {
		e.t.Errorf("%s: %d without Cache-Control: no-store", req.URL.Path, resp.StatusCode)
	}
	return resp.StatusCode, resp.Header, body
}

// TestIntrospection: RFC 7662 for the clients configured: the members of an active
// token, {"active": false} for any other, 401 for a client that does not authenticate,
// and the request's own mistakes 400 or 405.
func TestIntrospection(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withIntrospection(6000, 200, orders, payments))
		e.addInstance()
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		sess := e.sessions(p.Token)[0]

		status, _, got := e.introspect(1, &orders, p.Token)
		want := map[string]any{
			"active": true, "sub": p.User.ID, "sid": sess.ID, "openid": p.User.Openid, "appid": testAppID,
			"unionid": *p.User.Unionid, "token_type": "Bearer",
			"iat": float64(sess.CreatedAt.Unix()), "exp": float64(sess.ExpiresAt.Unix()),
		}
		if status != http.StatusOK || len(got) != len(want) {
			t.Errorf("an active token: %d %v, want 200 %v", status, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("an active token: %s = %v, want %v", k, got[k], v)
			}
		}
		if status, _, got := e.introspect(0, &payments, p.Token); status != http.StatusOK || got["active"] != true {
			t.Errorf("a secret with characters form-encoding escapes: %d %v", status, got)
		}

		for name, token := range map[string]string{
			"unknown": strings.Repeat("A", 43), "malformed": "x", "a refresh of nothing": p.Token + "x",
		} {
			if status, _, got := e.introspect(0, &orders, token); status != http.StatusOK || len(got) != 1 || got["active"] != false {
				t.Errorf("%s token: %d %v, want 200 {\"active\": false}", name, status, got)
			}
		}

		for name, client := range map[string]*verify.Client{
			"no credentials": nil,
			"a wrong secret": {ID: orders.ID, Secret: orders.Secret + "x"},
			"an unknown id":  {ID: "stranger", Secret: orders.Secret},
			"another's id":   {ID: payments.ID, Secret: orders.Secret},
		} {
			status, h, got := e.introspect(0, client, p.Token)
			if status != http.StatusUnauthorized || got["error"] != "invalid_client" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: %d %v (WWW-Authenticate %q), want 401 invalid_client", name, status, got, h.Get("WWW-Authenticate"))
			}
			if _, leaked := got["sub"]; leaked {
				t.Errorf("%s: the answer tells who the token is: %v", name, got)
			}
		}

		bad := func(name, method, contentType, body string, wantStatus int) {
			t.Helper()
			req, _ := http.NewRequest(method, e.instances[0].URL+"/oauth/introspect", strings.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			req.SetBasicAuth(orders.ID, orders.Secret)
			if status, _, got := e.do(req); status != wantStatus || got["error"] == nil {
				t.Errorf("%s: %d %v, want %d with an error", name, status, got, wantStatus)
			}
		}
		bad("GET", http.MethodGet, "", "", http.StatusMethodNotAllowed)
		bad("JSON", http.MethodPost, "application/json", `{"token":"`+p.Token+`"}`, http.StatusBadRequest)
		bad("no token", http.MethodPost, "application/x-www-form-urlencoded", "token_type_hint=access_token", http.StatusBadRequest)
		bad("two tokens", http.MethodPost, "application/x-www-form-urlencoded", "token="+p.Token+"&token="+p.Token, http.StatusBadRequest)
		bad("a token too long", http.MethodPost, "application/x-www-form-urlencoded", "token="+strings.Repeat("A", 600), http.StatusBadRequest)

		if r := e.post(0, p.Token, `mutation { logout }`, nil); r.Code() != "" {
			t.Fatal(r.Code())
		}
		if status, _, got := e.introspect(0, &orders, p.Token); status != http.StatusOK || got["active"] != false {
			t.Errorf("after a logout: %d %v, want {\"active\": false}", status, got)
		}
		e.clock.Advance(5 * time.Second)
		if status, _, got := e.introspect(1, &orders, p.Token); status != http.StatusOK || got["active"] != false {
			t.Errorf("5 s after a logout on another instance: %d %v, want {\"active\": false}", status, got)
		}
		if logs := e.logs.String(); strings.Contains(logs, orders.Secret) || strings.Contains(logs, p.Token) {
			t.Error("a client secret or a token reached the log")
		}
		if !strings.Contains(e.metrics(0), `wxlogin_verifications_total{endpoint="introspection",outcome="unauthorized_client"} 4`) {
			t.Error("the metrics do not count the 4 failed client authentications")
		}
	})
}

// TestIntrospectionLimits: each client has its own limit; failed client
// authentications are limited per address, so that secrets cannot be guessed fast,
// even when the right one comes next.
func TestIntrospectionLimits(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0], withIntrospection(3, 3, orders, payments))
	token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
	for i := range 3 {
		if status, _, _ := e.introspect(0, &orders, token); status != http.StatusOK {
			t.Fatalf("request %d of orders' burst of 3: %d", i+1, status)
		}
	}
	status, h, got := e.introspect(0, &orders, token)
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || got["active"] != nil {
		t.Errorf("orders' 4th request: %d (Retry-After %q) %v, want 429 with Retry-After", status, h.Get("Retry-After"), got)
	}
	if status, _, _ := e.introspect(0, &payments, token); status != http.StatusOK {
		t.Errorf("payments while orders is limited: %d, want 200: each client has its own limit", status)
	}

	guesser := &verify.Client{ID: payments.ID, Secret: "guess-0000000000000000"}
	for i := range 10 {
		if status, _, _ := e.introspect(0, guesser, token); status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, status)
		}
	}
	if status, _, _ := e.introspect(0, &payments, token); status != http.StatusTooManyRequests {
		t.Errorf("the right secret after 10 wrong ones from the address: %d, want 429", status)
	}
	e.clock.Advance(time.Minute)
	if status, _, _ := e.introspect(0, &payments, token); status != http.StatusOK {
		t.Errorf("the right secret a minute later: %d, want 200", status)
	}
}

// TestIntrospectionNeedsClients: without WXLOGIN_INTROSPECTION_CLIENTS there is no
// endpoint at all.
func TestIntrospectionNeedsClients(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
	if status, _, _ := e.introspect(0, &orders, token); status != http.StatusNotFound {
		t.Errorf("introspection without clients configured: %d, want 404", status)
	}
}

// TestIntrospectionWithoutTheDatabase: 503, never {"active": false} for a token that
// may well be active.
func TestIntrospectionWithoutTheDatabase(t *testing.T) {
	e, token, cut := unreachableDatabase(t, withIntrospection(6000, 200, orders))
	cut()
	if status, _, got := e.introspect(0, &orders, token); status != http.StatusServiceUnavailable || got["active"] != nil {
		t.Errorf("database cut off: %d %v, want 503 and no verdict", status, got)
	}
}
