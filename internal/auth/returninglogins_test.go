package auth

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

// Returning logins sent together are made in one transaction: each logs its own user in
// with the session_key WeChat just gave and the user's login time moved on, its token
// works, and its code's record names its user. Past the cap, each user keeps its most
// recent session and the one just made, and the login that ended the others tells of
// them. Logins the group cannot make go alone and leave nothing; a claim gone sends
// every login of its group alone.
func TestReturningLoginsTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		svc := groupService(t, b, Policy{MaxSessions: 2})
		ctx := context.Background()
		first := groupOf(t, svc, "o-alice", "o-bob-u", "o-carol")
		svc.firstLogins.sendBatch(first)
		userOf := map[string]uuid.UUID{}
		for _, c := range first {
			if c.err != nil {
				t.Fatalf("first login of %s: %v", c.q.ws.OpenID, c.err)
			}
			userOf[c.q.ws.OpenID] = c.a.rec.userID
		}

		const newKey = "bmV3IHNlc3Npb24ga2V5IQ=="
		again := groupOf(t, svc, "o-alice", "o-bob-u", "o-carol")
		for _, c := range again {
			c.q.ws.SessionKey = newKey
		}
		svc.returningLogins.sendBatch(again)
		for _, c := range again {
			openid := c.q.ws.OpenID
			if c.err != nil {
				t.Fatalf("%s: %v", openid, c.err)
			}
			if c.a.rec.userID != userOf[openid] || c.a.login.Account.User.ID != userOf[openid] || c.a.login.NewUser || c.a.rec.newUser {
				t.Errorf("%s: logged in user %v (new %v), want its own, %v", openid, c.a.rec.userID, c.a.login.NewUser, userOf[openid])
			}
			cur, err := svc.authenticate(ctx, c.a.login.Token, true)
			if err != nil || cur.Account.User.ID != userOf[openid] {
				t.Errorf("%s: its token authenticates as %+v, %v; want its user", openid, cur, err)
			}
			ident := svc.db.Identity.Query().Where(identity.Openid(openid)).OnlyX(ctx)
			if key, err := svc.keyring.Open(ident.SessionKey, IdentityBinding(ident.Appid, openid)); err != nil || string(key) != newKey {
				t.Errorf("%s: the identity's session_key opens to %q, %v; want WeChat's new one", openid, key, err)
			}
			if u := svc.db.User.GetX(ctx, userOf[openid]); !u.LastLoginAt.After(u.CreatedAt) {
				t.Errorf("%s: last login %v, not after the first, %v", openid, u.LastLoginAt, u.CreatedAt)
			}
			rec := svc.db.LoginCode.GetX(ctx, c.q.claim)
			if rec.State != logincode.StateDone || *rec.UserID != userOf[openid] || *rec.IdentityID != ident.ID || rec.NewUser {
				t.Errorf("%s: the code's record is %s, user %v, identity %v, new %v; want done with its login's", openid, rec.State, rec.UserID, rec.IdentityID, rec.NewUser)
			}
		}
		if got := rowCounts(t, svc); got != [4]int{3, 3, 6, 6} {
			t.Errorf("users, identities, sessions, login audit rows = %v, want 3, 3, 6, 6", got)
		}

		// A third login each for alice and bob puts them past the cap of 2: their
		// first sessions end, the second and third stay.
		third := groupOf(t, svc, "o-alice", "o-bob-u")
		svc.returningLogins.sendBatch(third)
		for i, c := range third {
			openid := c.q.ws.OpenID
			if c.err != nil {
				t.Fatalf("third login of %s: %v", openid, c.err)
			}
			if _, err := svc.authenticate(ctx, first[i].a.login.Token, true); err == nil {
				t.Errorf("%s: the first session still works past the cap", openid)
			}
			for _, tok := range []string{again[i].a.login.Token, c.a.login.Token} {
				if _, err := svc.authenticate(ctx, tok, true); err != nil {
					t.Errorf("%s: a session within the cap fails: %v", openid, err)
				}
			}
			var evicted []uuid.UUID
			for _, e := range c.a.entries {
				if e.event == auditevent.EventSessionEvicted {
					evicted = append(evicted, *e.sessionID)
				}
			}
			if len(evicted) != 1 || evicted[0] != *first[i].a.entries[0].sessionID {
				t.Errorf("%s: the login tells of ending %v, want its first session %v", openid, evicted, *first[i].a.entries[0].sessionID)
			}
		}
		if n := svc.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventSessionEvicted)).CountX(ctx); n != 2 {
			t.Errorf("%d eviction audit rows, want 2", n)
		}

		// The group logs carol in once: the same person twice, an identity that is not
		// there and a unionid alice's user lacks go alone, and leave no row.
		alone := groupOf(t, svc, "o-carol", "o-carol", "o-nobody", "o-alice")
		alone[3].q.ws.UnionID = "union-alice-new"
		svc.returningLogins.sendBatch(alone)
		if alone[0].err != nil {
			t.Errorf("carol: %v", alone[0].err)
		}
		for _, c := range alone[1:] {
			if c.err != errAlone {
				t.Errorf("%s (unionid %q): %v, want errAlone", c.q.ws.OpenID, c.q.ws.UnionID, c.err)
			}
			if rec := svc.db.LoginCode.GetX(ctx, c.q.claim); rec.State != logincode.StatePending {
				t.Errorf("%s: its code's record is %s, want still pending for its own login", c.q.ws.OpenID, rec.State)
			}
		}
		if got := rowCounts(t, svc); got != [4]int{3, 3, 9, 9} {
			t.Errorf("after the group with logins that go alone: %v, want carol's login only", got)
		}

		// One claim gone before its group's transaction: no login of the group is kept.
		gone := groupOf(t, svc, "o-carol", "o-bob-u")
		svc.db.LoginCode.DeleteOneID(gone[1].q.claim).ExecX(ctx)
		svc.returningLogins.sendBatch(gone)
		for _, c := range gone {
			if c.err != errAlone {
				t.Errorf("%s: %v, want errAlone", c.q.ws.OpenID, c.err)
			}
		}
		if got := rowCounts(t, svc); got != [4]int{3, 3, 9, 9} {
			t.Errorf("after the group whose claim had gone: %v, want no change", got)
		}
	})
}
