package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// TestLogoutReachesEveryInstanceWithinFiveSeconds: each instance remembers sessions it
// looked up for a few seconds, and the contract bounds what that may cost: a logout on
// one instance is honoured by all within 5 s, and at once by the instance it was made on.
func TestLogoutReachesEveryInstanceWithinFiveSeconds(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		for name, end := range map[string]func(token string){
			"logout": func(token string) {
				if r := e.post(0, token, `mutation { logout }`, nil); r.Code() != "" {
					t.Fatalf("logout: %v", r.Errors)
				}
			},
			"logoutAll": func(token string) {
				if r := e.post(0, token, `mutation { logoutAll }`, nil); r.Code() != "" {
					t.Fatalf("logoutAll: %v", r.Errors)
				}
			},
		} {
			t.Run(name, func(t *testing.T) {
				token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
				for i := range 2 { // both instances have looked it up
					if _, c := e.me(i, token); c != "" {
						t.Fatalf("me on instance %d: %s", i, c)
					}
				}
				end(token)
				if _, c := e.me(0, token); c != "UNAUTHENTICATED" {
					t.Errorf("me on the instance that ended it: %q, want UNAUTHENTICATED at once", c)
				}
				_, before := e.me(1, token)
				e.clock.Advance(5 * time.Second)
				if _, c := e.me(1, token); c != "UNAUTHENTICATED" {
					t.Errorf("me on the other instance 5 s later: %q, want UNAUTHENTICATED", c)
				}
				t.Logf("the other instance at once answered %q (a cached session may still answer for up to 5 s)", before)
			})
		}
	})
}

// TestRevokedSessionEndsAtOnceWhereItWasRevoked: a session this instance has cached and
// then revokes, from another device of the same user, stops working on it at once.
func TestRevokedSessionEndsAtOnceWhereItWasRevoked(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		phone := e.mustLogin(0, e.fake.IssueCode(alice))
		tablet := e.mustLogin(0, e.fake.IssueCode(alice))
		if _, c := e.me(0, tablet.Token); c != "" {
			t.Fatalf("me on the tablet: %s", c)
		}
		id := e.currentSessionID(tablet.Token)
		if r := e.post(0, phone.Token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": id}); string(r.Data["revokeSession"]) != "true" {
			t.Fatalf("revokeSession: %s %v", r.Data["revokeSession"], r.Errors)
		}
		if _, c := e.me(0, tablet.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the revoked tablet: %q, want UNAUTHENTICATED at once", c)
		}
	})
}

// TestMeShowsTheProfileJustSaved: a cached session never hides the user's own edit from
// the instance that made it.
func TestMeShowsTheProfileJustSaved(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		read := func() string {
			r := e.post(0, token, `{ me { nickname } }`, nil)
			var me struct{ Nickname *string }
			if err := json.Unmarshal(r.Data["me"], &me); err != nil || me.Nickname == nil {
				return ""
			}
			return *me.Nickname
		}
		if got := read(); got != "" {
			t.Fatalf("nickname before: %q", got)
		}
		for _, nick := range []string{"Ally", "Alice"} {
			if _, c := e.updateProfile(token, map[string]any{"nickname": nick}); c != "" {
				t.Fatalf("updateProfile: %s", c)
			}
			if got := read(); got != nick {
				t.Errorf("me right after saving %q: %q", nick, got)
			}
		}
	})
}
