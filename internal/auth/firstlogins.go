package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// errAlone: a first login that went with others must log in on its own after all,
// because the group's transaction met a row another login made or a claim that had
// gone. Nothing of the group was kept.
var errAlone = errors.New("auth: the login goes on its own")

// groupLogin is a login that goes with others: WeChat's answer for the code it claimed.
type groupLogin struct {
	appid  string
	ws     wechat.Session
	claim  uuid.UUID
	client Client
}

// groupLoggedIn is a login its group made: the session, the code's record, and the
// audit lines, which the login logs itself, with its request's context.
type groupLoggedIn struct {
	login   *Login
	rec     codeRecord
	entries []auditEntry
}

// sendFirstLogins makes the first logins that come together in one transaction: the users,
// identities, sessions and audit rows of all of them in one insert each, and their
// codes' records in one update, in one round trip and one commit. At a campaign's peak
// most logins are first logins, and each statement and commit costs the database about
// as much for several rows as for one. A login that comes while no group is on its way
// goes at once, as a group of one.
//
// When the transaction fails (a unique index refuses a row: the
// same person's first logins racing, or a unionid that has a user; a claim has gone;
// the database fails), it is rolled back and each login is told to go alone
// (errAlone), so that none fails for another's sake. Only the group running out of
// time fails them all.
func (s *Service) sendFirstLogins(ctx context.Context, batch []*call[groupLogin, groupLoggedIn]) {
	// What WeChat said is checked, and the session_keys sealed, once for every try.
	type member struct {
		c       *call[groupLogin, groupLoggedIn]
		sealed  []byte
		unionid *string
	}
	members := make([]member, 0, len(batch))
	for _, c := range batch {
		m := member{c: c, sealed: s.keyring.Seal([]byte(c.q.ws.SessionKey), IdentityBinding(c.q.appid, c.q.ws.OpenID))}
		if c.q.ws.UnionID != "" {
			m.unionid = &c.q.ws.UnionID
		}
		if err := validIdentity(&ent.Identity{Appid: c.q.appid, Openid: c.q.ws.OpenID, Unionid: m.unionid}); err != nil {
			c.err = err
			continue
		}
		members = append(members, m)
	}
	if len(members) == 0 {
		return
	}
	done := make([]groupLoggedIn, len(members))
	var audit *auditor
	err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
		now := s.clock()
		audit = &auditor{db: s.db, tx: tx, now: now} // afresh on every try
		users := make([]*ent.User, len(members))
		idents := make([]*ent.Identity, len(members))
		sessions := make([]*ent.Session, len(members))
		entries := make([]auditEntry, len(members))
		codes := make([]codeRecord, len(members))
		for i, m := range members {
			acct, err := newAccount(m.c.q.appid, m.c.q.ws.OpenID, m.unionid, m.sealed, now)
			if err != nil {
				return err
			}
			sess, token := s.newSession(acct, m.c.q.client, now)
			users[i], idents[i], sessions[i] = acct.User, acct.Identity, sess
			entries[i] = auditEntry{event: auditevent.EventLoginSucceeded, userID: &acct.User.ID, sessionID: &sess.ID, client: m.c.q.client}
			rec := codeRecord{id: m.c.q.claim, userID: acct.User.ID, identityID: acct.Identity.ID, newUser: true}
			codes[i] = rec
			done[i] = groupLoggedIn{&Login{Token: token, ExpiresAt: s.SessionEnds(sess), Account: acct, NewUser: true}, rec, entries[i : i+1]}
		}
		n, err := s.db.ExecBatch(ctx, tx, s.insertUsers(users...), s.insertIdentities(idents...),
			s.insertSessions(sessions...), audit.statement(entries...), s.codesDone(codes...))
		if err != nil {
			return err
		}
		if n != int64(len(members)) { // the codes' update is last
			return errClaimGone
		}
		for _, e := range entries {
			audit.recorded(e)
		}
		return nil
	})
	switch {
	case err == nil:
		s.sessions.forget(s.now(), audit.forgetUsers, audit.forgetSessions)
	case ctx.Err() == nil:
		// A row refused, a claim gone, or anything else: alone, each login meets only
		// its own trouble, and those cases are settled one by one.
		err = errAlone
	}
	for i, m := range members {
		m.c.a, m.c.err = done[i], err
	}
}
