package auth

import (
	"context"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
)

// sendReturningLogins makes the returning logins that come together in one transaction:
// one locked read of their identities and users, then their identities' session_keys,
// their users' login time, their sessions, audit rows and codes' records in one
// statement each, with a count of each user's live sessions, in one round trip; past
// the cap, one more read and update end the extra sessions of all of them. A campaign
// brings back people who have used the mini-program before, and for the database a
// statement and a commit cost about as much for several rows as for one. A login that
// comes while no group is on its way goes at once, as a group of one.
//
// A login the group cannot make goes alone (errAlone), where its case is settled as
// before: the identity is not there after all, WeChat names a unionid the user lacks
// (a link, perhaps a merge), or the group already logs its user in (the same person
// twice, or two identities of one user), which keeps each user's cap to one login of
// the transaction.
//
// When the transaction fails, it is rolled back and every login
// goes alone, so that none fails for another's sake; only the group running out of time
// fails them all.
func (s *Service) sendReturningLogins(ctx context.Context, batch []*call[groupLogin, groupLoggedIn]) {
	type member struct {
		c      *call[groupLogin, groupLoggedIn]
		sealed []byte
		done   *groupLoggedIn // set by the transaction's last try
	}
	members := make([]*member, 0, len(batch))
	keys := make([]identityKey, 0, len(batch))
	seen := make(map[identityKey]bool, len(batch))
	for _, c := range batch {
		k := identityKey{c.q.appid, c.q.ws.OpenID}
		m := &member{c: c}
		if !seen[k] { // a second login of the same identity is not sealed: it goes alone
			seen[k] = true
			m.sealed = s.keyring.Seal([]byte(c.q.ws.SessionKey), IdentityBinding(k.appid, k.openid))
			keys = append(keys, k)
		}
		members = append(members, m)
	}
	var audit *auditor
	err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
		now := s.clock()
		audit = &auditor{db: s.db, tx: tx, now: now} // afresh on every try
		accts, err := s.returningAccounts(ctx, tx, keys...)
		if err != nil {
			return err
		}
		var (
			in       []*member
			idents   []*ent.Identity
			users    []*ent.User
			userIDs  []uuid.UUID
			sessions []*ent.Session
			entries  []auditEntry
			codes    []codeRecord
		)
		taken := make(map[uuid.UUID]bool, len(members))
		for _, m := range members {
			m.done = nil
			q := m.c.q
			acct, ok := accts[identityKey{q.appid, q.ws.OpenID}]
			if m.sealed == nil || !ok || taken[acct.User.ID] || (q.ws.UnionID != "" && !sameString(acct.User.Unionid, &q.ws.UnionID)) ||
				acct.User.BlockedAt != nil { // refused alone
				continue // alone
			}
			taken[acct.User.ID] = true
			// What the single login's upsertAccount writes, for several.
			ident, u := acct.Identity, acct.User
			ident.SessionKey, ident.UpdatedAt = m.sealed, now
			if q.ws.UnionID != "" {
				ident.Unionid = &q.ws.UnionID
			}
			u.LastLoginAt = now
			sess, token := s.newSession(acct, q.client, now)
			rec := codeRecord{id: q.claim, userID: u.ID, identityID: ident.ID}
			entry := auditEntry{event: auditevent.EventLoginSucceeded, userID: &u.ID, sessionID: &sess.ID, client: q.client}
			m.done = &groupLoggedIn{login: &Login{Token: token, ExpiresAt: s.SessionEnds(sess), Account: acct}, rec: rec, entries: []auditEntry{entry}}
			in = append(in, m)
			idents, users, userIDs = append(idents, ident), append(users, u), append(userIDs, u.ID)
			sessions, entries, codes = append(sessions, sess), append(entries, entry), append(codes, rec)
		}
		if len(in) == 0 {
			return nil
		}
		// The codes' update goes last: its count of rows is the batch's. The live
		// counts are the transaction's first plain read, after its locks (see
		// evictBeyondCap).
		done, live, err := s.liveCountsAfter(ctx, tx, now, userIDs,
			s.updateIdentities(idents...), s.updateLastLogin(users...), s.insertSessions(sessions...),
			audit.statement(entries...), s.codesDone(codes...))
		if err != nil {
			return err
		}
		if done != int64(len(in)) {
			return errClaimGone
		}
		for _, e := range entries {
			audit.recorded(e)
		}
		var past []pastCap
		for i, m := range in {
			if live[userIDs[i]] > int64(s.policy.MaxSessions) {
				past = append(past, pastCap{userIDs[i], sessions[i].ID, m.c.q.client})
			}
		}
		if len(past) > 0 {
			return s.evict(ctx, tx, audit, now, past...)
		}
		return nil
	})
	switch {
	case err == nil:
		s.sessions.forget(s.now(), audit.forgetUsers, audit.forgetSessions)
		// The sessions the eviction ended are told by the login that ended them.
		for _, e := range audit.pending {
			if e.event != auditevent.EventSessionEvicted {
				continue
			}
			for _, m := range members {
				if m.done != nil && m.done.rec.userID == *e.userID {
					m.done.entries = append(m.done.entries, e)
				}
			}
		}
	case ctx.Err() == nil:
		err = errAlone // a row or a claim gone, a database's failure: alone, each meets its own
	}
	for _, m := range members {
		switch {
		case err != nil:
			m.c.err = err
		case m.done == nil:
			m.c.err = errAlone
		default:
			m.c.a = *m.done
		}
	}
}
