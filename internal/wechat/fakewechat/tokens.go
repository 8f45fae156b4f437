package fakewechat

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"time"
)

// legacyOverlap is how long a /cgi-bin/token token keeps working once the
// next one is issued.
const legacyOverlap = 5 * time.Minute

// token is an access token the fake issued.
type token struct {
	expires time.Time
	revokes time.Time // when a newer /cgi-bin/token token makes it stop working; zero: never
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// InvalidateAccessTokens makes every access token issued so far invalid
// (40001), as if another server had forced a refresh; the next stable_token
// request gets a new one.
func (s *Server) InvalidateAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	s.stable, s.legacy = "", ""
}

// stableToken serves POST /cgi-bin/stable_token: while the current token is
// valid every caller gets it, with the seconds it has left; force_refresh
// replaces it at once.
func (s *Server) stableToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	parsed := readBody(r, &req)
	s.serve(w, r, apiStableToken, FaultNone, func(fault Fault) reply {
		switch {
		case !parsed:
			return fail(47001, "data format error")
		case req.AppID != s.appID:
			return fail(40013, "invalid appid")
		case req.Secret != s.secret:
			return fail(40125, "invalid appsecret")
		case req.GrantType != "client_credential":
			return fail(40002, "invalid grant_type")
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		if t, ok := s.tokens[s.stable]; ok && !req.ForceRefresh && t.expires.Sub(now) >= time.Second {
			return tokenReply(s.stable, t.expires.Sub(now), false)
		}
		if req.ForceRefresh {
			delete(s.tokens, s.stable)
		}
		s.stable = s.mintLocked(now)
		return tokenReply(s.stable, s.tokenTTL, true)
	})
}

// legacyToken serves GET /cgi-bin/token, the older form: every call issues a
// new token, and the previous one stops working 5 minutes later.
func (s *Server) legacyToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serve(w, r, apiToken, FaultNone, func(fault Fault) reply {
		switch {
		case q.Get("appid") != s.appID:
			return fail(40013, "invalid appid")
		case q.Get("secret") != s.secret:
			return fail(40125, "invalid appsecret")
		case q.Get("grant_type") != "client_credential":
			return fail(40002, "invalid grant_type")
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		if prev, ok := s.tokens[s.legacy]; ok && prev.revokes.IsZero() {
			prev.revokes = now.Add(legacyOverlap)
		}
		s.legacy = s.mintLocked(now)
		return tokenReply(s.legacy, s.tokenTTL, true)
	})
}

func tokenReply(tok string, left time.Duration, minted bool) reply {
	secs := int64(left / time.Second)
	return reply{
		ok:    tokenAnswer{AccessToken: tok, ExpiresIn: secs},
		attrs: []slog.Attr{slog.Bool("new_token", minted), slog.Int64("expires_in", secs)},
	}
}

// mintLocked issues a new access token, valid for the token TTL, and
// forgets tokens long dead (they then answer 40001 rather than 42001).
func (s *Server) mintLocked(now time.Time) string {
	for tok, t := range s.tokens {
		if now.Sub(t.expires) > s.tokenTTL || !t.revokes.IsZero() && now.Sub(t.revokes) > s.tokenTTL {
			delete(s.tokens, tok)
		}
	}
	// Real tokens are long and opaque; the shape matters little, the randomness does.
	var b [96]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	s.tokens[tok] = &token{expires: now.Add(s.tokenTTL)}
	return tok
}

// checkTokenLocked is the access-token check every API but the token ones
// makes: errcode 0 when tok works.
func (s *Server) checkTokenLocked(tok string) reply {
	now := s.now()
	t, ok := s.tokens[tok]
	switch {
	case !ok || !t.revokes.IsZero() && !now.Before(t.revokes):
		return fail(40001, "invalid credential, access_token is invalid or not latest")
	case !now.Before(t.expires):
		return fail(42001, "access_token expired")
	}
	return reply{}
}
