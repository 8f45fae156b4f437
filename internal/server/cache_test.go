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

// TestChangesAfterAMergeOnAnotherInstance: instance 0 has cached carol's older session
// under the user she had before instance 1 merged her into her other app's user. What
// she then changes through instance 0 acts on the merged user, and ends at once there.
func TestChangesAfterAMergeOnAnotherInstance(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp())
		e.addInstance()
		// merge logs the person in to app 1 without a unionid and to app 2 with one,
		// has instance 0 cache the app-1 session, then logs in to app 1 with the
		// unionid on instance 1, which merges the two users.
		merge := func(name string) (old, merged loginPayload, oldID string) {
			p := newPerson(name, "u"+name)
			p.app1.UnionID = ""
			old, _ = e.loginTo(0, "", e.fake.IssueCode(p.app1))
			if _, c := e.loginTo(0, testAppID2, e.second.IssueCode(p.app2)); c != "" {
				t.Fatalf("app-2 login: %s", c)
			}
			oldID = e.currentSessionID(old.Token) // this also caches it on instance 0
			p.app1.UnionID = "u" + name
			merged, c := e.loginTo(1, "", e.fake.IssueCode(p.app1))
			if c != "" || merged.User.ID == old.User.ID {
				t.Fatalf("the merging login: %+v %s", merged.User, c)
			}
			return old, merged, oldID
		}

		t.Run("logoutAll", func(t *testing.T) {
			old, merged, _ := merge("carol")
			r := e.post(0, old.Token, `mutation { logoutAll }`, nil)
			if r.Code() != "" || string(r.Data["logoutAll"]) != "3" {
				t.Fatalf("logoutAll through the older session on instance 0 = %s %v, want 3 sessions ended", r.Data["logoutAll"], r.Errors)
			}
			for name, token := range map[string]string{"older": old.Token, "merging": merged.Token} {
				for i := range 2 {
					if _, c := e.me(i, token); c != "UNAUTHENTICATED" {
						t.Errorf("the %s session on instance %d after logoutAll: %q, want UNAUTHENTICATED", name, i, c)
					}
				}
			}
		})
		t.Run("revokeSession", func(t *testing.T) {
			old, merged, oldID := merge("erin")
			r := e.post(0, merged.Token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": oldID})
			if string(r.Data["revokeSession"]) != "true" {
				t.Fatalf("revoking the older session on instance 0: %s %v", r.Data["revokeSession"], r.Errors)
			}
			if _, c := e.me(0, old.Token); c != "UNAUTHENTICATED" {
				t.Errorf("the revoked session on the instance that revoked it: %q, want UNAUTHENTICATED at once", c)
			}
		})
	})
}

// TestDecryptAfterALoginOnAnotherInstance: a login replaces the session_key, and the
// mini-program then encrypts with the new one; a session cached before that login
// decrypts with the new key on any instance.
func TestDecryptAfterALoginOnAnotherInstance(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		if _, c := e.me(0, token); c != "" {
			t.Fatalf("me: %s", c)
		}
		e.mustLogin(1, e.fake.IssueCode(alice)) // a new session_key
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		got, c := e.decrypt(token, data, iv, nil, nil)
		if c != "" || got["openGId"] != "GroupOpenId0001" {
			t.Errorf("decrypting with the new session_key through the older session: %v %s", got, c)
		}
	})
}
