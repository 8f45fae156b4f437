// Package wxapp names what a served mini-program offers the services that call WeChat
// on a user's behalf: its client and its access token. The services pick the app of
// the user's session by appid.
package wxapp

import (
	"context"
	"fmt"

	"github.com/wxlogin/wxlogin/internal/wechat"
)

// Client is the WeChat API the services use.
type Client interface {
	AppID() string
	GetPhoneNumber(ctx context.Context, accessToken, code, openid string) (wechat.PhoneInfo, error)
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

// Set finds apps by appid.
type Set map[string]App

// NewSet indexes apps by appid.
func NewSet(apps []App) Set {
	s := make(Set, len(apps))
	for _, a := range apps {
		s[a.Client.AppID()] = a
	}
	return s
}

// Get returns the app with appid. A session's identity always names a served app,
// unless the app was removed from the configuration since it logged in.
func (s Set) Get(appid string) (App, error) {
	a, ok := s[appid]
	if !ok {
		return App{}, fmt.Errorf("wxapp: %s is not a served mini-program (was it removed from WECHAT_APPS?)", appid)
	}
	return a, nil
}
