package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
	"github.com/wxlogin/wxlogin/internal/wechatpush"
)

// The push settings of the tests, as the WeChat console shows them.
const (
	pushToken  = "wxloginPushToken42"
	pushAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// withPush receives WeChat's pushes.
func withPush() envOption {
	return func(e *env) {
		key, err := wechatpush.ParseAESKey(pushAESKey)
		if err != nil {
			panic(err)
		}
		e.pushToken, e.pushKey = pushToken, key
	}
}

// push sends an event as WeChat does to instance i (to /wechat/events/<appid> when
// path says so) and returns the status and the answer.
func (e *env) push(i int, p fakewechat.Push) (int, string) {
	e.t.Helper()
	if p.URL == "" {
		p.URL = e.instances[i].URL + "/wechat/events"
	}
	if p.Token == "" {
		p.Token = pushToken
	}
	if p.AESKey == "" {
		p.AESKey = pushAESKey
	}
	if p.AppID == "" {
		p.AppID = testAppID
	}
	if p.At.IsZero() {
		p.At = e.clock.Now()
	}
	req, err := p.Request(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do2(req)
}

func (e *env) do2(req *http.Request) (int, string) {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWeChatPushes: WeChat's consent events, signed and encrypted as WeChat sends them,
// in JSON and XML: a revocation of a mini-program deletes that identity (and the account
// with its last one), a cancellation likewise, a change of information clears the
// nickname and avatar; each is audited, and sent twice is harmless, also after the
// person has come back.
func TestWeChatPushes(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp(), withPush())
		e.addInstance()

		// The admin console's URL check.
		ts, nonce := "1764680000", "42"
		q := url.Values{"signature": {wechatpush.Signature(pushToken, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {"echo-5213"}}
		if status, body := e.do2(mustRequest(t, "GET", e.instances[0].URL+"/wechat/events?"+q.Encode(), "", "")); status != 200 || body != "echo-5213" {
			t.Errorf("the URL check: %d %q, want 200 and the echostr", status, body)
		}
		q.Set("signature", wechatpush.Signature("another-token", ts, nonce))
		if status, _ := e.do2(mustRequest(t, "GET", e.instances[0].URL+"/wechat/events?"+q.Encode(), "", "")); status != http.StatusUnauthorized {
			t.Errorf("the URL check with another token's signature: %d, want 401", status)
		}

		// Two mini-programs, one person: revoking the second deletes that identity only.
		p := e.mustLogin(0, e.fake.IssueCode(dora.app1))
		second, _ := e.loginTo(1, testAppID2, e.second.IssueCode(dora.app2))
		if _, c := e.updateProfile(p.Token, map[string]any{"nickname": "DoraTheNick"}); c != "" {
			t.Fatal(c)
		}
		revoke2 := fakewechat.Push{URL: e.instances[1].URL + "/wechat/events/" + testAppID2, AppID: testAppID2, OpenID: dora.app2.OpenID, Event: wechatpush.EventRevoke, XML: true}
		if status, body := e.push(1, revoke2); status != 200 || body != "success" {
			t.Fatalf("revoking the second mini-program (XML): %d %q", status, body)
		}
		e.clock.Advance(5 * time.Second)
		if _, c := e.me(0, second.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the revoked mini-program's session: %q, want UNAUTHENTICATED", c)
		}
		if u, c := e.me(0, p.Token); c != "" || u.ID != p.User.ID {
			t.Errorf("the other mini-program's session after a revocation of one: %v %q, want it working", u, c)
		}

		// WeChat says the information changed: the nickname goes.
		if status, _ := e.push(0, fakewechat.Push{OpenID: dora.app1.OpenID, Event: wechatpush.EventInfoModified}); status != 200 {
			t.Fatalf("user_info_modified: %d", status)
		}
		if prof, _ := e.updateProfile(p.Token, map[string]any{}); prof.Nickname != nil {
			t.Errorf("the nickname after user_info_modified: %q, want none", *prof.Nickname)
		}

		// The last identity revoked (JSON): the whole account goes.
		revoke1 := fakewechat.Push{OpenID: dora.app1.OpenID, Event: wechatpush.EventRevoke, At: e.clock.Now()}
		if status, body := e.push(0, revoke1); status != 200 || body != "success" {
			t.Fatalf("revoking the last mini-program: %d %q", status, body)
		}
		if _, c := e.me(0, p.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the account's last session after its last identity's revocation: %q", c)
		}
		if text := dump(t, e.db.SQL, allTables...); strings.Contains(text, dora.app1.OpenID) || strings.Contains(text, "DoraTheNick") {
			t.Errorf("the person's data is still there after the pushes:\n%s", text)
		}
		var events []string
		rows, _ := e.db.SQL.Query("SELECT event FROM audit_events WHERE user_id = ? ORDER BY at", p.User.ID)
		for rows.Next() {
			var ev string
			rows.Scan(&ev)
			events = append(events, ev)
		}
		rows.Close()
		if got := strings.Join(events, " "); !strings.Contains(got, "identity_deleted") || !strings.Contains(got, "profile_cleared") || !strings.HasSuffix(got, "deleted") {
			t.Errorf("audit events: %s", got)
		}

		// The same push again, and again once the person came back: harmless.
		if status, body := e.push(0, revoke1); status != 200 || body != "success" {
			t.Errorf("the revocation pushed twice: %d %q", status, body)
		}
		e.clock.Advance(2 * time.Second)
		back := e.mustLogin(0, e.fake.IssueCode(dora.app1))
		if status, _ := e.push(0, revoke1); status != 200 {
			t.Errorf("the old revocation replayed after the person came back: %d", status)
		}
		if u, c := e.me(0, back.Token); c != "" || u.ID != back.User.ID {
			t.Errorf("the person who came back, after the old revocation was replayed: %v %q, want them logged in", u, c)
		}

		// A cancellation deletes too.
		cancelled := e.mustLogin(0, e.fake.IssueCode(bob))
		if status, _ := e.push(0, fakewechat.Push{OpenID: bob.OpenID, Event: wechatpush.EventCancellation}); status != 200 {
			t.Fatalf("user_authorization_cancellation: %d", status)
		}
		if _, c := e.me(0, cancelled.Token); c != "UNAUTHENTICATED" {
			t.Errorf("after a cancellation: %q", c)
		}
	})
}

// TestForgedPushesChangeNothing: a push that is not WeChat's, or not now, or not for
// this mini-program, answers 401 and changes nothing; without the settings there are no
// endpoints.
func TestForgedPushesChangeNothing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withPush())
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		revoke := fakewechat.Push{OpenID: alice.OpenID, Event: wechatpush.EventRevoke}
		forged := map[string]fakewechat.Push{
			"another token":         {Token: "someoneElsesToken", OpenID: alice.OpenID, Event: wechatpush.EventRevoke},
			"another key":           {AESKey: "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut", OpenID: alice.OpenID, Event: wechatpush.EventRevoke},
			"another mini-program":  {AppID: "wxsomeoneelse0001", OpenID: alice.OpenID, Event: wechatpush.EventRevoke},
			"ten minutes old":       {OpenID: alice.OpenID, Event: wechatpush.EventRevoke, At: e.clock.Now().Add(-10 * time.Minute)},
			"an hour in the future": {OpenID: alice.OpenID, Event: wechatpush.EventRevoke, At: e.clock.Now().Add(time.Hour)},
		}
		for name, f := range forged {
			if status, _ := e.push(0, f); status != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", name, status)
			}
		}
		// The body changed under a genuine signature.
		revoke.URL, revoke.Token, revoke.AESKey, revoke.AppID, revoke.At = e.instances[0].URL+"/wechat/events", pushToken, pushAESKey, testAppID, e.clock.Now()
		req, err := revoke.Request(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(req.Body)
		tampered := strings.Replace(string(raw), `"Encrypt":"`, `"Encrypt":"AAAA`, 1)
		tr, _ := http.NewRequest(http.MethodPost, req.URL.String(), strings.NewReader(tampered))
		if status, _ := e.do2(tr); status != http.StatusUnauthorized {
			t.Errorf("a tampered body: %d, want 401", status)
		}
		plain, _ := http.NewRequest(http.MethodPost, req.URL.String(), strings.NewReader(`{"ToUserName":"gh","FromUserName":"`+alice.OpenID+`","CreateTime":1,"MsgType":"event","Event":"user_authorization_revoke"}`))
		if status, _ := e.do2(plain); status != http.StatusUnauthorized {
			t.Errorf("a plaintext push: %d, want 401", status)
		}
		if u, c := e.me(0, p.Token); c != "" || u.ID != p.User.ID {
			t.Fatalf("after the forged pushes: %v %q, want the user untouched", u, c)
		}

		plainEnv := newEnv(t, b)
		if status, _ := plainEnv.do2(mustRequest(t, "POST", plainEnv.instances[0].URL+"/wechat/events", "", "")); status != http.StatusNotFound {
			t.Errorf("pushes without WECHAT_PUSH_TOKEN: %d, want 404", status)
		}
	})
}
