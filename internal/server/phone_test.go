package server_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

const bindPhone = `mutation($c: String!) { bindPhoneNumber(code: $c) { id phoneNumber } }`

// bind binds a phone number with code on instance i and returns the number shown, or
// the error code.
func (e *env) bind(i int, token, code string) (string, string) {
	e.t.Helper()
	r := e.post(i, token, bindPhone, map[string]any{"c": code})
	if c := r.Code(); c != "" {
		return "", c
	}
	var u struct{ PhoneNumber *string }
	jsonUnmarshal(e.t, r.Data["bindPhoneNumber"], &u)
	return strOrNil(u.PhoneNumber), ""
}

func TestBindPhoneNumber(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))
		code := e.fake.IssuePhoneCode(alice.OpenID, "13800000000")
		if got, c := e.bind(0, p.Token, code); c != "" || got != "+8613800000000" {
			t.Fatalf("bindPhoneNumber = %q %s, want +8613800000000", got, c)
		}
		if r := e.post(0, p.Token, `{ me { phoneNumber } }`, nil); string(r.Data["me"]) != `{"phoneNumber":"+8613800000000"}` {
			t.Errorf("me = %s", r.Data["me"])
		}
		if r := e.post(0, bobs.Token, `{ me { phoneNumber } }`, nil); string(r.Data["me"]) != `{"phoneNumber":null}` {
			t.Errorf("bob's me = %s, want no number", r.Data["me"])
		}
		// Another user cannot use alice's code, and WeChat is not asked.
		if _, c := e.bind(0, bobs.Token, code); c != "INVALID_CODE" {
			t.Errorf("bob with alice's code: %q, want INVALID_CODE", c)
		}
		// The number is sealed at rest and never logged.
		if dump := dumpDatabase(t, e); bytes.Contains(dump, []byte("13800000000")) {
			t.Error("the database dump holds the phone number in plain form")
		}
		if strings.Contains(e.logs.String(), "13800000000") || strings.Contains(e.logs.String(), code) {
			t.Error("the log holds the phone number or the phone code")
		}
		if n := e.fake.PhoneExchanges(); n != 1 {
			t.Errorf("billed exchanges = %d, want 1", n)
		}
	})
}

func TestPhoneCodeIsExchangedOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		code := e.fake.IssuePhoneCode(alice.OpenID, "13900000001")
		got := make([]string, 12)
		errs := make([]string, 12)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() { got[i], errs[i] = e.bind(i%2, p.Token, code) })
		}
		wg.Wait()
		for i := range got {
			if errs[i] != "" || got[i] != "+8613900000001" {
				t.Errorf("bind %d: %q %s", i, got[i], errs[i])
			}
		}
		if again, c := e.bind(1, p.Token, code); c != "" || again != "+8613900000001" {
			t.Errorf("a retry later: %q %s", again, c)
		}
		if n := e.fake.PhoneExchanges(); n != 1 {
			t.Errorf("billed exchanges = %d for 13 binds with one code, want 1", n)
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != 1 {
			t.Errorf("getuserphonenumber calls = %d, want 1", n)
		}
	})
}

func TestPhoneBindingsShareOneAccessToken(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				u := alice
				u.OpenID = u.OpenID[:len(u.OpenID)-2] + string(rune('a'+i)) + "x"
				p := e.mustLogin(i%2, e.fake.IssueCode(u))
				if _, c := e.bind(i%2, p.Token, e.fake.IssuePhoneCode(u.OpenID, "1370000000"+string(rune('0'+i)))); c != "" {
					t.Errorf("bind %d: %s", i, c)
				}
			})
		}
		wg.Wait()
		if n := e.fake.CallsTo("stable_token"); n != 1 {
			t.Errorf("stable_token calls = %d for 10 bindings on 2 instances, want 1", n)
		}
	})
}

func TestRejectedAccessTokenMidFlight(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if _, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(alice.OpenID, "13800000000")); c != "" {
			t.Fatal(c)
		}
		e.fake.InvalidateAccessTokens() // another server refreshed the token
		if got, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(alice.OpenID, "13800000009")); c != "" || got != "+8613800000009" {
			t.Errorf("bind with a token WeChat has dropped: %q %s, want recovered", got, c)
		}
		if n := e.fake.CallsTo("stable_token"); n != 2 {
			t.Errorf("stable_token calls = %d, want 2: one refresh", n)
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != 3 {
			t.Errorf("getuserphonenumber calls = %d, want 3: one rejected, one retry", n)
		}
	})
}

func TestBadPhoneCodes(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		for name, code := range map[string]string{"empty": "", "too long": strings.Repeat("a", 129), "space": "a b"} {
			if _, c := e.bind(0, p.Token, code); c != "BAD_USER_INPUT" {
				t.Errorf("%s code: %q, want BAD_USER_INPUT", name, c)
			}
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != 0 {
			t.Errorf("bad input reached WeChat %d times", n)
		}
		r := e.post(0, p.Token, bindPhone, map[string]any{"c": "never-issued-phone-code-000001"})
		if r.Code() != "INVALID_CODE" || !strings.Contains(r.Errors[0].Message, "getPhoneNumber button") {
			t.Errorf("unknown code: %q %v, want INVALID_CODE telling to tap the button again", r.Code(), r.Errors)
		}
		if _, c := e.bind(0, p.Token, "never-issued-phone-code-000001"); c != "INVALID_CODE" || e.fake.CallsTo("getuserphonenumber") != 1 {
			t.Errorf("the same unknown code again: %q with %d calls, want INVALID_CODE without asking again", c, e.fake.CallsTo("getuserphonenumber"))
		}
		if _, c := e.bind(0, "", e.fake.IssuePhoneCode(alice.OpenID, "13800000000")); c != "UNAUTHENTICATED" {
			t.Errorf("without a session: %q", c)
		}
	})
}
