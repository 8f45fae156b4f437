package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/hook"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

var bob = fakewechat.User{OpenID: "oBob00000000000000000000001"}

type sessionInfo struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
	IP         *string   `json:"ip"`
	UserAgent  *string   `json:"userAgent"`
	Current    bool      `json:"current"`
}

// sessions lists the token's sessions.
func (e *env) sessions(token string) []sessionInfo {
	e.t.Helper()
	r := e.post(0, token, `{ sessions { id createdAt lastSeenAt expiresAt ip userAgent current } }`, nil)
	if r.Code() != "" {
		e.t.Fatalf("sessions: %s", r.Code())
	}
	var out []sessionInfo
	if err := json.Unmarshal(r.Data["sessions"], &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// currentSessionID is the id of the session a token belongs to.
func (e *env) currentSessionID(token string) string {
	e.t.Helper()
	for _, s := range e.sessions(token) {
		if s.Current {
			return s.ID
		}
	}
	e.t.Fatal("no current session in the list")
	return ""
}

// audit returns the audit events recorded so far, oldest first.
// audit lists the audit rows by time. Rows one transaction wrote share its time, and
// their ids order them only where ids are time-ordered (not on TiDB): among them the
// event's name decides, as the tests expect (login_succeeded before session_evicted).
func (e *env) audit() []*ent.AuditEvent {
	return e.db.AuditEvent.Query().Order(ent.Asc(auditevent.FieldAt), ent.Asc(auditevent.FieldEvent), ent.Asc(auditevent.FieldID)).AllX(context.Background())
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))

		start := e.clock.Now()
		near := func(got, want time.Time) bool { d := got.Sub(want); return d > -time.Minute && d < time.Minute }
		// Used every 6 days, the session slides on past 7 days...
		for day := 6; day <= 24; day += 6 {
			e.clock.Advance(6 * 24 * time.Hour)
			if _, c := e.me(0, p.Token); c != "" {
				t.Fatalf("day %d, used every 6 days: %s", day, c)
			}
			// ...its expiresAt a week after the use, until the 30-day end comes sooner.
			want := start.Add(time.Duration(min(day+7, 30)) * 24 * time.Hour)
			if got := e.sessions(p.Token)[0].ExpiresAt; !near(got, want) {
				t.Errorf("day %d: expiresAt = %v, want %v", day, got, want)
			}
		}
		// ...but not past its 30-day lifetime, however often it is used.
		e.clock.Advance(6*24*time.Hour + time.Minute) // day 30 and a minute
		if _, c := e.me(0, p.Token); c != "UNAUTHENTICATED" {
			t.Errorf("day 30, used every 6 days: %q, want UNAUTHENTICATED (absolute lifetime)", c)
		}

		// A session left alone for 7 days ends.
		q := e.mustLogin(0, e.fake.IssueCode(alice))
		e.clock.Advance(7*24*time.Hour - time.Minute)
		if _, c := e.me(0, q.Token); c != "" {
			t.Errorf("unused for 7 days less a minute: %q, want it still live", c)
		}
		e.clock.Advance(7*24*time.Hour + time.Minute)
		if _, c := e.me(0, q.Token); c != "UNAUTHENTICATED" {
			t.Errorf("unused for 7 days and a minute: %q, want UNAUTHENTICATED (idle timeout)", c)
		}
	})
}

func TestExpiresAtTellsThePolicy(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{SessionTTL: 48 * time.Hour, IdleTimeout: 72 * time.Hour} })
		before := e.clock.Now()
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if d := p.ExpiresAt.Sub(before); d < 48*time.Hour-time.Minute || d > 48*time.Hour+time.Minute {
			t.Errorf("expiresAt is %s away, want 48h: the lifetime ends before the idle timeout", d)
		}
		e.clock.Advance(48*time.Hour + time.Second)
		if _, c := e.me(0, p.Token); c != "UNAUTHENTICATED" {
			t.Errorf("after the 48h lifetime: %q, want UNAUTHENTICATED", c)
		}
	})
}

