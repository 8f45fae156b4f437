package server_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// A person with a distinctive trail: what must not survive the deletion of their account.
var (
	dora      = newPerson("Dora", "uDora000000000000000000001")
	doraAgent = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50 DoraPhone/17"
)

// postAs is post with the User-Agent of the person's phone.
func (e *env) postAs(i int, token, agent, query string, vars map[string]any) gqlResult {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.instances[i].URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", agent)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

// dump is every row of the tables, as text: what a database dump would show.
func dump(t *testing.T, db *sql.DB, tables ...string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range tables {
		text, _ := dumpTable(t, db, table)
		b.WriteString(text)
	}
	return b.String()
}

var allTables = []string{"users", "identities", "sessions", "login_codes", "phone_codes", "audit_events", "access_tokens"}

// TestDeleteAccount: myData is a copy of what wxlogin holds; deleteAccount then leaves
// nothing personal in the database (a dump holds none of the openids, the unionid, the
// nickname, the avatar, the phone number, the IP or the User-Agent), every token dies
// (at once where it was made, within 5 s on another instance), the audit trail keeps
// the user's id without their address, and the next login is a new user.
func TestDeleteAccount(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withSecondApp())
		e.addInstance()
		first := e.postAs(0, "", doraAgent, loginMutation, map[string]any{"code": e.fake.IssueCode(dora.app1)})
		var p loginPayload
		jsonUnmarshal(t, first.Data["login"], &p)
		other, _ := e.loginTo(1, testAppID2, e.second.IssueCode(dora.app2))
		if other.User.ID != p.User.ID {
			t.Fatalf("one unionid, two users: %s and %s", p.User.ID, other.User.ID)
		}
		if _, c := e.updateProfile(p.Token, map[string]any{"nickname": "DoraTheNick", "avatarUrl": "https://example.com/dora-avatar.png"}); c != "" {
			t.Fatal(c)
		}
		if _, c := e.bind(0, p.Token, e.fake.IssuePhoneCode(dora.app1.OpenID, "13812345678")); c != "" {
			t.Fatal(c)
		}
		if u, c := e.me(1, other.Token); c != "" || u.ID != p.User.ID { // instance 1 now caches this session
			t.Fatalf("me on instance 1: %v %s", u, c)
		}

		r := e.post(0, p.Token, `{ myData }`, nil)
		var data struct {
			User struct {
				ID, Nickname, PhoneNumber string
				Unionid                   *string
			}
			Identities  []struct{ Appid, Openid string }
			Sessions    []struct{ ID, IP, UserAgent string }
			AuditEvents []struct{ Event string }
		}
		if err := json.Unmarshal(r.Data["myData"], &data); err != nil || r.Code() != "" {
			t.Fatalf("myData: %s %v %s", r.Code(), err, r.Data["myData"])
		}
		if data.User.ID != p.User.ID || data.User.Nickname != "DoraTheNick" || data.User.PhoneNumber != "+8613812345678" || len(data.Identities) != 2 || len(data.Sessions) != 2 || len(data.AuditEvents) < 2 {
			t.Errorf("myData = %s", r.Data["myData"])
		}
		for _, secret := range []string{"session_key", "sessionKey", "token_hash", "tokenHash"} {
			if strings.Contains(string(r.Data["myData"]), secret) {
				t.Errorf("myData shows %s", secret)
			}
		}

		if before := dump(t, e.db.SQL, allTables...); !strings.Contains(before, dora.app2.OpenID) || !strings.Contains(before, "DoraPhone") || !strings.Contains(before, "DoraTheNick") {
			t.Fatalf("the dump before the deletion lacks the person's openid, agent or nickname, so it proves nothing:\n%s", before)
		}
		if r := e.postAs(0, p.Token, doraAgent, `mutation { deleteAccount }`, nil); r.Code() != "" || string(r.Data["deleteAccount"]) != "true" {
			t.Fatalf("deleteAccount: %s %s", r.Code(), r.Data["deleteAccount"])
		}
		if _, c := e.me(0, p.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the deleting session after the deletion: %q, want UNAUTHENTICATED", c)
		}
		e.clock.Advance(5 * time.Second)
		if _, c := e.me(1, other.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the other mini-program's session on another instance 5 s later: %q, want UNAUTHENTICATED", c)
		}
		if a := e.verify(1, "GET", "/auth/verify", "Bearer "+other.Token); a.status != http.StatusUnauthorized {
			t.Errorf("forward auth after the deletion: %d", a.status)
		}

		text := dump(t, e.db.SQL, allTables...)
		for what, v := range map[string]string{
			"openid of app 1": dora.app1.OpenID, "openid of app 2": dora.app2.OpenID, "unionid": dora.app1.UnionID,
			"nickname": "DoraTheNick", "avatar": "dora-avatar", "phone": "13812345678", "IP": "127.0.0.1", "User-Agent": "DoraPhone",
		} {
			if strings.Contains(text, v) {
				t.Errorf("the database still holds the %s (%s):\n%s", what, v, text)
			}
		}
		var kept, withAddress int
		e.db.SQL.QueryRow("SELECT COUNT(*) FROM audit_events WHERE user_id = ?", p.User.ID).Scan(&kept)
		e.db.SQL.QueryRow("SELECT COUNT(*) FROM audit_events WHERE ip IS NOT NULL OR user_agent IS NOT NULL").Scan(&withAddress)
		if kept < 3 || withAddress != 0 {
			t.Errorf("audit rows of the user: %d (want the trail, with the deletion), with an address or agent: %d (want 0)", kept, withAddress)
		}
		if !strings.Contains(text, "deleted") {
			t.Error("no deleted audit event")
		}

		again := e.mustLogin(1, e.fake.IssueCode(dora.app1))
		if !again.IsNewUser || again.User.ID == p.User.ID {
			t.Errorf("a login after the deletion: isNewUser %v, id %s (was %s); want a new user", again.IsNewUser, again.User.ID, p.User.ID)
		}
	})
}

