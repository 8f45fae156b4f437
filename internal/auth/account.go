package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/phonecode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
)

// ErrNoUser is an operator's or a push's user that is not there.
var ErrNoUser = errors.New("auth: no such user")

// ErrBlocked refuses a login of a user an operator blocked.
var ErrBlocked = errors.New("auth: the account is blocked")

// Where a deletion or a block came from, as its audit row's reason says.
const (
	ByOwner      = "deleteAccount"
	ByOperator   = "admin"
	ByWeChatPush = "wechat_push"
)

// DeleteAccountOf deletes the current user's account (deleteAccount): the fields after
// it in the request run without the session.
func (s *Service) DeleteAccountOf(ctx context.Context, cur *Current) error {
	if err := s.DeleteAccount(ctx, cur.Account.User.ID, ByOwner); err != nil {
		return err
	}
	endInRequest(ctx, cur.Session.ID)
	return nil
}

// DeleteAccount deletes a user and everything personal wxlogin holds of them, in one
// transaction: their sessions, identities (every mini-program's), profile and phone
// number, their login codes' and phone codes' records; their audit rows keep the
// user's id and the events but lose their IP addresses and User-Agents, and a deleted
// event records the deletion. Every token of the user stops working at once on this
// instance and, as a logout does, within the session cache's few seconds on the others.
// A later login with the same identity makes a new user.
func (s *Service) DeleteAccount(ctx context.Context, userID uuid.UUID, by string) error {
	var gone []identityKey
	err := s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		var err error
		gone, err = s.deleteUser(ctx, tx, audit, userID, by)
		return err
	})
	s.forgetIdentities(err, gone)
	return err
}

