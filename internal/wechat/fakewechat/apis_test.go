package fakewechat_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

const phone = "13912345678"

// reply is any of the new APIs' JSON.
type reply struct {
	Errcode     int    `json:"errcode"`
	Errno       int    `json:"errno"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	OpenID      string `json:"openid"`
	SessionKey  string `json:"session_key"`
	PhoneInfo   *struct {
		PurePhoneNumber string `json:"purePhoneNumber"`
	} `json:"phone_info"`
	raw []byte
}

// do sends one request to the fake and decodes WeChat's JSON answer. body,
// when not nil, is sent as JSON (a string as is).
func (f *fixture) do(t *testing.T, method, path string, query url.Values, body any) reply {
	t.Helper()
	u := f.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rb []byte
	switch b := body.(type) {
	case nil:
	case string:
		rb = []byte(b)
	default:
		rb, _ = json.Marshal(b)
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(rb))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP status %d: %s", method, path, resp.StatusCode, buf.Bytes())
	}
	r := reply{raw: buf.Bytes()}
	if err := json.Unmarshal(r.raw, &r); err != nil {
		t.Fatalf("%s %s: not JSON: %v: %s", method, path, err, r.raw)
	}
	if (r.Errcode != 0 || r.Errno != 0) && !ridSuffix.MatchString(r.Errmsg) {
		t.Errorf("errmsg %q does not end with a rid", r.Errmsg)
	}
	f.secrets = append(f.secrets, r.AccessToken, r.SessionKey)
	return r
}

func (f *fixture) stableToken(t *testing.T, force bool) reply {
	t.Helper()
	return f.do(t, http.MethodPost, "/cgi-bin/stable_token", nil,
		map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force})
}

func (f *fixture) legacyToken(t *testing.T) reply {
	t.Helper()
	return f.do(t, http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}, nil)
}

func (f *fixture) phoneNumber(t *testing.T, token, code, openid string) reply {
	t.Helper()
	f.secrets = append(f.secrets, code)
	body := map[string]string{"code": code}
	if openid != "" {
		body["openid"] = openid
	}
	return f.do(t, http.MethodPost, "/wxa/business/getuserphonenumber", url.Values{"access_token": {token}}, body)
}

// sign is the documented signature, computed here independently of the fake.
func sign(sessionKey string) string {
	mac := hmac.New(sha256.New, []byte(sessionKey))
	return hex.EncodeToString(mac.Sum(nil))
}

func (f *fixture) sessionKeyAPI(t *testing.T, api, token, openid, sig string) reply {
	t.Helper()
	f.secrets = append(f.secrets, sig)
	return f.do(t, http.MethodGet, "/wxa/"+api, url.Values{
		"access_token": {token}, "openid": {openid}, "signature": {sig}, "sig_method": {"hmac_sha256"},
	}, nil)
}

// tokenErrcode is what an API answers about token alone: checksession for
// a user the fake never saw answers 87009 when the token works.
func (f *fixture) tokenErrcode(t *testing.T, token string) int {
	t.Helper()
	return f.sessionKeyAPI(t, "checksession", token, "o-nobody", sign("a2V5")).Errcode
}

const tokenOK = 87009

func TestStableTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	first := f.stableToken(t, false)
	if first.Errcode != 0 || first.AccessToken == "" || first.ExpiresIn != 7200 {
		t.Fatalf("first: %s, want a token for 7200 s", first.raw)
	}
	f.clock.Advance(100 * time.Second)
	again := f.stableToken(t, false)
	if again.AccessToken != first.AccessToken || again.ExpiresIn != 7100 {
		t.Errorf("while valid: %s, want the same token with 7100 s left", again.raw)
	}

	fresh := f.stableToken(t, true)
	if fresh.AccessToken == first.AccessToken || fresh.ExpiresIn != 7200 {
		t.Fatalf("force_refresh: %s, want a new token for 7200 s", fresh.raw)
	}
	if code := f.tokenErrcode(t, first.AccessToken); code != 40001 {
		t.Errorf("token replaced by force_refresh: errcode %d, want 40001", code)
	}
	if code := f.tokenErrcode(t, fresh.AccessToken); code != tokenOK {
		t.Errorf("new token: errcode %d, want it accepted", code)
	}

	f.clock.Advance(7200*time.Second - time.Second)
	if code := f.tokenErrcode(t, fresh.AccessToken); code != tokenOK {
		t.Errorf("token a second before expiry: errcode %d, want it accepted", code)
	}
	f.clock.Advance(time.Second)
	if code := f.tokenErrcode(t, fresh.AccessToken); code != 42001 {
		t.Errorf("expired token: errcode %d, want 42001", code)
	}
	renewed := f.stableToken(t, false)
	if renewed.AccessToken == fresh.AccessToken || renewed.ExpiresIn != 7200 {
		t.Errorf("after expiry: %s, want a new token", renewed.raw)
	}
	if n := f.fake.CallsTo("stable_token"); n != 4 {
		t.Errorf("CallsTo(stable_token) = %d, want 4", n)
	}
	if f.fake.Calls() != 0 {
		t.Error("stable_token requests counted as jscode2session")
	}
}

func TestTokenRequestChecks(t *testing.T) {
	f := newFixture(t)
	good := map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": false}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name    string
		body    any
		errcode int
	}{
		{"wrong appid", with("appid", "wxsomeoneelse"), 40013},
		{"wrong secret", with("secret", "not-"+secret), 40125},
		{"wrong grant_type", with("grant_type", "authorization_code"), 40002},
		{"not JSON", "grant_type=client_credential", 47001},
	}
	for _, tc := range cases {
		t.Run("stable "+tc.name, func(t *testing.T) {
			if r := f.do(t, http.MethodPost, "/cgi-bin/stable_token", nil, tc.body); r.Errcode != tc.errcode || r.AccessToken != "" {
				t.Errorf("%s, want errcode %d", r.raw, tc.errcode)
			}
		})
	}
	for _, tc := range []struct {
		name, key, value string
		errcode          int
	}{
		{"wrong appid", "appid", "wxsomeoneelse", 40013},
		{"wrong secret", "secret", "not-" + secret, 40125},
		{"wrong grant_type", "grant_type", "authorization_code", 40002},
	} {
		t.Run("legacy "+tc.name, func(t *testing.T) {
			q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
			q.Set(tc.key, tc.value)
			if r := f.do(t, http.MethodGet, "/cgi-bin/token", q, nil); r.Errcode != tc.errcode || r.AccessToken != "" {
				t.Errorf("%s, want errcode %d", r.raw, tc.errcode)
			}
		})
	}
}

// TestLegacyTokenEndpoint: the older form issues a new token on every call,
// and the one before stops working 5 minutes later; the stable token lives
// apart from it.
func TestLegacyTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	stable := f.stableToken(t, false)
	first := f.legacyToken(t)
	second := f.legacyToken(t)
	if first.AccessToken == "" || second.AccessToken == first.AccessToken || second.ExpiresIn != 7200 {
		t.Fatalf("two calls: %s then %s, want two different tokens", first.raw, second.raw)
	}
	f.clock.Advance(5*time.Minute - time.Second)
	if code := f.tokenErrcode(t, first.AccessToken); code != tokenOK {
		t.Errorf("previous token within 5 minutes: errcode %d, want it accepted", code)
	}
	f.clock.Advance(time.Second)
	if code := f.tokenErrcode(t, first.AccessToken); code != 40001 {
		t.Errorf("previous token after 5 minutes: errcode %d, want 40001", code)
	}
	for name, tok := range map[string]string{"latest token": second.AccessToken, "stable token": stable.AccessToken} {
		if code := f.tokenErrcode(t, tok); code != tokenOK {
			t.Errorf("%s: errcode %d, want it accepted", name, code)
		}
	}
	if n := f.fake.CallsTo("token"); n != 2 {
		t.Errorf("CallsTo(token) = %d, want 2", n)
	}
}

func TestInvalidateAccessTokens(t *testing.T) {
	f := newFixture(t)
	stable, legacy := f.stableToken(t, false), f.legacyToken(t)
	f.fake.InvalidateAccessTokens()
	for name, tok := range map[string]string{"stable": stable.AccessToken, "legacy": legacy.AccessToken, "never issued": "no-such-token", "empty": ""} {
		if code := f.tokenErrcode(t, tok); code != 40001 {
			t.Errorf("%s token: errcode %d, want 40001", name, code)
		}
	}
	fresh := f.stableToken(t, false)
	if fresh.AccessToken == stable.AccessToken || f.tokenErrcode(t, fresh.AccessToken) != tokenOK {
		t.Errorf("stable_token after the invalidation: %s, want a new, working token", fresh.raw)
	}
}

func TestPhoneNumberEndpoint(t *testing.T) {
	f := newFixture(t)
	f.secrets = append(f.secrets, phone)
	tok := f.stableToken(t, false).AccessToken
	code := f.fake.IssuePhoneCode("o-alice", phone)

	r := f.phoneNumber(t, tok, code, "o-alice")
	// As in WeChat's documented example: a mainland number bare, countryCode a number.
	want := fmt.Sprintf(`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"%s","purePhoneNumber":"%s","countryCode":86,"watermark":{"timestamp":%d,"appid":"%s"}}}`,
		phone, phone, f.clock.Now().Unix(), appID)
	if string(r.raw) != want {
		t.Errorf("success answer:\n got  %s\n want %s", r.raw, want)
	}
	if r := f.phoneNumber(t, tok, code, "o-alice"); r.Errcode != 40029 {
		t.Errorf("code reused: %s, want 40029", r.raw)
	}

	other := f.fake.IssuePhoneCode("o-alice", phone)
	if r := f.phoneNumber(t, tok, other, "o-bob"); r.Errcode != 40029 {
		t.Errorf("another user's code: %s, want 40029", r.raw)
	}
	if r := f.phoneNumber(t, tok, other, ""); r.Errcode != 0 || r.PhoneInfo == nil || r.PhoneInfo.PurePhoneNumber != phone {
		t.Errorf("the code refused to another user, then used without openid: %s, want success", r.raw)
	}

	stale := f.fake.IssuePhoneCode("o-alice", phone)
	f.clock.Advance(5 * time.Minute)
	cases := []struct {
		name, token, code string
		errcode           int
	}{
		{"expired code", tok, stale, 40029},
		{"unknown code", tok, "0a3bCdEfGhIjKlMnOpQrStUvWxYz0123", 40029},
		{"missing code", tok, "", 41008},
		{"unknown token", "no-such-token", f.fake.IssuePhoneCode("o-alice", phone), 40001},
		{"no token", "", f.fake.IssuePhoneCode("o-alice", phone), 40001},
	}
	for _, tc := range cases {
		if r := f.phoneNumber(t, tc.token, tc.code, "o-alice"); r.Errcode != tc.errcode {
			t.Errorf("%s: %s, want errcode %d", tc.name, r.raw, tc.errcode)
		}
	}
	if r := f.do(t, http.MethodPost, "/wxa/business/getuserphonenumber", url.Values{"access_token": {tok}}, "code="); r.Errcode != 47001 {
		t.Errorf("body not JSON: %s, want 47001", r.raw)
	}
	if n := f.fake.PhoneExchanges(); n != 2 {
		t.Errorf("PhoneExchanges() = %d, want 2", n)
	}
	if n := f.fake.CallsTo("getuserphonenumber"); n != 10 {
		t.Errorf("CallsTo(getuserphonenumber) = %d, want 10", n)
	}
}

// TestPhoneNumberOutsideMainland: WeChat gives such a number with its area code.
func TestPhoneNumberOutsideMainland(t *testing.T) {
	f := newFixture(t)
	f.secrets = append(f.secrets, "61234567")
	tok := f.stableToken(t, false).AccessToken
	r := f.phoneNumber(t, tok, f.fake.IssuePhoneCodeIn("o-alice", 852, "61234567"), "o-alice")
	want := fmt.Sprintf(`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"+85261234567","purePhoneNumber":"61234567","countryCode":852,"watermark":{"timestamp":%d,"appid":"%s"}}}`,
		f.clock.Now().Unix(), appID)
	if string(r.raw) != want {
		t.Errorf("success answer:\n got  %s\n want %s", r.raw, want)
	}
}

// TestPhoneNumberRefusals: the faults only getuserphonenumber has, injected or sent as
// the phone code fault-<name>; neither spends the code.
func TestPhoneNumberRefusals(t *testing.T) {
	f := newFixture(t)
	f.secrets = append(f.secrets, phone)
	tok := f.stableToken(t, false).AccessToken
	code := f.fake.IssuePhoneCode("o-alice", phone)

	f.fake.InjectFaultFor("getuserphonenumber", fakewechat.FaultQuota, 1)
	if r := f.phoneNumber(t, tok, code, "o-alice"); r.Errno != 1400001 || r.Errcode != 0 {
		t.Errorf("out of quota: %s, want errno 1400001", r.raw)
	}
	f.fake.InjectFaultFor("getuserphonenumber", fakewechat.FaultForeignCode, 1)
	if r := f.phoneNumber(t, tok, code, "o-alice"); r.Errcode != 40013 {
		t.Errorf("another mini-program's code: %s, want 40013", r.raw)
	}
	if r := f.phoneNumber(t, tok, "fault-quota", "o-alice"); r.Errno != 1400001 {
		t.Errorf("the code fault-quota: %s, want errno 1400001", r.raw)
	}
	if r := f.phoneNumber(t, tok, "fault-otherapp", "o-alice"); r.Errcode != 40013 {
		t.Errorf("the code fault-otherapp: %s, want 40013", r.raw)
	}
	if r := f.phoneNumber(t, tok, code, "o-alice"); r.Errcode != 0 || r.PhoneInfo == nil {
		t.Errorf("the code after the refusals: %s, want it unspent", r.raw)
	}
	if n := f.fake.PhoneExchanges(); n != 1 {
		t.Errorf("PhoneExchanges() = %d, want 1", n)
	}
}

func TestPhoneCodeEndpoint(t *testing.T) {
	f := newFixture(t)
	f.secrets = append(f.secrets, phone)
	status, body := get(t, f.url+"/fake/phonecode?openid=o-dave&phone="+phone)
	var v struct{ Code string }
	if err := json.Unmarshal(body, &v); status != http.StatusOK || err != nil || v.Code == "" {
		t.Fatalf("status %d: %s", status, body)
	}
	tok := f.stableToken(t, false).AccessToken
	if r := f.phoneNumber(t, tok, v.Code, "o-dave"); r.Errcode != 0 || r.PhoneInfo.PurePhoneNumber != phone {
		t.Errorf("minted phone code: %s", r.raw)
	}
	status, body = get(t, f.url+"/fake/phonecode?openid=o-dave&phone=61234567&country=852")
	if err := json.Unmarshal(body, &v); status != http.StatusOK || err != nil || v.Code == "" {
		t.Fatalf("status %d: %s", status, body)
	}
	if r := f.phoneNumber(t, tok, v.Code, "o-dave"); r.Errcode != 0 || !strings.Contains(string(r.raw), `"phoneNumber":"+85261234567"`) {
		t.Errorf("minted phone code for Hong Kong: %s", r.raw)
	}
	for _, bad := range []string{"", "openid=o-dave", "phone=" + phone, "openid=o-dave&phone=+8613912345678", "openid=o-dave&phone=12",
		"openid=o-dave&phone=" + phone + "&country=0", "openid=o-dave&phone=" + phone + "&country=+852", "openid=o-dave&phone=" + phone + "&country=8520"} {
		if status, _ := get(t, f.url+"/fake/phonecode?"+bad); status != http.StatusBadRequest {
			t.Errorf("?%s: status %d, want 400", bad, status)
		}
	}
}

func TestSessionKeyEndpoints(t *testing.T) {
	f := newFixture(t)
	tok := f.stableToken(t, false).AccessToken
	login := f.exchange(t, "dev-alice")
	alice := login.OpenID
	if got := f.fake.SessionKeyOf(alice); got != login.SessionKey {
		t.Fatalf("SessionKeyOf = %q, want the key just handed out", got)
	}
	if got := f.fake.SessionKeyOf("o-nobody"); got != "" {
		t.Errorf("SessionKeyOf an unknown user = %q, want empty", got)
	}

	if r := f.sessionKeyAPI(t, "checksession", tok, alice, sign(login.SessionKey)); string(r.raw) != `{"errcode":0,"errmsg":"ok"}` {
		t.Errorf("current key: %s", r.raw)
	}
	q := url.Values{"access_token": {tok}, "openid": {alice}, "signature": {sign(login.SessionKey)}, "sig_method": {"hmac_sha1"}}
	if r := f.do(t, http.MethodGet, "/wxa/checksession", q, nil); r.Errcode != 87009 {
		t.Errorf("another sig_method: %s, want 87009", r.raw)
	}
	raw := hmac.New(sha256.New, []byte("not the key"))
	if r := f.sessionKeyAPI(t, "checksession", tok, alice, hex.EncodeToString(raw.Sum(nil))); r.Errcode != 87009 {
		t.Errorf("wrong signature: %s, want 87009", r.raw)
	}

	reset := f.sessionKeyAPI(t, "resetusersessionkey", tok, alice, sign(login.SessionKey))
	if reset.Errcode != 0 || reset.OpenID != alice || reset.SessionKey == "" || reset.SessionKey == login.SessionKey {
		t.Fatalf("reset: %s, want the openid and a new key", reset.raw)
	}
	if f.fake.SessionKeyOf(alice) != reset.SessionKey {
		t.Error("SessionKeyOf after a reset is not the new key")
	}
	for _, api := range []string{"checksession", "resetusersessionkey"} {
		if r := f.sessionKeyAPI(t, api, tok, alice, sign(login.SessionKey)); r.Errcode != 87009 {
			t.Errorf("%s with the replaced key: %s, want 87009", api, r.raw)
		}
	}
	if r := f.sessionKeyAPI(t, "checksession", tok, alice, sign(reset.SessionKey)); r.Errcode != 0 {
		t.Errorf("the new key: %s", r.raw)
	}

	// A new login replaces the key as well.
	relogin := f.exchange(t, "dev-alice")
	if r := f.sessionKeyAPI(t, "checksession", tok, alice, sign(reset.SessionKey)); r.Errcode != 87009 {
		t.Errorf("key from before a new login: %s, want 87009", r.raw)
	}
	if r := f.sessionKeyAPI(t, "checksession", tok, alice, sign(relogin.SessionKey)); r.Errcode != 0 {
		t.Errorf("key of the new login: %s", r.raw)
	}
	if n := f.fake.CallsTo("checksession"); n != 7 {
		t.Errorf("CallsTo(checksession) = %d, want 7", n)
	}
}

// TestInjectFaultFor puts a fault on each API in turn: it hits that API
// only, for the number of requests asked.
func TestInjectFaultFor(t *testing.T) {
	f := newFixture(t)
	login := f.exchange(t, "dev-erin")
	tok := f.stableToken(t, false).AccessToken
	apis := map[string]func() reply{
		"jscode2session": func() reply { return f.exchangeReply(t, "dev-erin") },
		"stable_token":   func() reply { return f.stableToken(t, false) },
		"token":          func() reply { return f.legacyToken(t) },
		"getuserphonenumber": func() reply {
			return f.phoneNumber(t, tok, f.fake.IssuePhoneCode(login.OpenID, phone), login.OpenID)
		},
		"checksession": func() reply {
			return f.sessionKeyAPI(t, "checksession", tok, login.OpenID, sign(f.fake.SessionKeyOf(login.OpenID)))
		},
		"resetusersessionkey": func() reply {
			return f.sessionKeyAPI(t, "resetusersessionkey", tok, login.OpenID, sign(f.fake.SessionKeyOf(login.OpenID)))
		},
	}
	for api, call := range apis {
		t.Run(api, func(t *testing.T) {
			before := map[string]int{}
			for other := range apis {
				before[other] = f.fake.CallsTo(other)
			}
			f.fake.InjectFaultFor(api, fakewechat.FaultBusy, 2)
			for i := range 2 {
				if r := call(); r.Errcode != -1 {
					t.Fatalf("request %d: %s, want -1", i+1, r.raw)
				}
			}
			if r := call(); r.Errcode != 0 {
				t.Fatalf("after 2 busy answers: %s, want success", r.raw)
			}
			f.fake.InjectFaultFor(api, fakewechat.FaultRateLimit, -1)
			for range 2 {
				if r := call(); r.Errcode != 45011 {
					t.Fatalf("%s, want 45011 until cleared", r.raw)
				}
			}
			// Faults stay on their API.
			for other, otherCall := range apis {
				if other != api {
					if r := otherCall(); r.Errcode != 0 {
						t.Errorf("%s while %s is rate limited: %s", other, api, r.raw)
					}
				}
			}
			f.fake.InjectFaultFor(api, fakewechat.FaultNone, 0)
			if r := call(); r.Errcode != 0 {
				t.Errorf("after clearing: %s", r.raw)
			}
			if n := f.fake.CallsTo(api) - before[api]; n != 6 {
				t.Errorf("CallsTo(%s) grew by %d, want 6", api, n)
			}
		})
	}

	t.Run("InjectFault is jscode2session's", func(t *testing.T) {
		f.fake.InjectFault(fakewechat.FaultBusy, -1)
		defer f.fake.InjectFault(fakewechat.FaultNone, 0)
		if r := f.stableToken(t, false); r.Errcode != 0 {
			t.Errorf("stable_token under InjectFault: %s", r.raw)
		}
		if a := f.exchange(t, "dev-erin"); a.Errcode != -1 {
			t.Errorf("jscode2session under InjectFault: %+v, want -1", a)
		}
	})
	t.Run("faults beyond WeChat's errcodes", func(t *testing.T) {
		f.fake.InjectFaultFor("getuserphonenumber", fakewechat.FaultTruncatedJSON, 1)
		_, body := postRaw(t, f.url+"/wxa/business/getuserphonenumber?access_token="+url.QueryEscape(tok),
			`{"code":"`+f.fake.IssuePhoneCode(login.OpenID, phone)+`"}`)
		if json.Valid(body) || !bytes.HasPrefix(body, []byte(`{"errcode":0`)) {
			t.Errorf("truncated: %s, want the start of a success", body)
		}
		f.fake.InjectFaultFor("checksession", fakewechat.FaultHTML502, 1)
		status, _ := get(t, f.url+"/wxa/checksession?access_token="+url.QueryEscape(tok))
		if status != http.StatusBadGateway {
			t.Errorf("html502 on checksession: status %d", status)
		}
	})
	t.Run("unknown api panics", func(t *testing.T) {
		for name, fn := range map[string]func(){
			"InjectFaultFor": func() { f.fake.InjectFaultFor("code2session", fakewechat.FaultBusy, 1) },
			"CallsTo":        func() { f.fake.CallsTo("getphonenumber") },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s with an unknown api did not panic", name)
					}
				}()
				fn()
			}()
		}
	})
}

// exchangeReply is f.exchange as a reply, for tables over every API.
func (f *fixture) exchangeReply(t *testing.T, code string) reply {
	t.Helper()
	a := f.exchange(t, code)
	raw, _ := json.Marshal(a)
	return reply{Errcode: a.Errcode, Errmsg: a.Errmsg, OpenID: a.OpenID, SessionKey: a.SessionKey, raw: raw}
}

func postRaw(t *testing.T, u, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// TestSessionKeyModes: when a user gets a new session_key, in each of the fake's modes.
func TestSessionKeyModes(t *testing.T) {
	alice := fakewechat.User{OpenID: "o-alice"}
	t.Run("rotate on exchange", func(t *testing.T) {
		f := newFixture(t)
		first := f.exchange(t, f.fake.IssueCode(alice)).SessionKey
		f.fake.IssueCode(alice)
		if f.fake.SessionKeyOf(alice.OpenID) != first {
			t.Error("issuing a code changed the key")
		}
		if second := f.exchange(t, f.fake.IssueCode(alice)).SessionKey; second == first || f.fake.SessionKeyOf(alice.OpenID) != second {
			t.Errorf("a second login kept the key, or SessionKeyOf is not the new one")
		}
	})
	t.Run("keep", func(t *testing.T) {
		f := newFixture(t, func(o *fakewechat.Options) { o.SessionKeys = fakewechat.KeepSessionKey })
		first := f.exchange(t, f.fake.IssueCode(alice)).SessionKey
		if second := f.exchange(t, f.fake.IssueCode(alice)).SessionKey; second != first {
			t.Error("two logins in a row gave two keys")
		}
		if dev := f.exchange(t, "dev-alice"); dev.SessionKey == "" || dev.SessionKey == first {
			t.Errorf("another user (dev-alice) got %q, want a key of its own", dev.SessionKey)
		}
		tok := f.stableToken(t, false).AccessToken
		reset := f.sessionKeyAPI(t, "resetusersessionkey", tok, alice.OpenID, sign(first))
		if reset.SessionKey == first || f.exchange(t, f.fake.IssueCode(alice)).SessionKey != reset.SessionKey {
			t.Error("after a reset, a login does not keep the new key")
		}
	})
	t.Run("rotate on issue", func(t *testing.T) {
		f := newFixture(t, func(o *fakewechat.Options) { o.SessionKeys = fakewechat.RotateOnIssue })
		code := f.fake.IssueCode(alice)
		issued := f.fake.SessionKeyOf(alice.OpenID)
		if issued == "" {
			t.Fatal("issuing a code gave the user no key")
		}
		stored := f.exchange(t, code).SessionKey
		if stored != issued {
			t.Fatalf("the exchange gave %q, want the key of the code's issue", stored)
		}
		// wx.login again, never exchanged: the key the server holds is stale.
		f.fake.IssueCode(alice)
		current := f.fake.SessionKeyOf(alice.OpenID)
		tok := f.stableToken(t, false).AccessToken
		if current == stored {
			t.Fatal("a new wx.login did not rotate the key")
		}
		if r := f.sessionKeyAPI(t, "checksession", tok, alice.OpenID, sign(stored)); r.Errcode != 87009 {
			t.Errorf("checksession with the key of the last exchange: %s, want 87009", r.raw)
		}
		if r := f.sessionKeyAPI(t, "checksession", tok, alice.OpenID, sign(current)); r.Errcode != 0 {
			t.Errorf("checksession with the key of the last wx.login: %s, want ok", r.raw)
		}
		a, b := f.exchange(t, "dev-bob").SessionKey, f.exchange(t, "dev-bob").SessionKey
		if a == b {
			t.Error("a dev code, issued and exchanged at once, did not rotate the key")
		}
	})
	for _, name := range []string{"exchange", "keep", "issue"} {
		m, err := fakewechat.ParseSessionKeys(name)
		if err != nil || m.String() != name {
			t.Errorf("ParseSessionKeys(%q) = %v, %v", name, m, err)
		}
	}
	if _, err := fakewechat.ParseSessionKeys("sometimes"); err == nil {
		t.Error("ParseSessionKeys took an unknown name")
	}
}
