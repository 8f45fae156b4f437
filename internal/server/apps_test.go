package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	entuser "github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// loginTo logs in to mini-program appid on instance i.
func (e *env) loginTo(i int, appid, code string) (loginPayload, string) {
	e.t.Helper()
	r := e.post(i, "", `mutation($c: String!, $a: String) {
  login(code: $c, appid: $a) { token isNewUser user { id openid unionid } }
}`, map[string]any{"c": code, "a": appid})
	if c := r.Code(); c != "" {
		return loginPayload{}, c
	}
	var p loginPayload
	jsonUnmarshal(e.t, r.Data["login"], &p)
	return p, ""
}

// person is one WeChat user as two mini-programs see them: two openids, one unionid.
type person struct{ app1, app2 fakewechat.User }

func newPerson(name, unionid string) person {
	return person{
		app1: fakewechat.User{OpenID: "o1" + name + "0000000000000000000000", UnionID: unionid},
		app2: fakewechat.User{OpenID: "o2" + name + "0000000000000000000000", UnionID: unionid},
	}
}

func TestTwoAppsOneUnionIDOneUser(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp())
		alice := newPerson("alice", "uAlice")
		first, c := e.loginTo(0, "", e.fake.IssueCode(alice.app1)) // the default app
		if c != "" || !first.IsNewUser {
			t.Fatalf("first login in app 1: %+v %s", first, c)
		}
		second, c := e.loginTo(0, testAppID2, e.second.IssueCode(alice.app2))
		if c != "" || second.IsNewUser || second.User.ID != first.User.ID {
			t.Fatalf("first login in app 2: user %s new=%v %s; want alice's user %s, not new", second.User.ID, second.IsNewUser, c, first.User.ID)
		}
		if second.User.Openid != alice.app2.OpenID || first.User.Openid != alice.app1.OpenID {
			t.Errorf("openids %s / %s: each session shows its own app's openid", first.User.Openid, second.User.Openid)
		}
		if u, c := e.me(0, second.Token); c != "" || u.ID != first.User.ID || u.Openid != alice.app2.OpenID {
			t.Errorf("me with the app-2 session = %+v %s", u, c)
		}
		if got := e.count(); got["users"] != 1 || got["identities"] != 2 {
			t.Errorf("rows = %v, want 1 user with 2 identities", got)
		}
		if _, c := e.loginTo(0, "wxnotserved00001", e.fake.IssueCode(alice.app1)); c != "BAD_USER_INPUT" {
			t.Errorf("an appid this server does not serve: %q, want BAD_USER_INPUT", c)
		}
		// Each app has its own access token.
		e.bind(0, second.Token, e.second.IssuePhoneCode(alice.app2.OpenID, "13800000000"))
		if e.second.CallsTo("stable_token") != 1 || e.fake.CallsTo("stable_token") != 0 {
			t.Errorf("stable_token calls: app 2 %d, app 1 %d; want 1 and 0", e.second.CallsTo("stable_token"), e.fake.CallsTo("stable_token"))
		}
	})
}

func TestLateUnionIDLinksOrMerges(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp())
		ctx := context.Background()

		// Linking: dave is first seen without a unionid; a later login brings one.
		dave := fakewechat.User{OpenID: "o1dave000000000000000000000"}
		d1, _ := e.loginTo(0, "", e.fake.IssueCode(dave))
		dave.UnionID = "uDave"
		d2, c := e.loginTo(0, "", e.fake.IssueCode(dave))
		if c != "" || d2.User.ID != d1.User.ID || strOrNil(d2.User.Unionid) != "uDave" {
			t.Errorf("dave's later login = %+v %s, want his user, now with the unionid", d2.User, c)
		}

		// Merging: carol's app-1 identity was first seen without a unionid, and she
		// has since logged in to app 2, which made a user holding her unionid.
		carol := newPerson("carol", "uCarol")
		carol.app1.UnionID = ""
		oldCode := e.fake.IssueCode(carol.app1)
		old, _ := e.loginTo(0, "", oldCode)
		viaApp2, _ := e.loginTo(0, testAppID2, e.second.IssueCode(carol.app2))
		if viaApp2.User.ID == old.User.ID {
			t.Fatal("setup: the two logins should have made two users")
		}
		e.updateProfile(old.Token, map[string]any{"nickname": "Carol"})
		if _, c := e.bind(0, old.Token, e.fake.IssuePhoneCode(carol.app1.OpenID, "13600000000")); c != "" {
			t.Fatalf("binding carol's phone before the merge: %s", c)
		}
		carol.app1.UnionID = "uCarol" // WeChat now gives app 1 the unionid too
		merged, c := e.loginTo(0, "", e.fake.IssueCode(carol.app1))
		if c != "" || merged.User.ID != viaApp2.User.ID || merged.IsNewUser {
			t.Fatalf("the late-unionid login = %+v %s, want the app-2 user %s", merged.User, c, viaApp2.User.ID)
		}
		if n := e.db.User.Query().Where(entuser.Unionid("uCarol")).CountX(ctx); n != 1 {
			t.Errorf("%d users with carol's unionid, want 1", n)
		}
		if e.db.User.Query().Where(entuser.ID(mustUUID(t, old.User.ID))).ExistX(ctx) {
			t.Error("the merged-away user is still there")
		}
		// Her older session still works, and now belongs to the merged user, with the
		// nickname she set there carried over.
		r := e.post(0, old.Token, `{ me { id nickname phoneNumber } }`, nil)
		if want := fmt.Sprintf(`{"id":%q,"nickname":"Carol","phoneNumber":"+8613600000000"}`, viaApp2.User.ID); string(r.Data["me"]) != want {
			t.Errorf("the old session's me = %s, want %s", r.Data["me"], want)
		}
		if n := len(e.sessions(merged.Token)); n != 3 {
			t.Errorf("carol's sessions = %d, want her 3 across both apps", n)
		}
		// Her first code, sent again (a retry whose answer was lost), logs in the user
		// her identity belongs to now.
		if again, c := e.loginTo(0, "", oldCode); c != "" || again.User.ID != viaApp2.User.ID {
			t.Errorf("the first code again after the merge = %+v %s, want the merged user %s", again.User, c, viaApp2.User.ID)
		}
	})
}

func TestBothAppsFirstLoginsRace(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp())
		e.addInstance()
		people := make([]person, 8)
		for i := range people {
			people[i] = newPerson(fmt.Sprintf("p%02d", i), fmt.Sprintf("uRace%02d", i))
		}
		ids := make([][2]string, len(people))
		var wg sync.WaitGroup
		for i, p := range people {
			wg.Go(func() {
				r, c := e.loginTo(i%2, "", e.fake.IssueCode(p.app1))
				if c != "" {
					t.Errorf("person %d, app 1: %s", i, c)
				}
				ids[i][0] = r.User.ID
			})
			wg.Go(func() {
				r, c := e.loginTo((i+1)%2, testAppID2, e.second.IssueCode(p.app2))
				if c != "" {
					t.Errorf("person %d, app 2: %s", i, c)
				}
				ids[i][1] = r.User.ID
			})
		}
		wg.Wait()
		for i, pair := range ids {
			if pair[0] != pair[1] {
				t.Errorf("person %d: app 1 user %s, app 2 user %s; want one user", i, pair[0], pair[1])
			}
		}
		if got := e.count(); got["users"] != len(people) || got["identities"] != 2*len(people) {
			t.Errorf("rows = %v, want %d users with 2 identities each", got, len(people))
		}
	})
}