// deleteUser is DeleteAccount's transaction.
func (s *Service) deleteUser(ctx context.Context, tx *ent.Tx, audit *auditor, userID uuid.UUID, by string) ([]identityKey, error) {
	// A login's order: its identity, then its user. A login racing with the deletion
	// either commits first (and its session goes with the rest) or finds the identity
	// gone, and makes a new user.
	idents, err := s.lockedIdentities(tx).Where(identity.UserID(userID)).All(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.mustLockUser(ctx, tx, userID); err != nil {
		return nil, err
	}
	identIDs := make([]uuid.UUID, len(idents))
	gone := make([]identityKey, len(idents))
	for i, id := range idents {
		identIDs[i], gone[i] = id.ID, identityKey{id.Appid, id.Openid}
	}
	sessions, err := tx.Session.Query().Where(session.UserID(userID)).IDs(ctx)
	if err != nil {
		return nil, err
	}
	steps := []func() error{
		func() error { _, err := tx.Session.Delete().Where(session.UserID(userID)).Exec(ctx); return err },
		func() error {
			_, err := tx.LoginCode.Delete().Where(logincode.Or(logincode.UserID(userID), logincode.IdentityIDIn(identIDs...))).Exec(ctx)
			return err
		},
		func() error { _, err := tx.PhoneCode.Delete().Where(phonecode.UserID(userID)).Exec(ctx); return err },
		func() error {
			return tx.AuditEvent.Update().Where(auditevent.UserID(userID)).ClearIP().ClearUserAgent().Exec(ctx)
		},
		func() error { _, err := tx.Identity.Delete().Where(identity.UserID(userID)).Exec(ctx); return err },
		func() error { return tx.User.DeleteOneID(userID).Exec(ctx) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	audit.forgetSessions = append(audit.forgetSessions, sessions...)
	n := len(sessions)
	return gone, audit.record(ctx, auditEntry{event: auditevent.EventDeleted, userID: &userID, sessions: &n, reason: by})
}

// DeleteIdentity deletes one identity (WeChat said at time at that its user withdrew
// their authorization of that mini-program, or cancelled their WeChat account): its
// sessions end, its login codes' records go, and so does the whole account when it was
// the user's last identity. found is false when there is no such identity (deleted
// already: a push sent twice is harmless), or only one made after at, when the person
// authorized the mini-program again: the event was not about it.
func (s *Service) DeleteIdentity(ctx context.Context, appid, openid string, at time.Time) (found, account bool, err error) {
	var gone []identityKey
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		found, account, gone = false, false, nil
		ident, err := s.lockedIdentity(ctx, tx, appid, openid)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if ident.CreatedAt.Truncate(time.Second).After(at) {
			return nil
		}
		found = true
		others, err := tx.Identity.Query().Where(identity.UserID(ident.UserID), identity.IDNEQ(ident.ID)).Count(ctx)
		if err != nil {
			return err
		}
		if others == 0 {
			account = true
			gone, err = s.deleteUser(ctx, tx, audit, ident.UserID, ByWeChatPush)
			return err
		}
		if err := s.mustLockUser(ctx, tx, ident.UserID); err != nil {
			return err
		}
		sessions, err := tx.Session.Query().Where(session.IdentityID(ident.ID)).IDs(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Session.Delete().Where(session.IdentityID(ident.ID)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.LoginCode.Delete().Where(logincode.IdentityID(ident.ID)).Exec(ctx); err != nil {
			return err
		}
		if err := tx.Identity.DeleteOneID(ident.ID).Exec(ctx); err != nil {
			return err
		}
		gone = []identityKey{{appid, openid}}
		audit.forgetSessions = append(audit.forgetSessions, sessions...)
		n := len(sessions)
		return audit.record(ctx, auditEntry{event: auditevent.EventIdentityDeleted, userID: &ident.UserID, sessions: &n, reason: ByWeChatPush + " " + appid})
	})
	s.forgetIdentities(err, gone)
	return found, account, err
}

// ClearProfile drops the nickname and avatar of an identity's user (WeChat said the
// user changed what they had authorized). found is false when there is no such
// identity.
func (s *Service) ClearProfile(ctx context.Context, appid, openid string) (found bool, err error) {
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		ident, err := tx.Identity.Query().Where(identity.Appid(appid), identity.Openid(openid)).Only(ctx)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if err := tx.User.UpdateOneID(ident.UserID).ClearNickname().ClearAvatarURL().Exec(ctx); err != nil {
			return err
		}
		return audit.record(ctx, auditEntry{event: auditevent.EventProfileCleared, userID: &ident.UserID, reason: ByWeChatPush + " " + appid})
	})
	return found, err
}

// Block ends every session of a user and makes their logins answer FORBIDDEN until
// Unblock; reason is kept with the user and in the audit row.
func (s *Service) Block(ctx context.Context, userID uuid.UUID, reason string) (ended int, err error) {
	reason = clip(reason, 256)
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		if err := s.mustLockUser(ctx, tx, userID); err != nil {
			return err
		}
		upd := tx.User.UpdateOneID(userID).SetBlockedAt(s.clock()).ClearBlockedReason()
		if reason != "" {
			upd.SetBlockedReason(reason)
		}
		if err := upd.Exec(ctx); err != nil {
			return err
		}
		ended, err = s.endSessions(ctx, tx, audit, userID, auditEntry{event: auditevent.EventBlocked, reason: reason})
		return err
	})
	return ended, err
}

// EndSessions ends every live session of a user (wxlogin admin revoke).
func (s *Service) EndSessions(ctx context.Context, userID uuid.UUID) (ended int, err error) {
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		if err := s.mustLockUser(ctx, tx, userID); err != nil {
			return err
		}
		ended, err = s.endSessions(ctx, tx, audit, userID, auditEntry{event: auditevent.EventLogoutAll, reason: ByOperator})
		return err
	})
	return ended, err
}

// endSessions ends a user's live sessions, whose row the caller has locked, and
// records entry for the user with how many ended.
func (s *Service) endSessions(ctx context.Context, tx *ent.Tx, audit *auditor, userID uuid.UUID, entry auditEntry) (int, error) {
	now := s.clock()
	ids, err := tx.Session.Query().Where(s.liveSessionsOf(userID, now)...).IDs(ctx)
	if err != nil {
		return 0, err
	}
	ended, err := tx.Session.Update().Where(session.IDIn(ids...)).SetRevokedAt(now).Save(ctx)
	if err != nil {
		return 0, err
	}
	audit.forgetSessions = append(audit.forgetSessions, ids...)
	entry.userID, entry.sessions = &userID, &ended
	return ended, audit.record(ctx, entry)
}

