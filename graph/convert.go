package graph

import (
	"context"

	"github.com/wxlogin/wxlogin/graph/model"
	"github.com/wxlogin/wxlogin/internal/auth"
)

// userOf shows an account as the API's User: the user, with the openid and unionid of
// the identity the session logged in with. Its phone number is opened from the row as
// it was read, only if the request asks for it.
func (r *Resolver) userOf(a auth.Account) *model.User {
	u := r.userWithoutPhone(a)
	id, sealed := a.User.ID, a.User.PhoneNumber
	u.Phone = func() (*string, error) {
		if sealed == nil {
			return nil, nil
		}
		return r.Phone.Open(id, *sealed)
	}
	return u
}

// userFresh is userOf for a user whose phone number has just changed: it is read again
// when asked for.
func (r *Resolver) userFresh(ctx context.Context, a auth.Account) *model.User {
	u := r.userWithoutPhone(a)
	u.Phone = func() (*string, error) { return r.Phone.NumberOf(ctx, a.User.ID) }
	return u
}

func (r *Resolver) userWithoutPhone(a auth.Account) *model.User {
	return &model.User{
		ID:          a.User.ID.String(),
		Openid:      a.Identity.Openid,
		Unionid:     a.Identity.Unionid,
		CreatedAt:   a.User.CreatedAt,
		LastLoginAt: a.User.LastLoginAt,
		Nickname:    a.User.Nickname,
		AvatarURL:   a.User.AvatarURL,
	}
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
		Web:        v.Session.Web,
	}
}

// moveWebLogin runs a web-login step of the current user's.
func (r *mutationResolver) moveWebLogin(ctx context.Context, id string, step func(context.Context, *auth.Current, string) (*auth.WebLoginRequest, error)) (*model.WebLoginRequest, error) {
	cur, err := auth.CurrentFrom(ctx)
	if err != nil {
		return nil, err
	}
	req, err := step(ctx, cur, id)
	if err != nil {
		return nil, err
	}
	return &model.WebLoginRequest{
		ID:        auth.WebLoginScene(req.ID),
		State:     model.WebLoginState(req.State),
		CreatedAt: req.CreatedAt,
		ExpiresAt: req.ExpiresAt,
		UserAgent: req.UserAgent,
		IP:        req.IP,
	}, nil
}

// webLoginStatusOf shows a web login to its browser, with the web session once.
func (r *Resolver) webLoginStatusOf(st *auth.WebLoginStatus) *model.WebLoginStatus {
	out := &model.WebLoginStatus{State: model.WebLoginState(st.State), ExpiresAt: st.ExpiresAt}
	if st.Session != nil {
		out.Session = &model.LoginPayload{Token: st.Session.Token, ExpiresAt: st.Session.ExpiresAt, User: r.userOf(st.Session.Account)}
	}
	return out
}
