package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/database"
)

// loginAlone logs in what a group could not, in a transaction of its own and with ent's
// builders: the rare cases are settled here, one statement at a time. Races between
// first logins are settled by the unique indexes, so there is one user per openid (and
// per unionid) however many race:
//
//   - the identity is new (known is false): a user and the identity are inserted; the
//     index on users.unionid may refuse the user (another mini-program's identity
//     brought the unionid first: this identity joins that user), the index on
//     identities' appid+openid the identity (another login of it won: it logs in as
//     the winner's user);
//   - the identity is there: it is read locked, with its user, and takes this
//     exchange's session_key; a unionid its user lacks is linked, which may merge two
//     users of one person (linkUnionID).
//
// A first login does not read the identity before inserting it: on MySQL a locking
// read of a row that is not there locks the gap where it would go, and two first logins
// whose openids share a gap would then deadlock on their inserts.
func (s *Service) loginAlone(ctx context.Context, q groupLogin, known bool) (groupLoggedIn, error) {
	sealed := s.keyring.Seal([]byte(q.ws.SessionKey), IdentityBinding(q.appid, q.ws.OpenID))
	unionid := optional(q.ws.UnionID)
	var out groupLoggedIn
	err := s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		now := s.clock()
		acct, created, err := s.accountAlone(ctx, tx, audit, q.appid, q.ws.OpenID, unionid, sealed, known, now)
		if err != nil {
			return err
		}
		out.rec = codeRecord{id: q.claim, userID: acct.User.ID, identityID: acct.Identity.ID, newUser: created}
		out.login, err = s.openSessionAlone(ctx, tx, audit, acct, created, created, q.claim, q.client, now)
		return err
	})
	return out, err
}

// accountAlone finds or makes the account of an identity, with this exchange's
// session_key, and says whether it made the user.
func (s *Service) accountAlone(ctx context.Context, tx *ent.Tx, audit *auditor, appid, openid string, unionid *string, sealed []byte, known bool, now time.Time) (Account, bool, error) {
	if known {
		ident, err := s.lockedIdentity(ctx, tx, appid, openid)
		switch {
		case err == nil:
			acct, err := s.returnAlone(ctx, tx, audit, ident, unionid, sealed, now)
			return acct, false, err
		case !ent.IsNotFound(err):
			return Account{}, false, err
		}
	}
	if err := validIdentity(&ent.Identity{Appid: appid, Openid: openid, Unionid: unionid}); err != nil {
		return Account{}, false, err
	}
	created := true
	u, err := tx.User.Create().SetNillableUnionid(unionid).SetCreatedAt(now).SetLastLoginAt(now).Save(ctx)
	if database.IsUniqueViolation(err) && unionid != nil {
		// The unionid has a user already, which this identity joins, read with a lock
		// so that a holder committed while the insert waited is seen.
		created = false
		if u, err = s.lockedUserQuery(tx).Where(user.Unionid(*unionid)).Only(ctx); err == nil {
			u, err = u.Update().SetLastLoginAt(now).Save(ctx)
		}
		if err == nil {
			err = blocked(u)
		}
	}
	if err != nil {
		return Account{}, false, err
	}
	ident, err := tx.Identity.Create().
		SetAppid(appid).SetOpenid(openid).SetNillableUnionid(unionid).SetSessionKey(sealed).
		SetUserID(u.ID).SetCreatedAt(now).SetUpdatedAt(now).
		Save(ctx)
	switch {
	case err == nil:
		return Account{User: u, Identity: ident}, created, nil
	case !database.IsUniqueViolation(err):
		return Account{}, false, err
	}
	// Another login created this identity first: this login's user goes, and it logs
	// in as the winner's.
	if created {
		if err := tx.User.DeleteOneID(u.ID).Exec(ctx); err != nil {
			return Account{}, false, err
		}
	}
	if ident, err = s.lockedIdentity(ctx, tx, appid, openid); err != nil {
		return Account{}, false, err
	}
	acct, err := s.returnAlone(ctx, tx, audit, ident, unionid, sealed, now)
	return acct, false, err
}

// returnAlone logs an identity that is there in: its session_key and unionid, its
// user's login time, and the unionid linked to its user.
func (s *Service) returnAlone(ctx context.Context, tx *ent.Tx, audit *auditor, ident *ent.Identity, unionid *string, sealed []byte, now time.Time) (Account, error) {
	ident, err := ident.Update().SetSessionKey(sealed).SetNillableUnionid(unionid).SetUpdatedAt(now).Save(ctx)
	if err != nil {
		return Account{}, err
	}
	u, err := tx.User.UpdateOneID(ident.UserID).SetLastLoginAt(now).Save(ctx)
	if err == nil {
		err = blocked(u) // rolled back with the rest
	}
	if err != nil {
		return Account{}, err
	}
	acct := Account{User: u, Identity: ident}
	if unionid != nil {
		return s.linkUnionID(ctx, tx, audit, acct, *unionid, now)
	}
	return acct, nil
}