// Unblock lets a blocked user log in again.
func (s *Service) Unblock(ctx context.Context, userID uuid.UUID) error {
	return s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		if err := s.mustLockUser(ctx, tx, userID); err != nil {
			return err
		}
		if err := tx.User.UpdateOneID(userID).ClearBlockedAt().ClearBlockedReason().Exec(ctx); err != nil {
			return err
		}
		return audit.record(ctx, auditEntry{event: auditevent.EventUnblocked, userID: &userID})
	})
}

// mustLockUser locks a user's row (on MySQL) and says ErrNoUser when there is none.
func (s *Service) mustLockUser(ctx context.Context, tx *ent.Tx, userID uuid.UUID) error {
	q := tx.User.Query().Where(user.ID(userID))
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate()
	}
	n, err := q.Count(ctx)
	if err == nil && n == 0 {
		err = ErrNoUser
	}
	return err
}

// forgetIdentities drops deleted identities from the ones this instance knows, once
// their deletion committed.
func (s *Service) forgetIdentities(err error, gone []identityKey) {
	if err != nil {
		return
	}
	for _, k := range gone {
		s.known.Remove(k)
	}
}

// FindUser reads an operator's reference to a user: a user id, an openid or a unionid.
func (s *Service) FindUser(ctx context.Context, ref string) (uuid.UUID, error) {
	ref = strings.TrimSpace(ref)
	if id, err := uuid.Parse(ref); err == nil {
		if ok, err := s.db.User.Query().Where(user.ID(id)).Exist(ctx); err != nil || ok {
			return id, err
		}
	}
	if ids, err := s.db.Identity.Query().Where(identity.Openid(ref)).Select(identity.FieldUserID).Strings(ctx); err != nil {
		return uuid.Nil, err
	} else if len(ids) == 1 {
		return uuid.Parse(ids[0])
	} else if len(ids) > 1 {
		return uuid.Nil, errors.New("auth: that openid is in several mini-programs: name the user by id")
	}
	if u, err := s.db.User.Query().Where(user.Unionid(ref)).Only(ctx); err == nil {
		return u.ID, nil
	} else if !ent.IsNotFound(err) {
		return uuid.Nil, err
	}
	return uuid.Nil, ErrNoUser
}

// maxExportedEvents bounds the audit events a copy of one's data lists: the newest.
const maxExportedEvents = 5000

// Export is everything wxlogin holds about a user, but the secrets (no session_key, no
// token hash) and the phone number, which the caller opens itself.
type Export struct {
	User        *ent.User
	Identities  []*ent.Identity
	Sessions    []SessionView
	AuditEvents []*ent.AuditEvent
}

// ExportUser reads a user's data; current is the session asking, if any.
func (s *Service) ExportUser(ctx context.Context, userID uuid.UUID, current *uuid.UUID) (*Export, error) {
	u, err := s.db.User.Get(ctx, userID)
	if ent.IsNotFound(err) {
		return nil, ErrNoUser
	}
	if err != nil {
		return nil, err
	}
	idents, err := s.db.Identity.Query().Where(identity.UserID(userID)).Order(ent.Asc(identity.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	live, err := s.db.Session.Query().Where(s.liveSessionsOf(userID, now)...).Order(ent.Desc(session.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]SessionView, len(live))
	for i, sess := range live {
		views[i] = SessionView{Session: sess, ExpiresAt: s.SessionEnds(sess), Current: current != nil && sess.ID == *current}
	}
	events, err := s.db.AuditEvent.Query().Where(auditevent.UserID(userID)).
		Order(ent.Desc(auditevent.FieldAt), ent.Desc(auditevent.FieldID)).Limit(maxExportedEvents).All(ctx)
	if err != nil {
		return nil, err
	}
	return &Export{User: u, Identities: idents, Sessions: views, AuditEvents: events}, nil
}

// blocked refuses a login of a blocked user.
func blocked(u *ent.User) error {
	if u.BlockedAt != nil {
		return ErrBlocked
	}
	return nil
}