// TestDeletionRacesLogins: logins of the same person racing with the deletion of their
// account leave the old user entirely gone, and at most a new one made after it, never
// a half-deleted account: no session of the old user works, and nothing of it is left.
func TestDeletionRacesLogins(t *testing.T) {
	b := mysqlBackend(t)
	e := newEnv(t, b)
	e.addInstance()
	for round := range 8 {
		person := fakewechat.User{OpenID: fmt.Sprintf("oRace%023d", round)}
		old := e.mustLogin(0, e.fake.IssueCode(person))
		codes := make([]string, 6)
		for i := range codes {
			codes[i] = e.fake.IssueCode(person)
		}
		var wg sync.WaitGroup
		tokens := make([]loginPayload, len(codes))
		wg.Go(func() {
			if r := e.post(0, old.Token, `mutation { deleteAccount }`, nil); r.Code() != "" {
				t.Errorf("round %d: deleteAccount: %s", round, r.Code())
			}
		})
		for i, code := range codes {
			wg.Go(func() { tokens[i], _ = e.login(i%2, code) })
		}
		wg.Wait()

		var oldRows, users int
		e.db.SQL.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", old.User.ID).Scan(&oldRows)
		e.db.SQL.QueryRow("SELECT COUNT(DISTINCT user_id) FROM identities WHERE openid = ?", person.OpenID).Scan(&users)
		var orphans int
		e.db.SQL.QueryRow("SELECT COUNT(*) FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL").Scan(&orphans)
		if oldRows != 0 || users > 1 || orphans != 0 {
			t.Errorf("round %d: old user rows %d (want 0), users with the openid %d (want at most 1), orphaned sessions %d", round, oldRows, users, orphans)
		}
		var before, after int
		for _, p := range tokens {
			switch {
			case p.Token == "":
			case p.User.ID == old.User.ID:
				before++
			default:
				after++
			}
		}
		t.Logf("round %d: %d logins landed on the old user before its deletion, %d on a new user after it", round, before, after)
		e.clock.Advance(5 * time.Second)
		for i, p := range tokens {
			if p.Token == "" {
				continue
			}
			u, c := e.me(i%2, p.Token)
			switch {
			case p.User.ID == old.User.ID && c != "UNAUTHENTICATED":
				t.Errorf("round %d: a login of the deleted user still works: %+v", round, u)
			case p.User.ID != old.User.ID && c != "":
				t.Errorf("round %d: a login of the new user fails: %s", round, c)
			}
		}
	}
}
