package fakewechat

import (
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// phoneIssued is a phone code: what <button open-type="getPhoneNumber">
// hands the mini-program.
type phoneIssued struct {
	openid, phone string // phone: the number without country code
	expires       time.Time
	used          bool
}

var purePhone = regexp.MustCompile(`^[0-9]{5,15}$`)

// IssuePhoneCode does what the getPhoneNumber button does on the phone: it
// returns a fresh code that getuserphonenumber exchanges, once and within
// CodeTTL, for the mainland-China number purePhone (e.g. "13800000000") of
// the user openid.
func (s *Server) IssuePhoneCode(openid, purePhone string) string {
	code := randomCode()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	s.phoneCodes[code] = &phoneIssued{openid: openid, phone: purePhone, expires: now.Add(s.ttl)}
	return code
}

// PhoneExchanges is how many phone codes getuserphonenumber exchanged: the
// calls WeChat would bill.
func (s *Server) PhoneExchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phoneExchanges
}

type phoneAnswer struct {
	Errcode   int       `json:"errcode"`
	Errmsg    string    `json:"errmsg"`
	PhoneInfo phoneInfo `json:"phone_info"`
}

type phoneInfo struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     string    `json:"countryCode"`
	Watermark       watermark `json:"watermark"`
}

type watermark struct {
	Timestamp int64  `json:"timestamp"`
	AppID     string `json:"appid"`
}

// getPhoneNumber serves POST /wxa/business/getuserphonenumber: it trades a
// phone code, once, for the number it was issued for. With an openid in the
// body, the code must have been issued for that user.
func (s *Server) getPhoneNumber(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	var req struct {
		Code   string `json:"code"`
		OpenID string `json:"openid"`
	}
	parsed := readBody(r, &req)
	s.serve(w, r, apiGetPhoneNumber, FaultNone, func(fault Fault) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		if rep := s.checkTokenLocked(tok); rep.errcode != 0 {
			return rep
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		switch {
		case !parsed:
			return fail(47001, "data format error")
		case req.Code == "":
			return fail(41008, "missing code")
		}
		// WeChat answers "invalid code" to a phone code that is unknown,
		// expired, used, or another user's.
		is, ok := s.phoneCodes[req.Code]
		if !ok || is.used || !s.now().Before(is.expires) || req.OpenID != "" && req.OpenID != is.openid {
			return fail(40029, "invalid code")
		}
		is.used = true
		s.phoneExchanges++
		return reply{
			ok: phoneAnswer{Errmsg: "ok", PhoneInfo: phoneInfo{
				PhoneNumber:     "+86" + is.phone,
				PurePhoneNumber: is.phone,
				CountryCode:     "86",
				Watermark:       watermark{Timestamp: s.now().Unix(), AppID: s.appID},
			}},
			attrs: []slog.Attr{slog.String("openid", is.openid)},
		}
	})
}

// phoneCode mints a phone code like the getPhoneNumber button:
// ?openid=X&phone=13800000000.
func (s *Server) phoneCode(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	openid, phone := q.Get("openid"), q.Get("phone")
	if openid == "" || !purePhone.MatchString(phone) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ?openid=X&phone=NUMBER (5 to 15 digits, no country code)"})
		return
	}
	code := s.IssuePhoneCode(openid, phone)
	s.log.Info("fake getPhoneNumber issued a code", slog.String("openid", openid))
	writeJSON(w, http.StatusOK, map[string]string{"code": code})
}
