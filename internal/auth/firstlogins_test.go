package auth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// groupService is a Service on a fresh database whose WeChat is never asked: the
// group's logins come with WeChat's answers already.
func groupService(t *testing.T, b testdb.Backend, policy Policy) *Service {
	t.Helper()
	wc, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:9", AppID: "wxgroupapp000001", Secret: "group-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{DB: b.Open(t), Apps: []WeChat{wc}, Keyring: ring, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// groupOf claims a code for each openid and makes the group's calls.
func groupOf(t *testing.T, svc *Service, openids ...string) []*call[groupLogin, groupLoggedIn] {
	t.Helper()
	var batch []*call[groupLogin, groupLoggedIn]
	for _, openid := range openids {
		claim, err := svc.claims.claim(context.Background(), CodeHash("wxgroupapp000001", "code-"+openid+fmt.Sprint(time.Now().UnixNano())), svc.clock())
		if err != nil || claim == 0 {
			t.Fatalf("claiming a code for %s: %d, %v", openid, claim, err)
		}
		ws := wechat.Session{OpenID: openid, SessionKey: "c2Vzc2lvbmtleTE2Ynl0ZQ=="}
		if strings.HasSuffix(openid, "u") {
			ws.UnionID = "union-" + openid
		}
		batch = append(batch, &call[groupLogin, groupLoggedIn]{
			q:    groupLogin{appid: "wxgroupapp000001", ws: ws, claim: claim, client: Client{IP: "192.0.2.7", UserAgent: "group-test"}},
			done: make(chan struct{}),
		})
	}
	return batch
}

func rowCounts(t *testing.T, svc *Service) [4]int {
	t.Helper()
	ctx := context.Background()
	return [4]int{
		svc.db.User.Query().CountX(ctx),
		svc.db.Identity.Query().CountX(ctx),
		svc.db.Session.Query().CountX(ctx),
		svc.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventLoginSucceeded)).CountX(ctx),
	}
}

// First logins sent together are made in one transaction: each gets its own user,
// identity, session (its token works) and audit row, and its code's record names them.
// When one row is refused or one claim has gone, none of them is kept, and each is
// told to log in alone.
func TestFirstLoginsTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		svc := groupService(t, b, Policy{})
		ctx := context.Background()

		group := groupOf(t, svc, "o-alice", "o-bob-u", "o-carol", "o-dan-u")
		svc.firstLogins.sendBatch(group)
		if got := rowCounts(t, svc); got != [4]int{4, 4, 4, 4} {
			t.Errorf("users, identities, sessions, login audit rows = %v, want 4 of each", got)
		}
		for _, c := range group {
			if c.err != nil {
				t.Fatalf("%s: %v", c.q.ws.OpenID, c.err)
			}
			cur, err := svc.authenticate(ctx, c.a.login.Token, true)
			if err != nil || cur.Account.User.ID != c.a.login.Account.User.ID || cur.Account.Identity.Openid != c.q.ws.OpenID {
				t.Errorf("%s: its token authenticates as %+v, %v; want its own user", c.q.ws.OpenID, cur, err)
			}
			if u := cur.Account.User.Unionid; (c.q.ws.UnionID == "") != (u == nil) || (u != nil && *u != c.q.ws.UnionID) {
				t.Errorf("%s: unionid %v, want %q", c.q.ws.OpenID, u, c.q.ws.UnionID)
			}
			rec := svc.db.LoginCode.GetX(ctx, c.q.claim)
			if rec.State != logincode.StateDone || *rec.UserID != c.a.rec.userID || *rec.IdentityID != c.a.rec.identityID || !rec.NewUser {
				t.Errorf("%s: the code's record is %s, user %v, identity %v, new %v; want done with its login's", c.q.ws.OpenID, rec.State, rec.UserID, rec.IdentityID, rec.NewUser)
			}
		}

		// The same person twice in one group: the identity's index refuses the second.
		twice := groupOf(t, svc, "o-erin", "o-frank", "o-erin")
		svc.firstLogins.sendBatch(twice)
		// One claim gone before its group's transaction.
		gone := groupOf(t, svc, "o-gina", "o-hal")
		svc.db.LoginCode.DeleteOneID(gone[1].q.claim).ExecX(ctx)
		svc.firstLogins.sendBatch(gone)
		for _, c := range append(twice, gone...) {
			if c.err != errAlone {
				t.Errorf("%s: %v, want errAlone", c.q.ws.OpenID, c.err)
			}
		}
		if got := rowCounts(t, svc); got != [4]int{4, 4, 4, 4} {
			t.Errorf("after the groups that failed: %v, want the first group's rows only", got)
		}

		// An openid that does not fit an identity fails its own login only.
		mixed := groupOf(t, svc, "o-ivy", strings.Repeat("o", 200))
		svc.firstLogins.sendBatch(mixed)
		if mixed[0].err != nil || mixed[1].err == nil || !strings.Contains(mixed[1].err.Error(), "does not fit an identity") {
			t.Errorf("a group with an openid too long: %v and %v; want success, then the openid's error", mixed[0].err, mixed[1].err)
		}
		if got := rowCounts(t, svc); got != [4]int{5, 5, 5, 5} {
			t.Errorf("after the group with an openid too long: %v, want one login more", got)
		}
		if n := svc.db.LoginCode.Query().Where(logincode.StateEQ(logincode.StatePending)).CountX(ctx); n != 5 {
			t.Errorf("%d claims pending, want 5: the failed groups' (but the one deleted) and the openid too long's", n)
		}
	})
}
