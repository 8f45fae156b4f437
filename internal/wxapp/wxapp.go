// Package wxapp is the served mini-programs: each one's WeChat client and access token,
// by appid. Login picks the app a code comes from (the first by default); the services
// that call WeChat on a user's behalf pick the app of the user's session.
package wxapp

import (
	"context"
	"fmt"

	"github.com/wxlogin/wxlogin/internal/wechat"
)

// Client is the WeChat API the services use.
type Client interface {
	AppID() string
	Code2Session(ctx context.Context, code string) (wechat.Session, error)
	GetPhoneNumber(ctx context.Context, accessToken, code, openid string) (wechat.PhoneInfo, error)
	GetWxaCodeUnlimit(ctx context.Context, accessToken string, req wechat.WxaCodeRequest) (image []byte, contentType string, err error)
	CheckSessionKey(ctx context.Context, accessToken, openid, sessionKey string) error
}

// Tokens runs a call with the app's access token, refreshing it once if WeChat rejects it.
type Tokens interface {
	Do(ctx context.Context, fn func(token string) error) error
}

// App is one served mini-program.
type App struct {
	Client Client
	Tokens Tokens
}

// Set finds apps by appid; the first is the default.
type Set struct {
	byID  map[string]App
	first App
}

// NewSet indexes apps by appid; the first is the default.
func NewSet(apps []App) Set {
	s := Set{byID: make(map[string]App, len(apps))}
	for i, a := range apps {
		if i == 0 {
			s.first = a
		}
		s.byID[a.Client.AppID()] = a
	}
	return s
}

// Default is the first app.
func (s Set) Default() App { return s.first }

// AppIDs lists the served appids, the default first.
func (s Set) AppIDs() []string {
	ids := []string{s.first.Client.AppID()}
	for id := range s.byID {
		if id != ids[0] {
			ids = append(ids, id)
		}
	}
	return ids
}

// Get returns the app with appid. A session's identity always names a served app,
// unless the app was removed from the configuration since it logged in.
func (s Set) Get(appid string) (App, error) {
	a, ok := s.byID[appid]
	if !ok {
		return App{}, fmt.Errorf("wxapp: %s is not a served mini-program (was it removed from WECHAT_APPS?)", appid)
	}
	return a, nil
}
