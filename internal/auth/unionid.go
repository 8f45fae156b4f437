package auth

import (
	"context"
	"errors"
	"time"

	"entgo.io/ent/dialect"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/phonecode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/phone"
)

// lockedUserQuery reads users with a lock on MySQL, so that a read after waiting on a
// lock sees what the other transaction committed rather than this one's snapshot.
func (s *Service) lockedUserQuery(tx *ent.Tx) *ent.UserQuery {
	q := tx.User.Query()
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate()
	}
	return q
}

// linkUnionID records the unionid WeChat gave for an identity's login on its user.
// When another user already holds it (the person logged in through another mini-program
// first, and this identity was first seen without a unionid), the two users are one
// person: they are merged into the one holding the unionid, in this transaction.
func (s *Service) linkUnionID(ctx context.Context, tx *ent.Tx, audit *auditor, acct Account, unionid string, now time.Time) (Account, error) {
	if acct.User.Unionid != nil && *acct.User.Unionid == unionid {
		return acct, nil
	}
	for attempt := 0; attempt < 2; attempt++ {
		holder, err := s.lockedUserQuery(tx).Where(user.Unionid(unionid), user.IDNEQ(acct.User.ID)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			if acct.User.Unionid != nil {
				// WeChat gave this identity a different unionid than its user has: keep
				// the user as it is rather than guess.
				s.log.WarnContext(ctx, "auth: an identity's unionid differs from its user's; not relinking", "user_id", acct.User.ID.String())
				return acct, nil
			}
			u, err := tx.User.UpdateOneID(acct.User.ID).SetUnionid(unionid).Save(ctx)
			if database.IsUniqueViolation(err) {
				continue // another login gave the unionid to a user just now: merge into it
			}
			if err != nil {
				return Account{}, err
			}
			acct.User = u
			return acct, nil
		case err != nil:
			return Account{}, err
		}
		survivor, err := s.merge(ctx, tx, audit, acct.User, holder, now)
		if err != nil {
			return Account{}, err
		}
		ident, err := tx.Identity.Get(ctx, acct.Identity.ID)
		if err != nil {
			return Account{}, err
		}
		return Account{User: survivor, Identity: ident}, nil
	}
	return Account{}, errUnionRace
}

// errUnionRace is an internal failure, not a missing session: the presenter masks it
// as INTERNAL.
var errUnionRace = errors.New("auth: could not link the unionid: it kept moving")

// merge moves everything of loser to survivor and deletes loser: identities, sessions
// (their tokens keep working, for the merged user), recent code records, and the
// nickname, avatar and phone number survivor lacks. Audit rows keep the ids they were
// written with.
func (s *Service) merge(ctx context.Context, tx *ent.Tx, audit *auditor, loser, survivor *ent.User, now time.Time) (*ent.User, error) {
	if err := tx.Identity.Update().Where(identity.UserID(loser.ID)).SetUserID(survivor.ID).Exec(ctx); err != nil {
		return nil, err
	}
	if err := tx.Session.Update().Where(session.UserID(loser.ID)).SetUserID(survivor.ID).Exec(ctx); err != nil {
		return nil, err
	}
	if err := tx.LoginCode.Update().Where(logincode.UserID(loser.ID)).SetUserID(survivor.ID).Exec(ctx); err != nil {
		return nil, err
	}
	if err := tx.PhoneCode.Update().Where(phonecode.UserID(loser.ID)).SetUserID(survivor.ID).Exec(ctx); err != nil {
		return nil, err
	}
	upd := tx.User.UpdateOneID(survivor.ID).SetLastLoginAt(now)
	if survivor.Nickname == nil && loser.Nickname != nil {
		upd.SetNickname(*loser.Nickname)
	}
	if survivor.AvatarURL == nil && loser.AvatarURL != nil {
		upd.SetAvatarURL(*loser.AvatarURL)
	}
	if !phone.Has(survivor) && phone.Has(loser) {
		// Sealed to loser's id: open it and seal it again to survivor's.
		number, err := s.keyring.Open(*loser.PhoneNumber, phone.Binding(loser.ID))
		if err != nil {
			return nil, err
		}
		upd.SetPhoneNumber(s.keyring.Seal(number, phone.Binding(survivor.ID)))
	}
	if err := tx.User.DeleteOneID(loser.ID).Exec(ctx); err != nil {
		return nil, err
	}
	merged, err := upd.Save(ctx)
	if err != nil {
		return nil, err
	}
	// The loser's sessions now belong to survivor: once this commits, this instance
	// reads them afresh.
	audit.forgetUsers = append(audit.forgetUsers, loser.ID, survivor.ID)
	s.log.InfoContext(ctx, "auth: merged two users of one person (same unionid)", "user_id", survivor.ID.String(), "merged_user_id", loser.ID.String())
	return merged, nil
}