func TestLastSeenIsWrittenAtMostOnceAMinute(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		e.addInstance()
		var writes atomic.Int32
		e.db.Session.Use(func(next ent.Mutator) ent.Mutator {
			return hook.SessionFunc(func(ctx context.Context, m *ent.SessionMutation) (ent.Value, error) {
				v, err := next.Mutate(ctx, m)
				// Rows written: concurrent requests may each try the conditional update,
				// but only one finds the row still stale.
				if _, ok := m.LastSeenAt(); ok && err == nil && m.Op().Is(ent.OpUpdate) {
					writes.Add(int32(v.(int)))
				}
				return v, err
			})
		})
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		for range 10 {
			e.me(0, p.Token)
		}
		if n := writes.Load(); n != 0 {
			t.Errorf("10 me calls in the login's minute wrote lastSeenAt %d times, want 0", n)
		}
		e.clock.Advance(61 * time.Second)
		var wg sync.WaitGroup
		for i := range 10 { // at once, on two instances
			wg.Go(func() { e.me(i%2, p.Token) })
		}
		wg.Wait()
		if n := writes.Load(); n != 1 {
			t.Errorf("10 me calls a minute later, on two instances at once, wrote lastSeenAt %d times, want 1", n)
		}
		if seen := e.sessions(p.Token)[0].LastSeenAt; e.clock.Now().Sub(seen) > 5*time.Second {
			t.Errorf("lastSeenAt = %v, want about %v", seen, e.clock.Now())
		}
	})
}

