package fakewechat

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"
)

const (
	// legacyOverlap is how long a /cgi-bin/token token keeps working once the
	// next one is issued.
	legacyOverlap = 5 * time.Minute
	// stableOverlap: in a stable token's last 5 minutes a normal stable_token
	// call gets the next token, while the old one keeps working to its end; so
	// expires_in is never under 300.
	stableOverlap = 5 * time.Minute
	// forceGap: a forced refresh sooner than this after the last one does not
	// refresh.
	forceGap = 30 * time.Second
	// forcedPerDay is WeChat's daily cap on forced refreshes; past it a forced
	// refresh answers 45009.
	forcedPerDay = 20
)

// token is an access token the fake issued.
type token struct {
	expires time.Time
	revokes time.Time // when a newer /cgi-bin/token token makes it stop working; zero: never
}

// tokenRules is what the fake keeps to enforce stable_token's limits, and the
// token tests' switches. Guarded by Server.mu.
type tokenRules struct {
	forcedAt    time.Time // the last forced refresh that refreshed
	forcedDay   string    // the day (Beijing time) forcedToday counts
	forcedToday int
	forceCalls  int      // stable_token requests that asked force_refresh
	reject      int      // the errcode every use of a token gets; 0: none
	rejectLeft  int      // uses left to reject; < 0: until cleared
	allowedIPs  []string // when not empty, the only addresses the token APIs serve
}

// rejections are the errcodes RejectAccessTokens can put on, with WeChat's errmsg.
var rejections = map[int]string{
	40001: "invalid credential, access_token is invalid or not latest",
	40014: "invalid access_token",
	42001: "access_token expired",
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

// RejectAccessTokens makes the next `times` uses of an access token by the
// other APIs (times < 0: every use until RejectAccessTokens(0, 0)) answer
// errcode, whatever the token: 40001 (invalid or not latest), 40014
// (invalid, malformed) or 42001 (expired), as WeChat may. The token APIs
// answer as usual, so a refresh may hand back the very token rejected. Any
// other errcode panics, as a typo in a test should.
func (s *Server) RejectAccessTokens(errcode, times int) {
	if _, ok := rejections[errcode]; !ok && errcode != 0 {
		panic(fmt.Sprintf("fakewechat: RejectAccessTokens(%d): want 40001, 40014, 42001 or 0", errcode))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if errcode == 0 || times == 0 {
		errcode, times = 0, 0
	}
	s.rules.reject, s.rules.rejectLeft = errcode, times
}

// SetIPAllowList makes the token APIs (stable_token and token) answer 40164
// to a caller whose address is not one of ips, as WeChat does for a server
// missing from the mini-program's API IP allow-list. No ips: every address
// is served (the default).
func (s *Server) SetIPAllowList(ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules.allowedIPs = slices.Clone(ips)
}

// ForceRefreshCalls is how many stable_token requests asked force_refresh,
// whatever came of them (a refresh, the current token, an error).
func (s *Server) ForceRefreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rules.forceCalls
}

// ipRefusal is the 40164 answer to a caller outside the allow-list, if one is set.
func (s *Server) ipRefusal(r *http.Request) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rules.allowedIPs) == 0 {
		return reply{}, false
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if slices.Contains(s.rules.allowedIPs, ip) {
		return reply{}, false
	}
	return fail(40164, fmt.Sprintf("invalid ip %s ipv6 ::ffff:%s, not in whitelist", ip, ip)), true
}

// stableToken serves POST /cgi-bin/stable_token as WeChat's: while the
// current token has more than 5 minutes left every caller gets it, with the
// seconds it has left; in its last 5 minutes a caller gets a new one, and the
// old one keeps working to its end. force_refresh replaces the token at once,
// at most 20 times a day (Beijing time) and 30 s apart: a forced refresh
// sooner than 30 s after the last one answers as a normal call, and past the
// daily cap it is errcode 45009. Only forced refreshes that refresh count
// towards the cap.
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
		if rep, ok := s.ipRefusal(r); ok {
			return rep
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		if req.ForceRefresh {
			s.rules.forceCalls++
			if now.Sub(s.rules.forcedAt) >= forceGap {
				return s.forceRefreshLocked(now)
			}
		}
		if t, ok := s.tokens[s.stable]; ok && t.expires.Sub(now) >= stableOverlap {
			return tokenReply(s.stable, t.expires.Sub(now), false)
		}
		s.stable = s.mintLocked(now)
		return tokenReply(s.stable, s.tokenTTL, true)
	})
}

// forceRefreshLocked replaces the stable token at once, within the daily cap.
func (s *Server) forceRefreshLocked(now time.Time) reply {
	// WeChat's daily quotas reset at midnight in China.
	day := now.In(time.FixedZone("CST", 8*60*60)).Format(time.DateOnly)
	if s.rules.forcedDay != day {
		s.rules.forcedDay, s.rules.forcedToday = day, 0
	}
	if s.rules.forcedToday >= forcedPerDay {
		return fail(45009, "reach max api daily quota limit")
	}
	s.rules.forcedToday++
	s.rules.forcedAt = now
	delete(s.tokens, s.stable)
	s.stable = s.mintLocked(now)
	return tokenReply(s.stable, s.tokenTTL, true)
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
		if rep, ok := s.ipRefusal(r); ok {
			return rep
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
	if s.rules.rejectLeft != 0 {
		code := s.rules.reject
		if s.rules.rejectLeft > 0 {
			s.rules.rejectLeft--
		}
		return fail(code, rejections[code])
	}
	now := s.now()
	t, ok := s.tokens[tok]
	switch {
	case !ok || !t.revokes.IsZero() && !now.Before(t.revokes):
		return fail(40001, rejections[40001])
	case !now.Before(t.expires):
		return fail(42001, rejections[42001])
	}
	return reply{}
}
