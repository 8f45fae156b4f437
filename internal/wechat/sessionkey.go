package wechat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

const (
	apiCheckSession         = "checksession"
	apiResetUserSessionKey  = "resetusersessionkey"
	sigMethodHMACSHA256     = "hmac_sha256"
	errmsgStaleAfterAttempt = "the retry found the session_key already replaced, most likely by that attempt"
)

// SessionKeySignature is the signature checksession and resetusersessionkey
// take: the lowercase hex HMAC-SHA256 of the empty string, keyed with the
// session_key as its base64 text (not the decoded bytes). It is as secret as
// the key: whoever has it can reset the user's key.
func SessionKeySignature(sessionKey string) string {
	return SignWithSessionKey("", sessionKey)
}

// SignWithSessionKey is WeChat's user-state signature: the lowercase hex HMAC-SHA256
// of data, keyed with the session_key as its base64 text. checksession and
// resetusersessionkey sign the empty string.
func SignWithSessionKey(data, sessionKey string) string {
	mac := hmac.New(sha256.New, []byte(sessionKey))
	mac.Write([]byte(data))
	return hex.EncodeToString(mac.Sum(nil))
}

// sessionKeyCall is the request both session_key APIs make.
func sessionKeyCall(api, path, accessToken, openid, sessionKey string) (*call, error) {
	query, err := tokenQuery(api, accessToken)
	if err != nil {
		return nil, err
	}
	if sessionKey == "" {
		return nil, fmt.Errorf("wechat %s: empty session_key, not sent: %w", api, ErrSessionKeyStale)
	}
	sig := SessionKeySignature(sessionKey)
	query.Set("openid", openid)
	query.Set("signature", sig)
	query.Set("sig_method", sigMethodHMACSHA256)
	return &call{
		api:     api,
		method:  http.MethodGet,
		path:    path,
		query:   query,
		shown:   []string{"openid", "sig_method"},
		secrets: []string{accessToken, sessionKey, sig},
	}, nil
}

// CheckSessionKey asks WeChat whether sessionKey is still openid's current
// session_key: nil when it is, ErrSessionKeyStale (87009) when it is not and
// the user must log in again. A rejected access token is ErrAccessToken.
// Retries, time limits and other errors are as for Code2Session.
func (c *Client) CheckSessionKey(ctx context.Context, accessToken, openid, sessionKey string) error {
	k, err := sessionKeyCall(apiCheckSession, "/wxa/checksession", accessToken, openid, sessionKey)
	if err != nil {
		return err
	}
	_, err = do(ctx, c, k, func([]byte) (struct{}, []slog.Attr, error) {
		return struct{}{}, []slog.Attr{slog.String("openid", openid), slog.Bool("session_key_valid", true)}, nil
	})
	return err
}

// ResetUserSessionKey makes WeChat replace openid's session_key, which must
// be the current one (else ErrSessionKeyStale), and returns the new key; the
// old one stops working at once. The new key is as secret as the old.
//
// It is retried like Code2Session. When an attempt that may have reached
// WeChat is followed by a retry answering 87009, that attempt most likely
// replaced the key and its answer was lost: the call ends with
// ErrUnavailable, and the user must log in again to get a key.
func (c *Client) ResetUserSessionKey(ctx context.Context, accessToken, openid, sessionKey string) (newSessionKey string, err error) {
	k, err := sessionKeyCall(apiResetUserSessionKey, "/wxa/resetusersessionkey", accessToken, openid, sessionKey)
	if err != nil {
		return "", err
	}
	k.spent, k.spentMsg = 87009, errmsgStaleAfterAttempt
	return do(ctx, c, k, decodeNewSessionKey(openid))
}

// decodeNewSessionKey reads resetusersessionkey's success answer for openid.
func decodeNewSessionKey(openid string) func(body []byte) (string, []slog.Attr, error) {
	return func(body []byte) (string, []slog.Attr, error) {
		var b struct {
			OpenID     string `json:"openid"`
			SessionKey string `json:"session_key"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return "", nil, errNotJSON
		}
		if b.SessionKey == "" {
			return "", nil, errors.New("success answer without session_key")
		}
		if b.OpenID != "" && b.OpenID != openid {
			return "", nil, errors.New("success answer for another openid")
		}
		return b.SessionKey, []slog.Attr{slog.String("openid", openid)}, nil
	}
}
