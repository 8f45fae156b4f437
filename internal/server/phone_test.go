package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
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

// TestPhoneNumbersInOneForm: whatever form WeChat gives a number in (a mainland number
// bare with countryCode a number, another with its area code), and whatever form an
// earlier version stored it in, it is shown in E.164.
func TestPhoneNumbersInOneForm(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if got, c := e.bind(0, p.Token, e.fake.IssuePhoneCodeIn(alice.OpenID, 852, "61234567")); c != "" || got != "+85261234567" {
			t.Errorf("a Hong Kong number: %q %s, want +85261234567", got, c)
		}
		if got, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(alice.OpenID, "13800000000")); c != "" || got != "+8613800000000" {
			t.Errorf("a mainland number: %q %s, want +8613800000000", got, c)
		}

		// A row written by an earlier version, which stored WeChat's bare mainland form.
		ring, err := seal.NewKeyring(e.secretKey)
		if err != nil {
			t.Fatal(err)
		}
		id := uuid.MustParse(p.User.ID)
		e.db.User.UpdateOneID(id).SetPhoneNumber(ring.Seal([]byte("13912345678"), phone.Binding(id))).ExecX(context.Background())
		e.services[0].Forget(id)
		if r := e.post(0, p.Token, `{ me { phoneNumber } }`, nil); string(r.Data["me"]) != `{"phoneNumber":"+8613912345678"}` {
			t.Errorf("a number stored bare: me = %s, want it shown in E.164", r.Data["me"])
		}
	})
}

// TestPhoneRefusalsOfTheirOwn: a code from another mini-program (40013) is the client's
// mistake, answered as such again without asking WeChat; an exhausted quota (1400001)
// tells the client what is wrong and the operator what to do, and leaves the code
// usable once the quota is topped up.
func TestPhoneRefusalsOfTheirOwn(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))

		for range 2 {
			r := e.post(0, p.Token, bindPhone, map[string]any{"c": "fault-otherapp"})
			if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "another mini-program") {
				t.Errorf("a code from another mini-program: %q %v, want BAD_USER_INPUT saying so", r.Code(), r.Errors)
			}
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != 1 {
			t.Errorf("getuserphonenumber calls = %d for the same foreign code twice, want 1", n)
		}

		code := e.fake.IssuePhoneCode(alice.OpenID, "13800000000")
		e.fake.InjectFaultFor("getuserphonenumber", fakewechat.FaultQuota, 1)
		r := e.post(0, p.Token, bindPhone, map[string]any{"c": code})
		if r.Code() != "WECHAT_UNAVAILABLE" || !strings.Contains(r.Errors[0].Message, "quota") {
			t.Errorf("out of quota: %q %v, want WECHAT_UNAVAILABLE naming the quota", r.Code(), r.Errors)
		}
		if !strings.Contains(e.logs.String(), `"level":"ERROR","msg":"wechat: the mini-program's quota of phone numbers is used up`) {
			t.Errorf("no ERROR line tells the operator the quota is used up:\n%s", e.logs)
		}
		if got, c := e.bind(0, p.Token, code); c != "" || got != "+8613800000000" {
			t.Errorf("the same code once the quota is back: %q %s, want the number", got, c)
		}
	})
}

// TestPhoneCodesAreLimitedPerUser: each exchange reaches WeChat (and a success is
// billed), so a user's codes are limited; a code sent again is answered from its
// claim, and spends nothing.
func TestPhoneCodesAreLimitedPerUser(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))
		code := e.fake.IssuePhoneCode(alice.OpenID, "13800000000")
		if _, c := e.bind(0, p.Token, code); c != "" {
			t.Fatal(c)
		}
		random := func(i int) string { return fmt.Sprintf("random-phone-code-%024d", i) }
		for i := 1; i < phone.CodeBurst; i++ {
			if _, c := e.bind(0, p.Token, random(i)); c != "INVALID_CODE" {
				t.Fatalf("random code %d: %s, want INVALID_CODE", i, c)
			}
		}
		r := e.post(0, p.Token, bindPhone, map[string]any{"c": random(phone.CodeBurst)})
		wait := 3600 / phone.CodesPerHour
		if r.Code() != "RATE_LIMITED" || r.Errors[0].Extensions["retryAfter"] != float64(wait) ||
			!strings.Contains(r.Errors[0].Message, "phone codes for this user") || strings.Contains(r.Errors[0].Message, "address") {
			t.Fatalf("code %d: %q %v, want RATE_LIMITED per user with retryAfter %d", phone.CodeBurst+1, r.Code(), r.Errors, wait)
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != phone.CodeBurst {
			t.Errorf("getuserphonenumber calls = %d, want %d: the refused code must not reach WeChat", n, phone.CodeBurst)
		}
		// Codes sent again are answered from their claims, limit or not.
		if got, c := e.bind(0, p.Token, code); c != "" || got != "+8613800000000" {
			t.Errorf("the bound code again: %q %s", got, c)
		}
		if _, c := e.bind(0, p.Token, random(1)); c != "INVALID_CODE" {
			t.Errorf("a refused code again: %s, want INVALID_CODE", c)
		}
		// Another user has an allowance of their own.
		if got, c := e.bind(0, bobs.Token, e.fake.IssuePhoneCode(bob.OpenID, "13800000002")); c != "" || got != "+8613800000002" {
			t.Errorf("bob: %q %s", got, c)
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != phone.CodeBurst+1 {
			t.Errorf("getuserphonenumber calls = %d, want %d", n, phone.CodeBurst+1)
		}
		// The refused code left no claim: once the bucket refills, it is asked about.
		e.clock.Advance(time.Duration(wait) * time.Second)
		if _, c := e.bind(0, p.Token, random(phone.CodeBurst)); c != "INVALID_CODE" {
			t.Errorf("after %d s: %s, want the code asked about (INVALID_CODE)", wait, c)
		}
	})
}
