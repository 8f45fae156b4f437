package auth

import (
	"database/sql"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
)

// The joined reads of the hot paths (a session's lookup, returning logins' identities)
// select a user's, an identity's and a session's columns by ent's names, and scan each
// row shape with one function: the columns and the scan targets sit side by side, in
// the same order.

func userColumns(t *entsql.SelectTable) []string {
	return []string{t.C(user.FieldID), t.C(user.FieldUnionid), t.C(user.FieldNickname), t.C(user.FieldAvatarURL),
		t.C(user.FieldPhoneNumber), t.C(user.FieldCreatedAt), t.C(user.FieldLastLoginAt), t.C(user.FieldBlockedAt)}
}

func scanUser(u *ent.User) []any {
	return []any{&u.ID, nullable(&u.Unionid), nullable(&u.Nickname), nullable(&u.AvatarURL),
		nullable(&u.PhoneNumber), &u.CreatedAt, &u.LastLoginAt, nullable(&u.BlockedAt)}
}

func identityColumns(t *entsql.SelectTable) []string {
	return []string{t.C(identity.FieldID), t.C(identity.FieldAppid), t.C(identity.FieldOpenid), t.C(identity.FieldUnionid),
		t.C(identity.FieldSessionKey), t.C(identity.FieldUserID), t.C(identity.FieldCreatedAt), t.C(identity.FieldUpdatedAt)}
}

func scanIdentity(i *ent.Identity) []any {
	return []any{&i.ID, &i.Appid, &i.Openid, nullable(&i.Unionid), &i.SessionKey, &i.UserID, &i.CreatedAt, &i.UpdatedAt}
}

func sessionColumns(t *entsql.SelectTable) []string {
	return []string{t.C(session.FieldID), t.C(session.FieldUserID), t.C(session.FieldIdentityID), t.C(session.FieldCreatedAt),
		t.C(session.FieldExpiresAt), t.C(session.FieldLastSeenAt), t.C(session.FieldRevokedAt), t.C(session.FieldIP), t.C(session.FieldUserAgent),
		t.C(session.FieldWeb)}
}

func scanSession(s *ent.Session) []any {
	return []any{&s.ID, &s.UserID, &s.IdentityID, &s.CreatedAt, &s.ExpiresAt, &s.LastSeenAt, nullable(&s.RevokedAt), nullable(&s.IP), nullable(&s.UserAgent), &s.Web}
}

// nullable scans a column that may be NULL into an ent field that is a pointer: nil
// for NULL. A time is made UTC, as ent reads it.
func nullable[T any](p **T) sql.Scanner { return nullTarget[T]{p} }

type nullTarget[T any] struct{ p **T }

func (n nullTarget[T]) Scan(src any) error {
	var v sql.Null[T]
	if err := v.Scan(src); err != nil {
		return err
	}
	if !v.Valid {
		*n.p = nil
		return nil
	}
	if t, ok := any(v.V).(time.Time); ok {
		v.V = any(t.UTC()).(T)
	}
	*n.p = &v.V
	return nil
}
