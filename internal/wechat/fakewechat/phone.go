package fakewechat

import (
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// phoneIssued is a phone code: what <button open-type="getPhoneNumber">
// hands the mini-program.
type phoneIssued struct {
	openid  string
	country int    // the country code, e.g. 86
	phone   string // the number without it
	expires time.Time
	used    bool
}

var (
	purePhone   = regexp.MustCompile(`^[0-9]{5,15}$`)
	countryCode = regexp.MustCompile(`^[1-9][0-9]{0,2}$`)
)

// mainland is mainland China's country code, whose numbers WeChat gives bare.
const mainland = 86

// IssuePhoneCode does what the getPhoneNumber button does on the phone: it
// returns a fresh code that getuserphonenumber exchanges, once and within
// CodeTTL, for the mainland-China number purePhone (e.g. "13800000000") of
// the user openid.
func (s *Server) IssuePhoneCode(openid, purePhone string) string {
	return s.IssuePhoneCodeIn(openid, mainland, purePhone)
}

// IssuePhoneCodeIn is IssuePhoneCode for a number of another country:
// countryCode 852 and purePhone "61234567" answer "+85261234567".
func (s *Server) IssuePhoneCodeIn(openid string, countryCode int, purePhone string) string {
	code := randomCode()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	s.phoneCodes[code] = &phoneIssued{openid: openid, country: countryCode, phone: purePhone, expires: now.Add(s.ttl)}
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

// phoneInfo is as in WeChat's documented example and real answers: countryCode a
// number (the documentation's table says a string), phoneNumber bare for mainland
// China and with the area code otherwise.
type phoneInfo struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     int       `json:"countryCode"`
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
	s.serve(w, r, apiGetPhoneNumber, faultCodes[req.Code], func(fault Fault) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		if rep := s.checkTokenLocked(tok); rep.errcode != 0 {
			return rep
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		switch fault {
		case FaultQuota:
			return reply{errcode: 1400001, errmsg: "quota exhausted", errno: true}
		case FaultForeignCode:
			return fail(40013, "invalid appid")
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
		number := is.phone
		if is.country != mainland {
			number = "+" + strconv.Itoa(is.country) + is.phone
		}
		return reply{
			ok: phoneAnswer{Errmsg: "ok", PhoneInfo: phoneInfo{
				PhoneNumber:     number,
				PurePhoneNumber: is.phone,
				CountryCode:     is.country,
				Watermark:       watermark{Timestamp: s.now().Unix(), AppID: s.appID},
			}},
			attrs: []slog.Attr{slog.String("openid", is.openid)},
		}
	})
}

// phoneCode mints a phone code like the getPhoneNumber button:
// ?openid=X&phone=13800000000, with &country=852 for a number outside mainland
// China.
func (s *Server) phoneCode(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	openid, phone, country := q.Get("openid"), q.Get("phone"), q.Get("country")
	if country == "" {
		country = strconv.Itoa(mainland)
	}
	cc, _ := strconv.Atoi(country)
	if openid == "" || !purePhone.MatchString(phone) || !countryCode.MatchString(country) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ?openid=X&phone=NUMBER (5 to 15 digits, no country code), and &country=CODE (1 to 3 digits) outside mainland China"})
		return
	}
	code := s.IssuePhoneCodeIn(openid, cc, phone)
	s.log.Info("fake getPhoneNumber issued a code", slog.String("openid", openid))
	writeJSON(w, http.StatusOK, map[string]string{"code": code})
}
