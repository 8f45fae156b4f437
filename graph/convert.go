package graph

import (
	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/graph/model"
	"github.com/wxlogin/wxlogin/internal/auth"
)

// userOf shows an account as the API's User: the user, with the openid and unionid of
// the identity the session logged in with.
func userOf(a auth.Account) *model.User {
	return &model.User{
		ID:          a.User.ID.String(),
		Openid:      a.Identity.Openid,
		Unionid:     a.Identity.Unionid,
		CreatedAt:   a.User.CreatedAt,
		LastLoginAt: a.User.LastLoginAt,
		Nickname:    a.User.Nickname,
		AvatarURL:   a.User.AvatarURL,
		PhoneKnown:  true,
		SealedPhone: sealedPhone(a.User),
	}
}

func sealedPhone(u *ent.User) []byte {
	if u.PhoneNumber == nil {
		return nil
	}
	return *u.PhoneNumber
}

// sessionOf shows a session to its owner.
func sessionOf(v auth.SessionView) *model.Session {
	return &model.Session{
		ID:         v.Session.ID.String(),
		CreatedAt:  v.Session.CreatedAt,
		LastSeenAt: v.Session.LastSeenAt,
		ExpiresAt:  v.ExpiresAt,
		IP:         v.Session.IP,
		UserAgent:  v.Session.UserAgent,
		Current:    v.Current,
	}
}
