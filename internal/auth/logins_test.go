package auth

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

// testService is a Service on a fresh database of the backend's kind, with o's
// policy and session cache, logging in through the fake WeChat over HTTP.
func testService(tb testing.TB, b testdb.Backend, o Options) (*Service, *fakewechat.Server) {
	tb.Helper()
	const appID, secret = "wxlogintest00001", "login-test-secret"
	fake := fakewechat.New(fakewechat.Options{AppID: appID, Secret: secret})
	srv := httptest.NewServer(fake)
	tb.Cleanup(func() { srv.Close(); fake.Close() })
	wc, err := wechat.New(wechat.Config{BaseURL: srv.URL, AppID: appID, Secret: secret})
	if err != nil {
		tb.Fatal(err)
	}
	if o.Keyring, err = seal.NewKeyring([]byte(strings.Repeat("k", 32))); err != nil {
		tb.Fatal(err)
	}
	o.DB, o.Apps = b.Open(tb), []wxapp.App{{Client: wc}}
	svc, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return svc, fake
}

// loginService is testService whose WeChat answers take a few milliseconds, as across
// the internet, so that logins sent at once are in flight together and go in groups.
func loginService(t *testing.T, b testdb.Backend, policy Policy) (*Service, *fakewechat.Server) {
	t.Helper()
	svc, fake := testService(t, b, Options{Policy: policy})
	fake.SetLatency(5 * time.Millisecond)
	return svc, fake
}

// loginsAtOnce logs each user in with a fresh code of its own, all at once, and
// returns each login and error in order.
func loginsAtOnce(svc *Service, fake *fakewechat.Server, users []fakewechat.User) ([]*Login, []error) {
	logins, errs := make([]*Login, len(users)), make([]error, len(users))
	codes := make([]string, len(users))
	for i, u := range users {
		codes[i] = fake.IssueCode(u)
	}
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			logins[i], errs[i] = svc.Login(context.Background(), "", codes[i], Client{IP: fmt.Sprintf("192.0.2.%d", i%200), UserAgent: "logins-test"})
		})
	}
	wg.Wait()
	return logins, errs
}

// Logins that come together, first ones and returning ones, each person twice at once,
// some with a unionid: each logs its own person in, one user per openid (and per
// unionid), its token authenticates as that user, its code's record names them; a
// login WeChat answers with an openid no identity can hold fails alone; past the cap
// of sessions, the least recently used end. Whatever groups the logins went in, no
// login fails for another's sake.
func TestLoginsThatComeTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		svc, fake := loginService(t, b, Policy{MaxSessions: 2})
		ctx := context.Background()
		var people []fakewechat.User
		for i := range 12 {
			u := fakewechat.User{OpenID: fmt.Sprintf("o-together-%02d", i)}
			if i%3 == 0 {
				u.UnionID = fmt.Sprintf("u-together-%02d", i)
			}
			people = append(people, u)
		}
		twice := append(append([]fakewechat.User{}, people...), people...)
		tooLong := fakewechat.User{OpenID: strings.Repeat("o", 200)}

		check := func(round string, users []fakewechat.User, logins []*Login, errs []error) {
			t.Helper()
			for i, u := range users {
				if errs[i] != nil {
					t.Errorf("%s, login %d of %s: %v", round, i, u.OpenID, errs[i])
					continue
				}
				l := logins[i]
				cur, err := svc.authenticate(ctx, l.Token, true)
				if err != nil || cur.Account.Identity.Openid != u.OpenID || cur.Account.User.ID != l.Account.User.ID {
					t.Errorf("%s, login %d of %s: the token authenticates as %+v, %v; want its own person", round, i, u.OpenID, cur, err)
					continue
				}
				if got := cur.Account.User.Unionid; (u.UnionID == "") != (got == nil) || (got != nil && *got != u.UnionID) {
					t.Errorf("%s, %s: unionid %v, want %q", round, u.OpenID, got, u.UnionID)
				}
			}
		}

		logins, errs := loginsAtOnce(svc, fake, append(twice, tooLong))
		if err := errs[len(errs)-1]; err == nil || !strings.Contains(err.Error(), "does not fit an identity") {
			t.Errorf("the login with an openid too long: %v, want its own error", err)
		}
		check("first logins", twice, logins, errs)
		newUsers := 0
		for _, l := range logins[:len(twice)] {
			if l != nil && l.NewUser {
				newUsers++
			}
		}
		if users, idents := svc.db.User.Query().CountX(ctx), svc.db.Identity.Query().CountX(ctx); users != 12 || idents != 12 || newUsers != 12 {
			t.Errorf("%d users, %d identities, %d isNewUser answers for 12 people logging in twice at once; want 12 of each", users, idents, newUsers)
		}
		for _, rec := range svc.db.LoginCode.Query().AllX(ctx) {
			if rec.State == logincode.StateDone && (rec.UserID == nil || rec.Logins != 1) {
				t.Errorf("a done code's record names user %v and %d logins, want its user and 1", rec.UserID, rec.Logins)
			}
		}

		// Each person twice more at once: returning logins, past the cap of 2, so each
		// keeps its two latest sessions; the first two end.
		again, errs := loginsAtOnce(svc, fake, twice)
		check("returning logins", twice, again, errs)
		for _, l := range again {
			if l != nil && l.NewUser {
				t.Errorf("a returning login says isNewUser")
			}
		}
		for i, l := range logins[:len(twice)] {
			if l == nil {
				continue
			}
			if _, err := svc.authenticate(ctx, l.Token, true); err == nil {
				t.Errorf("%s: a first session still works, past the cap of 2", twice[i].OpenID)
			}
		}
		live := svc.db.Session.Query().Where(session.RevokedAtIsNil()).CountX(ctx)
		evicted := svc.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventSessionEvicted)).CountX(ctx)
		if live != 24 || evicted != 24 {
			t.Errorf("%d live sessions and %d evictions, want 24 and 24: two for each of 12 people", live, evicted)
		}

		// A unionid that arrives on a later login is linked to the user.
		linked := fakewechat.User{OpenID: people[1].OpenID, UnionID: "u-arrived-later"}
		l, errs := loginsAtOnce(svc, fake, []fakewechat.User{linked})
		check("a unionid arriving", []fakewechat.User{linked}, l, errs)
	})
}

// Many logins at once, two with each code: each code reaches WeChat once, and both of
// its logins get sessions of the same user.
func TestCodesClaimedAtOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		svc, fake := loginService(t, b, Policy{})
		const codes = 40
		code := make([]string, codes)
		for i := range code {
			code[i] = fake.IssueCode(fakewechat.User{OpenID: fmt.Sprintf("o-claims-%02d", i)})
		}
		logins := make([][2]*Login, codes)
		var wg sync.WaitGroup
		for i := range codes {
			for j := range 2 {
				wg.Go(func() {
					l, err := svc.Login(context.Background(), "", code[i], Client{IP: "192.0.2.9"})
					if err != nil {
						t.Errorf("code %d, login %d: %v", i, j, err)
					}
					logins[i][j] = l
				})
			}
		}
		wg.Wait()
		if n := fake.Calls(); n != codes {
			t.Errorf("%d WeChat calls for %d codes, want one each", n, codes)
		}
		for i, pair := range logins {
			if pair[0] == nil || pair[1] == nil || pair[0].Account.User.ID != pair[1].Account.User.ID || pair[0].Token == pair[1].Token {
				t.Errorf("code %d: logins %+v; want two sessions of one user", i, pair)
			}
		}
	})
}