// lockedIdentity reads an identity, locked on MySQL: a row another login committed
// while this one waited is seen, not this transaction's snapshot.
func (s *Service) lockedIdentity(ctx context.Context, tx *ent.Tx, appid, openid string) (*ent.Identity, error) {
	return s.lockedIdentities(tx).Where(identity.Appid(appid), identity.Openid(openid)).Only(ctx)
}

// lockedIdentityByID is lockedIdentity by the identity's id.
func (s *Service) lockedIdentityByID(ctx context.Context, tx *ent.Tx, id uuid.UUID) (*ent.Identity, error) {
	return s.lockedIdentities(tx).Where(identity.ID(id)).Only(ctx)
}

func (s *Service) lockedIdentities(tx *ent.Tx) *ent.IdentityQuery {
	q := tx.Identity.Query()
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate()
	}
	return q
}

// openSessionAlone opens a session of the account and records the login; with a claim,
// it turns the code's claim into its record. Unless the user is new (created), it then
// ends the user's least recently used sessions beyond the cap. newUser is what the
// login tells its client.
func (s *Service) openSessionAlone(ctx context.Context, tx *ent.Tx, audit *auditor, acct Account, newUser, created bool, claim uuid.UUID, client Client, now time.Time) (*Login, error) {
	sess, token := s.newSession(acct, client, now)
	sess, err := createSession(ctx, tx, sess)
	if err != nil {
		return nil, err
	}
	userID := acct.User.ID
	if err := audit.record(ctx, auditEntry{event: auditevent.EventLoginSucceeded, userID: &userID, sessionID: &sess.ID, client: client}); err != nil {
		return nil, err
	}
	if claim != uuid.Nil {
		n, err := tx.LoginCode.Update().
			Where(logincode.ID(claim), logincode.StateEQ(logincode.StatePending)).
			SetState(logincode.StateDone).SetLogins(1).
			SetUserID(userID).SetIdentityID(acct.Identity.ID).SetNewUser(newUser).
			Save(ctx)
		switch {
		case err != nil:
			return nil, err
		case n != 1:
			return nil, errClaimGone
		}
	}
	if !created {
		if err := s.capSessions(ctx, tx, audit, now, pastCap{userID, sess.ID, client}); err != nil {
			return nil, err
		}
	}
	return &Login{Token: token, ExpiresAt: s.SessionEnds(sess), Account: acct, NewUser: newUser}, nil
}

// createSession inserts sess, made by newSession, with ent's builder.
func createSession(ctx context.Context, tx *ent.Tx, sess *ent.Session) (*ent.Session, error) {
	return tx.Session.Create().
		SetID(sess.ID).SetTokenHash(sess.TokenHash).SetUserID(sess.UserID).SetIdentityID(sess.IdentityID).
		SetCreatedAt(sess.CreatedAt).SetLastSeenAt(sess.LastSeenAt).SetExpiresAt(sess.ExpiresAt).SetWeb(sess.Web).
		SetNillableIP(sess.IP).SetNillableUserAgent(sess.UserAgent).
		Save(ctx)
}

// capSessions ends the user's least recently used sessions beyond the cap, after a
// session was opened (p.newID). Every read before it in the transaction must have been
// a locking one, so that its plain count is the snapshot's first read, taken after the
// user's lock: it sees the sessions the user's other logins committed, this one's
// included. Only past the cap are the sessions read again, locked (evict).
func (s *Service) capSessions(ctx context.Context, tx *ent.Tx, audit *auditor, now time.Time, p pastCap) error {
	live, err := tx.Session.Query().Where(s.liveSessionsOf(p.userID, now)...).Count(ctx)
	if err != nil || live <= s.policy.MaxSessions {
		return err
	}
	return s.evict(ctx, tx, audit, now, p)
}

// validIdentity checks what WeChat said against the identity's columns, before any row
// is written: ent's builders check them too, but the groups' statements do not, and a
// value that does not fit must fail its own login only.
func validIdentity(i *ent.Identity) error {
	err := errors.Join(identity.AppidValidator(i.Appid), identity.OpenidValidator(i.Openid))
	if i.Unionid != nil {
		err = errors.Join(err, identity.UnionidValidator(*i.Unionid), user.UnionidValidator(*i.Unionid))
	}
	if err != nil {
		return fmt.Errorf("auth: WeChat's answer does not fit an identity: %w", err)
	}
	return nil
}

// errClaimGone: the claim on a login's code was not there to record, as when its lease
// ran out and another request took it; nothing of the login is kept.
var errClaimGone = errors.New("auth: the claim on this login code was lost")
