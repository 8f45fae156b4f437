package fakewechat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
)

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
