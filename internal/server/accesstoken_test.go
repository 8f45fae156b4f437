package server_test

import (
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// TestAccessTokenKeepsBeingRejected: WeChat rejects every use of the access token
// (40001). bindPhoneNumber and decryptOpenData (its checksession) answer
// WECHAT_UNAVAILABLE saying so, at once, on both instances, with at most one forced
// refresh and a few stable_token calls for the fleet, and no phone code spent.
func TestAccessTokenKeepsBeingRejected(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		people := []string{e.mustLogin(0, e.fake.IssueCode(alice)).Token, e.mustLogin(1, e.fake.IssueCode(bob)).Token}
		e.fake.RejectAccessTokens(40001, -1)
		answers := []gqlResult{}
		for i := range 4 {
			openid := []string{alice.OpenID, bob.OpenID}[i%2]
			answers = append(answers, e.post(i/2, people[i%2], bindPhone, map[string]any{"c": e.fake.IssuePhoneCode(openid, "13800000000")}))
		}
		// Data made with another key makes decryptOpenData ask WeChat about the stored one.
		data, iv := sealOpenData(t, "AAAAAAAAAAAAAAAAAAAAAA==", openDataJSON(testAppID, e.clock.Now()))
		answers = append(answers, e.post(1, people[0], decryptQuery, map[string]any{"d": data, "iv": iv}))
		for i, r := range answers {
			if r.Code() != "WECHAT_UNAVAILABLE" || r.Errors[0].Message != "WeChat keeps rejecting the server's access token: try again in a minute." {
				t.Errorf("request %d: %s %v; want WECHAT_UNAVAILABLE saying WeChat keeps rejecting the token", i, r.Code(), r.Errors)
			}
		}
		if n := e.fake.ForceRefreshCalls(); n > 1 {
			t.Errorf("%d forced refreshes, want at most 1", n)
		}
		if n := e.fake.CallsTo("stable_token"); n > 1+2*len(e.instances) {
			t.Errorf("%d stable_token calls for 5 requests on 2 instances, want %d at most", n, 1+2*len(e.instances))
		}
		if n := e.fake.PhoneExchanges(); n != 0 {
			t.Errorf("%d phone exchanges billed with a rejected token", n)
		}
		if strings.Contains(e.logs.String(), testSecret) {
			t.Error("the log holds the app secret")
		}
	})
}

// TestServerIPNotInAllowList: WeChat refuses the server's address (40164). The request
// answers INTERNAL at once, with no refresh loop, and an ERROR line tells the operator
// what to do, with neither the secret nor a token in it.
func TestServerIPNotInAllowList(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		e.fake.SetIPAllowList("203.0.113.7")
		if _, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(alice.OpenID, "13800000000")); c != "INTERNAL" {
			t.Errorf("bindPhoneNumber from an address not allowed: %s, want INTERNAL", c)
		}
		if n := e.fake.CallsTo("stable_token"); n != 1 {
			t.Errorf("stable_token calls = %d, want 1: no refresh loop", n)
		}
		if n := e.fake.CallsTo("getuserphonenumber"); n != 0 {
			t.Errorf("getuserphonenumber calls = %d without a token, want 0", n)
		}
		logs := e.logs.String()
		if !strings.Contains(logs, "add this server's outbound IP to the mini-program's API IP allow-list in the WeChat admin console") {
			t.Errorf("no log line says what to do:\n%s", logs)
		}
		if strings.Contains(logs, testSecret) || strings.Contains(logs, `"access_token":"`) {
			t.Error("the log holds the secret or a token")
		}
		e.fake.SetIPAllowList()
		if _, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(alice.OpenID, "13800000000")); c != "" {
			t.Errorf("once the address is allowed: %s", c)
		}
	})
}
