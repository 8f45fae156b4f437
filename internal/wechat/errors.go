package wechat

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors: every error a Client's method returns (other than a
// cancelled caller context) satisfies errors.Is with exactly one of them.
var (
	// ErrInvalidCode: WeChat rejected the code (40029 invalid, expired or
	// already used, 40163 already used, 41008 missing): a wx.login code, or a
	// phone code for GetPhoneNumber. The client should get a new code.
	ErrInvalidCode = errors.New("wechat: invalid login code")
	// ErrRateLimited: WeChat's frequency limit (45011).
	ErrRateLimited = errors.New("wechat: rate limited")
	// ErrRiskyUser: WeChat refuses this user as high-risk (40226).
	ErrRiskyUser = errors.New("wechat: high-risk user refused")
	// ErrConfig: WeChat rejected the appid (40013) or the app secret (40125);
	// an operator's configuration error, not the user's.
	ErrConfig = errors.New("wechat: invalid appid or app secret")
	// ErrIPNotAllowed: WeChat refused this server's address (40164): it is not
	// in the mini-program's API IP allow-list. An operator's configuration
	// error: add the server's outbound IP to the allow-list in the WeChat admin
	// console. Refreshing the token does not help.
	ErrIPNotAllowed = errors.New("wechat: this server's IP address is not in the mini-program's API IP allow-list")
	// ErrAccessToken: WeChat rejected the access token (40001 invalid, e.g.
	// replaced by a refresh elsewhere; 40014 invalid or malformed; 42001
	// expired). The caller should get a fresh token once (StableToken) and
	// retry the call once.
	ErrAccessToken = errors.New("wechat: invalid or expired access token")
	// ErrDailyQuota: the API's daily quota is used up (45009 "reach max api
	// daily quota limit"), such as stable_token's 20 forced refreshes a day.
	ErrDailyQuota = errors.New("wechat: the API's daily quota is used up")
	// ErrSessionKeyStale: the session_key the signature was made with is not
	// the user's current one (87009): the user must log in again.
	ErrSessionKeyStale = errors.New("wechat: session_key is stale")
	// ErrForeignCode: WeChat says the phone code was issued to another
	// mini-program (40013 from getuserphonenumber): the client sent a code
	// from the wrong app, and a new code from the same app fares no better.
	ErrForeignCode = errors.New("wechat: the code is for another mini-program")
	// ErrQuotaExhausted: the mini-program has used up its paid quota of an
	// API (1400001, getuserphonenumber's): nothing succeeds until an
	// operator tops it up.
	ErrQuotaExhausted = errors.New("wechat: the API's quota is used up")
	// ErrUnavailable: WeChat was busy (-1) on every attempt, timed out, could
	// not be reached, answered a non-200 status or something that is not its
	// JSON, or a success without the fields it always carries.
	ErrUnavailable = errors.New("wechat: unavailable")
	// ErrUnexpected: any other non-zero errcode.
	ErrUnexpected = errors.New("wechat: unexpected error")
)

// APIError is a non-zero errcode (or errno) answered by WeChat. Errors.Is
// matches it against the sentinel its errcode maps to for its API.
type APIError struct {
	API     string // the API called, e.g. "jscode2session"
	Errcode int
	Errmsg  string
	RID     string // WeChat's request id, parsed from Errmsg; "" when absent
	kind    error
}

// Error reads like "wechat jscode2session: errcode 40029: invalid code, rid: 6592…".
// Errmsg is scrubbed of the secret and code when the error is built.
func (e *APIError) Error() string {
	return "wechat " + e.API + ": errcode " + strconv.Itoa(e.Errcode) + ": " + e.Errmsg
}

// Unwrap returns the sentinel the errcode maps to.
func (e *APIError) Unwrap() error {
	if e.kind == nil {
		return ErrUnexpected
	}
	return e.kind
}

// kindOf maps an errcode to its sentinel, as most APIs mean it (a call's kinds
// say otherwise where its API does).
func kindOf(errcode int) error {
	switch errcode {
	case 40029, 40163, 41008:
		return ErrInvalidCode
	case 45011:
		return ErrRateLimited
	case 40226:
		return ErrRiskyUser
	case 40013, 40125:
		return ErrConfig
	case 40164:
		return ErrIPNotAllowed
	case 40001, 40014, 42001:
		return ErrAccessToken
	case 45009:
		return ErrDailyQuota
	case 87009:
		return ErrSessionKeyStale
	case 1400001:
		return ErrQuotaExhausted
	case -1:
		return ErrUnavailable
	default:
		return ErrUnexpected
	}
}

// parseRID returns the request id WeChat appends to errmsg as "rid: <id>".
func parseRID(errmsg string) string {
	i := strings.LastIndex(errmsg, "rid: ")
	if i < 0 {
		return ""
	}
	rest := errmsg[i+len("rid: "):]
	end := strings.IndexFunc(rest, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-')
	})
	if end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// unavailableError is an ErrUnavailable raised on our side (transport,
// timeout, bad body). Its message is built from redacted text only: it never
// wraps a *url.Error, whose message holds the whole URL with the secret.
type unavailableError struct {
	api   string
	msg   string
	extra error // an additional error to match, e.g. context.DeadlineExceeded; may be nil
	// maybeSent is true when the request may have reached WeChat before the failure
	// (a timeout or a broken answer, not a refused connection): WeChat may have
	// done the work (spent the code, replaced the key).
	maybeSent bool
}

func (e *unavailableError) Error() string {
	return "wechat " + e.api + ": " + e.msg
}

func (e *unavailableError) Unwrap() []error {
	if e.extra != nil {
		return []error{ErrUnavailable, e.extra}
	}
	return []error{ErrUnavailable}
}
