package fakewechat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// SessionKeys is when the fake gives a user a new session_key. WeChat's own rule is
// undisclosed: a new wx.login may rotate the key, when the code is issued rather than
// when it is exchanged, and two logins in a row often keep the same key.
type SessionKeys int

const (
	// RotateOnExchange: every code2Session gives a new key (the default), the most
	// demanding for a server that stores the key.
	RotateOnExchange SessionKeys = iota
	// KeepSessionKey: a user keeps one key across logins; only resetusersessionkey
	// replaces it.
	KeepSessionKey
	// RotateOnIssue: wx.login (IssueCode, GET /fake/wx.login) replaces the user's key
	// when it issues the code, and the exchange hands over the key current then. A
	// server's stored key goes stale as soon as the mini-program calls wx.login
	// again, exchanged or not. A dev-<name> code, issued and exchanged at once,
	// rotates at its exchange.
	RotateOnIssue
)

var sessionKeysNames = map[SessionKeys]string{RotateOnExchange: "exchange", KeepSessionKey: "keep", RotateOnIssue: "issue"}

// String is the mode's name, as ParseSessionKeys takes it.
func (m SessionKeys) String() string {
	if n, ok := sessionKeysNames[m]; ok {
		return n
	}
	return "SessionKeys(" + strconv.Itoa(int(m)) + ")"
}

// describe says when the mode rotates, for the fake's help text.
func (m SessionKeys) describe() string {
	switch m {
	case KeepSessionKey:
		return "kept across logins (keep)"
	case RotateOnIssue:
		return "a new one when wx.login issues a code (issue)"
	}
	return "a new one on every login (exchange)"
}

// ParseSessionKeys reads a mode's name: "exchange", "keep" or "issue".
func ParseSessionKeys(name string) (SessionKeys, error) {
	for m, n := range sessionKeysNames {
		if n == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("fakewechat: session keys %q: want exchange (a new key per login), keep or issue (a new key per wx.login)", name)
}

// rotateOnIssueLocked gives openid a new key, when the mode rotates keys as wx.login
// issues a code.
func (s *Server) rotateOnIssueLocked(openid string) {
	if s.keyMode == RotateOnIssue {
		s.sessionKeys[openid] = newSessionKey()
	}
}

// exchangeKeyLocked is the session_key a code2Session of openid hands over, which
// becomes the user's current one. issued says the code came from IssueCode.
func (s *Server) exchangeKeyLocked(openid string, issued bool) string {
	key, ok := s.sessionKeys[openid]
	switch {
	case !ok, s.keyMode == RotateOnExchange, s.keyMode == RotateOnIssue && !issued:
		key = newSessionKey()
		s.sessionKeys[openid] = key
	}
	return key
}

type okAnswer struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

type resetAnswer struct {
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
}

// checkSession serves GET /wxa/checksession: is the signature made with the
// user's current session_key?
func (s *Server) checkSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serve(w, r, apiCheckSession, FaultNone, func(fault Fault) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		openid, rep := s.checkSignatureLocked(q, fault)
		if rep.errcode != 0 {
			return rep
		}
		return reply{ok: okAnswer{Errmsg: "ok"}, attrs: []slog.Attr{slog.String("openid", openid)}}
	})
}

// resetSessionKey serves GET /wxa/resetusersessionkey: given a signature
// made with the user's current session_key, it replaces that key.
func (s *Server) resetSessionKey(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serve(w, r, apiResetUserSessionKey, FaultNone, func(fault Fault) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		openid, rep := s.checkSignatureLocked(q, fault)
		if rep.errcode != 0 {
			return rep
		}
		key := newSessionKey()
		s.sessionKeys[openid] = key
		return reply{
			ok:    resetAnswer{Errmsg: "ok", OpenID: openid, SessionKey: key},
			attrs: []slog.Attr{slog.String("openid", openid)},
		}
	})
}

// checkSignatureLocked makes the checks both session_key APIs make, in
// WeChat's order, and returns the openid. A user the fake knows no
// session_key of (it never logged in, or the fake restarted) matches no
// signature, as a user whose key has been replaced.
func (s *Server) checkSignatureLocked(q map[string][]string, fault Fault) (string, reply) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if rep := s.checkTokenLocked(get("access_token")); rep.errcode != 0 {
		return "", rep
	}
	if rep, ok := faultReply(fault); ok {
		return "", rep
	}
	openid := get("openid")
	key, known := s.sessionKeys[openid]
	if get("sig_method") != "hmac_sha256" || !known || !hmac.Equal([]byte(get("signature")), []byte(signature(key))) {
		return "", fail(87009, "invalid signature")
	}
	return openid, reply{}
}

// signature is what the client signs with: hex HMAC-SHA256 of the empty
// string, keyed with the session_key's base64 text.
func signature(sessionKey string) string {
	mac := hmac.New(sha256.New, []byte(sessionKey))
	return hex.EncodeToString(mac.Sum(nil))
}