func TestSessionsListOnlyTheCallersNewestFirst(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		var tokens []string
		for range 3 {
			tokens = append(tokens, e.mustLogin(0, e.fake.IssueCode(alice)).Token)
			e.clock.Advance(time.Minute)
		}
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))
		list := e.sessions(tokens[1])
		if len(list) != 3 {
			t.Fatalf("alice sees %d sessions, want her 3", len(list))
		}
		for i, s := range list {
			if i > 0 && !s.CreatedAt.Before(list[i-1].CreatedAt) {
				t.Errorf("sessions not newest first: %v then %v", list[i-1].CreatedAt, s.CreatedAt)
			}
			if s.Current != (i == 1) { // tokens[1] is the middle one
				t.Errorf("session %d current = %v", i, s.Current)
			}
			if s.IP == nil || *s.IP != "127.0.0.1" || s.UserAgent == nil || *s.UserAgent == "" {
				t.Errorf("session %d ip %v userAgent %v, want the login's", i, s.IP, s.UserAgent)
			}
		}
		if bobList := e.sessions(bobs.Token); len(bobList) != 1 || !bobList[0].Current {
			t.Errorf("bob sees %+v, want only his own", bobList)
		}
		if r := e.post(0, "", `{ sessions { id } }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("sessions without a token: %q", r.Code())
		}
	})
}

func TestRevokeSession(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		phone := e.mustLogin(0, e.fake.IssueCode(alice))
		tablet := e.mustLogin(0, e.fake.IssueCode(alice))
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))
		tabletID, bobID := e.currentSessionID(tablet.Token), e.currentSessionID(bobs.Token)

		revoke := func(token, id string) gqlResult {
			return e.post(0, token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": id})
		}
		if r := revoke(phone.Token, tabletID); r.Code() != "" || string(r.Data["revokeSession"]) != "true" {
			t.Fatalf("revoking her own tablet: %s %v", r.Data["revokeSession"], r.Errors)
		}
		if _, c := e.me(0, tablet.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the revoked tablet: %q, want UNAUTHENTICATED at once", c)
		}
		if got := e.sessions(phone.Token); len(got) != 1 {
			t.Errorf("%d sessions after revoking one of 2", len(got))
		}

		// Another user's session: the same answer as an unknown id, and nothing ends.
		other := revoke(phone.Token, bobID)
		unknown := revoke(phone.Token, "01900000-0000-7000-8000-000000000000")
		again := revoke(phone.Token, tabletID)
		for name, r := range map[string]gqlResult{"bob's": other, "unknown": unknown, "already revoked": again} {
			if r.Code() != "" || string(r.Data["revokeSession"]) != "false" {
				t.Errorf("revoking %s session: %s %v, want false", name, r.Data["revokeSession"], r.Errors)
			}
		}
		if _, c := e.me(0, bobs.Token); c != "" {
			t.Errorf("bob's session after alice tried to revoke it: %q", c)
		}
		if r := revoke(phone.Token, "not-an-id"); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("a malformed id: %q, want BAD_USER_INPUT", r.Code())
		}
		if r := revoke("", bobID); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("revoke without a token: %q", r.Code())
		}
	})
}

func TestLogoutAll(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		var tokens []string
		for range 4 {
			tokens = append(tokens, e.mustLogin(0, e.fake.IssueCode(alice)).Token)
		}
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))

		r := e.post(0, tokens[0], `mutation { logoutAll(keepCurrent: true) }`, nil)
		if r.Code() != "" || string(r.Data["logoutAll"]) != "3" {
			t.Fatalf("logoutAll(keepCurrent: true) = %s %v, want 3", r.Data["logoutAll"], r.Errors)
		}
		if _, c := e.me(0, tokens[0]); c != "" {
			t.Errorf("the kept session: %q", c)
		}
		for _, tok := range tokens[1:] {
			if _, c := e.me(0, tok); c != "UNAUTHENTICATED" {
				t.Errorf("an ended session: %q", c)
			}
		}
		more := e.mustLogin(0, e.fake.IssueCode(alice))
		r = e.post(0, more.Token, `mutation { logoutAll }`, nil)
		if r.Code() != "" || string(r.Data["logoutAll"]) != "2" {
			t.Fatalf("logoutAll = %s %v, want 2", r.Data["logoutAll"], r.Errors)
		}
		for _, tok := range []string{tokens[0], more.Token} {
			if _, c := e.me(0, tok); c != "UNAUTHENTICATED" {
				t.Errorf("after logoutAll: %q", c)
			}
		}
		if _, c := e.me(0, bobs.Token); c != "" {
			t.Errorf("bob's session after alice's logoutAll: %q", c)
		}
	})
}

// loginsMinutesApart logs the person in n times on the first instance, two minutes
// apart, and returns each session's token and id. The id is read in its login's minute,
// which writes no lastSeenAt.
func (e *env) loginsMinutesApart(n int, person fakewechat.User) (tokens, ids []string) {
	e.t.Helper()
	for range n {
		tok := e.mustLogin(0, e.fake.IssueCode(person)).Token
		tokens = append(tokens, tok)
		ids = append(ids, e.currentSessionID(tok))
		e.clock.Advance(2 * time.Minute)
	}
	return tokens, ids
}

// evicted lists the sessions the audit trail records as evicted, oldest first.
func (e *env) evicted() []string {
	var ids []string
	for _, ev := range e.audit() {
		if ev.Event == auditevent.EventSessionEvicted {
			ids = append(ids, ev.SessionID.String())
		}
	}
	return ids
}

func TestCapEvictsTheLeastRecentlyUsed(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 3} })
		tokens, ids := e.loginsMinutesApart(3, alice)
		e.me(0, tokens[0]) // the oldest is used again: the second is now least recently used
		evicted := ids[1]
		e.clock.Advance(2 * time.Minute)
		fourth := e.mustLogin(0, e.fake.IssueCode(alice))
		if _, c := e.me(0, tokens[1]); c != "UNAUTHENTICATED" {
			t.Errorf("least recently used session: %q, want it evicted", c)
		}
		for _, tok := range []string{tokens[0], tokens[2], fourth.Token} {
			if _, c := e.me(0, tok); c != "" {
				t.Errorf("a session within the cap: %q", c)
			}
		}
		if n := len(e.sessions(fourth.Token)); n != 3 {
			t.Errorf("%d live sessions, want the cap of 3", n)
		}
		if evictions := e.evicted(); len(evictions) != 1 || evictions[0] != evicted {
			t.Errorf("eviction audit rows for %v, want one for %s", evictions, evicted)
		}
	})
}

// TestLoweredCapEvictsAtOnce: after an operator lowers the cap, a user's next login ends
// every session past it, the least recently used, each with its own audit row.
func TestLoweredCapEvictsAtOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 5} })
		tokens, ids := e.loginsMinutesApart(5, alice)
		e.me(0, tokens[1]) // the second is now the most recently used of the five
		e.clock.Advance(2 * time.Minute)
		e.policy = auth.Policy{MaxSessions: 2}
		e.addInstance() // the same database, restarted with the lower cap
		newest := e.mustLogin(1, e.fake.IssueCode(alice))

		for i, tok := range tokens {
			_, c := e.me(1, tok)
			if want := map[bool]string{true: "", false: "UNAUTHENTICATED"}[i == 1]; c != want {
				t.Errorf("session %d after the login under the lowered cap: %q, want %q", i, c, want)
			}
		}
		if _, c := e.me(1, newest.Token); c != "" {
			t.Errorf("the new session: %q", c)
		}
		evicted := e.evicted()
		slices.Sort(evicted)
		want := []string{ids[0], ids[2], ids[3], ids[4]}
		slices.Sort(want)
		if !slices.Equal(evicted, want) {
			t.Errorf("eviction audit rows for %v, want one each for %v", evicted, want)
		}
	})
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) {
			e.policy = auth.Policy{LoginsPerMinute: 60, LoginBurst: 3}
			e.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		})
		e.clock.Freeze()
		loginFrom := func(ip string) gqlResult {
			req := newGraphQLRequest(e, `mutation { login(code: "`+e.fake.IssueCode(alice)+`") { token } }`)
			if ip != "" {
				req.Header.Set("X-Forwarded-For", ip)
			}
			return e.send(req)
		}
		for i := range 3 {
			if r := loginFrom("203.0.113.7"); r.Code() != "" {
				t.Fatalf("login %d within the burst: %s", i+1, r.Code())
			}
		}
		r := loginFrom("203.0.113.7")
		if r.Code() != "RATE_LIMITED" || r.Errors[0].Extensions["retryAfter"] != float64(1) {
			t.Errorf("past the burst: %q %v, want RATE_LIMITED with retryAfter 1", r.Code(), r.Errors)
		}
		if n := e.fake.Calls(); n != 3 {
			t.Errorf("WeChat calls = %d, want 3: a limited login never reaches WeChat", n)
		}
		if r := loginFrom("198.51.100.9"); r.Code() != "" {
			t.Errorf("another address behind the proxy: %q, want its own bucket", r.Code())
		}
		e.clock.Advance(time.Second) // one token back at 60 a minute
		if r := loginFrom("203.0.113.7"); r.Code() != "" {
			t.Errorf("after refill: %q", r.Code())
		}
		if r := loginFrom("203.0.113.7"); r.Code() != "RATE_LIMITED" {
			t.Errorf("right after the refilled token is spent: %q, want RATE_LIMITED", r.Code())
		}
	})
}

func TestForwardedForIsIgnoredFromUntrustedPeers(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		// Proxies are configured, but the peer (127.0.0.1) is not one of them.
		e := newEnv(t, b, func(e *env) {
			e.policy = auth.Policy{LoginsPerMinute: 60, LoginBurst: 2}
			e.trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		e.clock.Freeze()
		var token string
		for i, forged := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			req := newGraphQLRequest(e, `mutation { login(code: "`+e.fake.IssueCode(alice)+`") { token } }`)
			req.Header.Set("X-Forwarded-For", forged)
			r := e.send(req)
			if want := map[bool]string{true: "", false: "RATE_LIMITED"}[i < 2]; r.Code() != want {
				t.Errorf("login %d with a forged X-Forwarded-For: %q, want %q (one bucket: the socket's)", i+1, r.Code(), want)
			}
			if i == 0 {
				var p struct{ Token string }
				json.Unmarshal(r.Data["login"], &p)
				token = p.Token
			}
		}
		if ip := e.sessions(token)[0].IP; ip == nil || *ip != "127.0.0.1" {
			t.Errorf("session ip = %v, want the peer 127.0.0.1, not the forged header", ip)
		}
	})
}

func TestTrustedProxyGivesTheClientAddress(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) {
			e.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
		})
		for header, want := range map[string]string{
			// The client claims an address, then two proxies of ours append theirs.
			"192.0.2.66, 203.0.113.7, 10.1.2.3": "203.0.113.7",
			"203.0.113.7:4711":                  "203.0.113.7", // with a port, as some balancers write it
			"[2001:db8::1]:443":                 "2001:db8::1",
			"2001:db8::1, ":                     "2001:db8::1", // a trailing empty element
			"10.9.9.9":                          "10.9.9.9",    // only proxies: the farthest one
			"not-an-address, 10.1.2.3":          "10.1.2.3",    // junk: trust stops at the last good hop
		} {
			req := newGraphQLRequest(e, `mutation { login(code: "`+e.fake.IssueCode(alice)+`") { token } }`)
			req.Header.Set("X-Forwarded-For", header)
			r := e.send(req)
			var p struct{ Token string }
			json.Unmarshal(r.Data["login"], &p)
			if ip := e.sessions(p.Token)[0].IP; ip == nil || *ip != want {
				t.Errorf("X-Forwarded-For %q: session ip = %v, want %s", header, strOrNil(ip), want)
			}
		}
	})
}

// TestCapHoldsUnderConcurrentLogins: a user logging in on many devices at once still
// ends with no more live sessions than the cap, and each eviction is recorded once.
func TestCapHoldsUnderConcurrentLogins(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 3} })
		e.addInstance()
		ctx := context.Background()
		// Alice exists, with one session: every login below is a returning one, and the
		// first round's start under the cap, where a login decides by counting.
		e.mustLogin(0, e.fake.IssueCode(alice))
		for round := range 3 {
			codes := e.codes(8, alice)
			var wg sync.WaitGroup
			for i, c := range codes {
				wg.Go(func() {
					if _, code := e.login(i%2, c); code != "" {
						t.Errorf("round %d login %d: %s", round, i, code)
					}
				})
			}
			wg.Wait()
			if live := e.db.Session.Query().Where(session.RevokedAtIsNil()).CountX(ctx); live != 3 {
				t.Errorf("round %d: %d live sessions after 8 logins at once, want the cap of 3", round, live)
			}
			e.clock.Advance(2 * time.Minute)
		}
		evicted := e.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventSessionEvicted)).AllX(ctx)
		seen := map[string]bool{}
		for _, ev := range evicted {
			if seen[ev.SessionID.String()] {
				t.Errorf("session %s recorded as evicted twice", ev.SessionID)
			}
			seen[ev.SessionID.String()] = true
		}
		if len(evicted) != 25-3 {
			t.Errorf("%d evictions recorded, want 22", len(evicted))
		}
	})
}

// Returning logins of several people at once, on two instances, go in shared
// transactions: every login succeeds with its own user, and each user ends with the cap
// of live sessions, whichever logins shared a transaction.
func TestCapHoldsForManyReturningTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 2} })
		e.addInstance()
		ctx := context.Background()
		people := make([]fakewechat.User, 6)
		userOf := map[string]string{}
		for i := range people {
			people[i] = newPerson(fmt.Sprintf("many%d", i), "").app1
			userOf[people[i].OpenID] = e.mustLogin(0, e.fake.IssueCode(people[i])).User.ID
		}
		var wg sync.WaitGroup
		for round := range 5 {
			for i, p := range people {
				wg.Go(func() {
					got, code := e.login((i+round)%2, e.fake.IssueCode(p))
					if code != "" || got.User.ID != userOf[p.OpenID] || got.IsNewUser {
						t.Errorf("%s, round %d: user %v (new %v), %s; want its own user", p.OpenID, round, got.User.ID, got.IsNewUser, code)
					}
				})
			}
		}
		wg.Wait()
		for _, p := range people {
			live := e.db.Session.Query().Where(session.RevokedAtIsNil(), session.UserID(uuid.MustParse(userOf[p.OpenID]))).CountX(ctx)
			if live != 2 {
				t.Errorf("%s: %d live sessions after 6 logins, want the cap of 2", p.OpenID, live)
			}
		}
		if n := e.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventSessionEvicted)).CountX(ctx); n != 6*(6-2) {
			t.Errorf("%d evictions recorded, want %d", n, 6*(6-2))
		}
	})
}

func TestAuditTrail(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 2} })
		a := e.mustLogin(0, e.fake.IssueCode(alice))
		e.login(0, "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5R") // refused by WeChat
		e.login(0, "")                                 // bad input
		second := e.mustLogin(0, e.fake.IssueCode(alice))
		e.clock.Advance(2 * time.Minute)
		e.me(0, second.Token)
		e.mustLogin(0, e.fake.IssueCode(alice)) // evicts a, the least recently used
		e.post(0, second.Token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": e.currentSessionID(second.Token)})
		c := e.mustLogin(0, e.fake.IssueCode(alice))
		e.post(0, c.Token, `mutation { logoutAll(keepCurrent: true) }`, nil)
		e.post(0, c.Token, `mutation { logout }`, nil)

		type row struct {
			event auditevent.Event
			code  string
		}
		var got []row
		for _, ev := range e.audit() {
			code := ""
			if ev.ErrorCode != nil {
				code = *ev.ErrorCode
			}
			got = append(got, row{ev.Event, code})
			if ev.IP == nil || *ev.IP != "127.0.0.1" || ev.UserAgent == nil {
				t.Errorf("%s without ip or user agent", ev.Event)
			}
			if ev.Event != auditevent.EventLoginFailed && ev.UserID == nil {
				t.Errorf("%s without its user", ev.Event)
			}
			if ev.Event == auditevent.EventLogoutAll && (ev.Sessions == nil || *ev.Sessions != 1) {
				t.Errorf("logout_all recorded %v sessions, want 1", ev.Sessions)
			}
		}
		want := []row{
			{auditevent.EventLoginSucceeded, ""},
			{auditevent.EventLoginFailed, "INVALID_CODE"},
			{auditevent.EventLoginFailed, "BAD_USER_INPUT"},
			{auditevent.EventLoginSucceeded, ""},
			{auditevent.EventLoginSucceeded, ""},
			{auditevent.EventSessionEvicted, ""},
			{auditevent.EventSessionRevoked, ""},
			{auditevent.EventLoginSucceeded, ""},
			{auditevent.EventLogoutAll, ""},
			{auditevent.EventLogout, ""},
		}
		if len(got) != len(want) {
			t.Fatalf("audit events = %v\nwant %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("audit event %d = %v, want %v", i, got[i], want[i])
			}
		}
		if n := countLines(e.logs.String(), `"msg":"audit"`); n != len(want) {
			t.Errorf("%d audit log lines, want one per event (%d)", n, len(want))
		}
		if _, c := e.me(0, a.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the evicted session: %q", c)
		}
	})
}

// TestAuditRollsBackWithItsChange: when a login's transaction fails after its session
// and its audit row were written, neither stays; the failure is recorded instead.
func TestAuditRollsBackWithItsChange(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{MaxSessions: 1} })
		first := e.mustLogin(0, e.fake.IssueCode(alice))
		// The second login's last step is evicting the first session (an update):
		// the database refuses exactly that.
		refuseRevocations(t, e)
		if _, c := e.login(0, e.fake.IssueCode(alice)); c != "INTERNAL" {
			t.Fatalf("login with a failing eviction: %q, want INTERNAL", c)
		}
		var events []auditevent.Event
		for _, ev := range e.audit() {
			events = append(events, ev.Event)
		}
		want := []auditevent.Event{auditevent.EventLoginSucceeded, auditevent.EventLoginFailed}
		if len(events) != 2 || events[0] != want[0] || events[1] != want[1] {
			t.Errorf("audit events = %v, want %v: the failed login's success row rolled back", events, want)
		}
		if n := e.count()["sessions"]; n != 1 {
			t.Errorf("%d sessions, want only the first: the second rolled back", n)
		}
		if _, c := e.me(0, first.Token); c != "" {
			t.Errorf("the first session after the failed eviction: %q", c)
		}
		if n := countLines(e.logs.String(), `"msg":"audit"`); n != 2 {
			t.Errorf("%d audit log lines, want 2: a rolled-back event is not logged", n)
		}
	})
}

// refuseRevocations makes the database refuse to end a session: on SQLite with a
// trigger, on MySQL's family with a CHECK constraint, which MariaDB and TiDB both
// enforce (TiDB once tidb_enable_check_constraint is on; it has no triggers).
func refuseRevocations(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	refusal := `CREATE TRIGGER refuse_revocation BEFORE UPDATE ON sessions FOR EACH ROW
		WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`
	if e.db.Dialect == dialect.MySQL {
		var version string
		if err := e.db.SQL.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(version, "TiDB") {
			if _, err := e.db.SQL.ExecContext(ctx, "SET GLOBAL tidb_enable_check_constraint = ON"); err != nil {
				t.Fatal(err)
			}
		}
		refusal = "ALTER TABLE sessions ADD CONSTRAINT refuse_revocation CHECK (revoked_at IS NULL)"
	}
	if _, err := e.db.SQL.ExecContext(ctx, refusal); err != nil {
		t.Fatal(err)
	}
}

// TestHousekeepingDeletesOnlyWhatItShould runs the cleanup on two instances at once.
func TestHousekeepingDeletesOnlyWhatItShould(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) { e.policy = auth.Policy{AuditRetention: 7 * 24 * time.Hour} })
		e.addInstance()
		revoked := e.mustLogin(0, e.fake.IssueCode(alice))
		kept := e.mustLogin(0, e.fake.IssueCode(alice))
		idle := e.mustLogin(0, e.fake.IssueCode(bob))
		e.post(0, revoked.Token, `mutation { logout }`, nil)
		e.clock.Advance(6 * 24 * time.Hour)
		e.me(0, kept.Token) // used on day 6: live until day 13
		fresh := e.mustLogin(0, e.fake.IssueCode(alice))
		e.clock.Advance(2 * 24 * time.Hour)              // day 8: bob's session, unused since day 0, is idle
		today := e.mustLogin(0, e.fake.IssueCode(alice)) // its code record is within its window
		seedEnded(t, e, purgeBatchPlus)

		keptIDs := map[string]bool{}
		for _, tok := range []string{kept.Token, fresh.Token, today.Token} {
			keptIDs[e.currentSessionID(tok)] = true
		}
		ctx := context.Background()
		recent := e.db.AuditEvent.Query().Where(auditevent.AtGT(e.clock.Now().Add(-7 * 24 * time.Hour))).CountX(ctx)
		if old := e.db.AuditEvent.Query().CountX(ctx) - recent; recent == 0 || old < purgeBatchPlus {
			t.Fatalf("%d recent and %d old audit rows: the test needs both", recent, old)
		}

		results := make([]auth.Purged, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { results[i], errs[i] = e.services[i].Purge(context.Background()) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("instance %d: %v", i, err)
			}
		}
		if n := results[0].Sessions + results[1].Sessions; n != 2+purgeBatchPlus {
			t.Errorf("sessions deleted = %d, want %d (the revoked, the idle and the seeded ones)", n, 2+purgeBatchPlus)
		}
		left := e.db.Session.Query().AllX(context.Background())
		if len(left) != 3 {
			t.Errorf("%d sessions left, want the 3 live ones", len(left))
		}
		for _, s := range left {
			if !keptIDs[s.ID.String()] {
				t.Errorf("session %s was kept but is not live", s.ID)
			}
		}
		for _, tok := range []string{kept.Token, fresh.Token, today.Token} {
			if _, c := e.me(0, tok); c != "" {
				t.Errorf("a live session after housekeeping: %q", c)
			}
		}
		if _, c := e.me(0, idle.Token); c != "UNAUTHENTICATED" {
			t.Errorf("the idle session after housekeeping: %q", c)
		}
		if codes := e.db.LoginCode.Query().AllX(ctx); len(codes) != 1 || !codes[0].ExpiresAt.After(e.clock.Now()) {
			t.Errorf("code rows left = %d, want only today's, still within its window", len(codes))
		}
		if n := e.db.AuditEvent.Query().CountX(context.Background()); n != recent {
			t.Errorf("%d audit rows left, want the %d within the 7-day retention", n, recent)
		}
		if n := e.count()["users"]; n != 2 {
			t.Errorf("%d users left, want 2: housekeeping never deletes people", n)
		}
	})
}

// purgeBatchPlus is more rows than one housekeeping batch (500) deletes.
const purgeBatchPlus = 600

// seedEnded adds n revoked sessions and n audit rows a hundred days old, so that
// housekeeping needs more than one batch for each.
func seedEnded(t *testing.T, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	ident := e.db.Identity.Query().FirstX(ctx)
	now := e.clock.Now().UTC()
	sessions := make([]*ent.SessionCreate, n)
	events := make([]*ent.AuditEventCreate, n)
	for i := range n {
		hash := make([]byte, 32)
		rand.Read(hash)
		sessions[i] = e.db.Session.Create().SetTokenHash(hash).SetUserID(ident.UserID).SetIdentityID(ident.ID).
			SetCreatedAt(now.Add(-time.Hour)).SetLastSeenAt(now.Add(-time.Hour)).SetExpiresAt(now.Add(time.Hour)).SetRevokedAt(now.Add(-time.Minute))
		events[i] = e.db.AuditEvent.Create().SetAt(now.Add(-100 * 24 * time.Hour)).SetEvent(auditevent.EventLogout)
	}
	for i := 0; i < n; i += 100 {
		e.db.Session.CreateBulk(sessions[i:min(i+100, n)]...).ExecX(ctx)
		e.db.AuditEvent.CreateBulk(events[i:min(i+100, n)]...).ExecX(ctx)
	}
}

func countLines(text, substr string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}
