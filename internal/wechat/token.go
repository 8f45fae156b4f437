package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

const apiStableToken = "stable_token"

// maxTokenLife bounds the life an answer may claim for a token. WeChat's last 2 hours;
// one claiming more is believed for a day at most (erring early, as ExpiresAt does), and
// an absurd expires_in cannot overflow the expiry into the past.
const maxTokenLife = 24 * time.Hour

// AccessToken is a WeChat access token and when it stops working. Token is
// secret: String and LogValue leave it out.
type AccessToken struct {
	Token     string
	ExpiresAt time.Time
}

// LogValue shows the expiry only.
func (t AccessToken) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expires_at", t.ExpiresAt))
}

// String shows the expiry only, so that printing a token never reveals it.
func (t AccessToken) String() string {
	return "wechat.AccessToken{Token:" + redacted + " ExpiresAt:" + t.ExpiresAt.Format(time.RFC3339) + "}"
}

// GoString is String, for %#v.
func (t AccessToken) GoString() string { return t.String() }

// StableToken gets the mini-program's access token from
// /cgi-bin/stable_token. While a token has more than 5 minutes left WeChat
// answers the same one to every caller, so several servers can each call
// this on their own; in its last 5 minutes a call gets the next token, and
// the old one works to its end. forceRefresh makes WeChat replace it at once,
// for when a call answered ErrAccessToken; WeChat allows that 20 times a day
// (past it: ErrDailyQuota) and 30 s apart (sooner, the current token comes
// back). The client does not cache the token: the caller keeps it until
// shortly before ExpiresAt.
//
// ExpiresAt is counted from when the call began, so it errs early, never
// late. Retries, time limits and errors are as for Code2Session; WeChat's
// 40013 and 40125 are ErrConfig, 40164 (this server's IP is not in the
// allow-list) ErrIPNotAllowed.
func (c *Client) StableToken(ctx context.Context, forceRefresh bool) (AccessToken, error) {
	body, err := json.Marshal(struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}{"client_credential", c.appID, c.secret, forceRefresh})
	if err != nil {
		return AccessToken{}, &unavailableError{api: apiStableToken, msg: "cannot build request"}
	}
	began := c.now()
	k := &call{
		api:    apiStableToken,
		method: http.MethodPost,
		path:   "/cgi-bin/stable_token",
		body:   body,
	}
	return do(ctx, c, k, decodeAccessToken(began, forceRefresh))
}

// decodeAccessToken reads stable_token's success answer, for a call that began at began.
func decodeAccessToken(began time.Time, forceRefresh bool) func(body []byte) (AccessToken, []slog.Attr, error) {
	return func(body []byte) (AccessToken, []slog.Attr, error) {
		var b struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return AccessToken{}, nil, errNotJSON
		}
		if b.AccessToken == "" || b.ExpiresIn <= 0 {
			return AccessToken{}, nil, errors.New("success answer without access_token or expires_in")
		}
		life := maxTokenLife
		if b.ExpiresIn < int64(maxTokenLife/time.Second) {
			life = time.Duration(b.ExpiresIn) * time.Second
		}
		t := AccessToken{Token: b.AccessToken, ExpiresAt: began.Add(life)}
		return t, []slog.Attr{slog.Any("token", t), slog.Bool("force_refresh", forceRefresh), slog.Int64("expires_in", b.ExpiresIn)}, nil
	}
}

// tokenQuery starts the query of an API that takes the access token, or
// says why the call is not sent.
func tokenQuery(api, accessToken string) (url.Values, error) {
	if accessToken == "" {
		return nil, fmt.Errorf("wechat %s: empty access token, not sent: %w", api, ErrAccessToken)
	}
	return url.Values{"access_token": {accessToken}}, nil
}
