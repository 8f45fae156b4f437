// Package fakewechat is a fake of WeChat's server API, served over real HTTP
// the way WeChat answers (HTTP 200, JSON errcode/errmsg, errmsg ending in
// ", rid: …"). It backs dev mode, the tests, and client teams who need codes
// without a phone: login codes are minted with IssueCode or GET
// /fake/wx.login, phone codes with IssuePhoneCode or GET /fake/phonecode,
// and faults (busy, rate limit, slow, gateway errors…) can be injected per
// API. Besides code2Session it serves access tokens (stable_token and the
// older token), getuserphonenumber, checksession, resetusersessionkey and
// getwxacodeunlimit (mini-program codes, drawn as QR codes).
package fakewechat

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The APIs, by the names InjectFaultFor and CallsTo take.
const (
	apiCode2Session        = "jscode2session"
	apiStableToken         = "stable_token"
	apiToken               = "token" // GET /cgi-bin/token, the older form
	apiGetPhoneNumber      = "getuserphonenumber"
	apiCheckSession        = "checksession"
	apiResetUserSessionKey = "resetusersessionkey"
	apiWxaCode             = "getwxacodeunlimit"
)

var apiNames = []string{apiCode2Session, apiStableToken, apiToken, apiGetPhoneNumber, apiCheckSession, apiResetUserSessionKey, apiWxaCode}

// Options configures a Server.
type Options struct {
	AppID, Secret  string           // required
	CodeTTL        time.Duration    // how long an issued code (login or phone) is valid; default 5 minutes
	AccessTokenTTL time.Duration    // how long an access token is valid; default 7200 s
	Now            func() time.Time // default time.Now (tests move the clock)
	SlowDelay      time.Duration    // delay for FaultSlow; default 1500ms
	Latency        time.Duration    // how long every API answer takes, as a far-away WeChat's would; default 0 (SetLatency changes it)
	SessionKeys    SessionKeys      // when a user gets a new session_key; default RotateOnExchange
	Logger         *slog.Logger     // optional; default discards
	// Pages are the mini-program's pages, as app.json lists them ("pages/index/index"):
	// getwxacodeunlimit answers 41030 for any other. nil: any path "pages/…".
	Pages []string
}

// User is who a code logs in as. UnionID "" means the mini-program is not
// bound to an Open Platform account, and WeChat sends no unionid.
type User struct{ OpenID, UnionID string }

// Fault is a misbehaviour of WeChat the fake can put on.
type Fault int

const (
	FaultNone          Fault = iota
	FaultBusy                // errcode -1 "system error"; nothing is done (the code is not consumed)
	FaultRateLimit           // errcode 45011
	FaultRiskyUser           // errcode 40226
	FaultSlow                // does the work (exchanges the code…), then waits SlowDelay (or until the request ends) to answer
	FaultHTML502             // HTTP 502 with an HTML body, like a gateway error page; nothing is done
	FaultTruncatedJSON       // does the work, then answers HTTP 200 with the JSON (or the image) cut in half
	FaultHang                // no answer until the request ends or the Server is closed; nothing is done
	FaultQuota               // getuserphonenumber only: errno 1400001, the paid quota is used up; the code is not consumed
	FaultForeignCode         // getuserphonenumber only: errcode 40013, the phone code is another mini-program's
)

var faultNames = map[Fault]string{
	FaultNone:          "none",
	FaultBusy:          "busy",
	FaultRateLimit:     "ratelimit",
	FaultRiskyUser:     "risky",
	FaultSlow:          "slow",
	FaultHTML502:       "html502",
	FaultTruncatedJSON: "truncated",
	FaultHang:          "hang",
	FaultQuota:         "quota",
	FaultForeignCode:   "otherapp",
}

// String is the fault's name, as used in the fault codes "fault-<name>".
func (f Fault) String() string {
	if n, ok := faultNames[f]; ok {
		return n
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// faultCodes maps the codes "fault-busy", "fault-ratelimit"… to their fault.
var faultCodes = func() map[string]Fault {
	m := make(map[string]Fault)
	for f, n := range faultNames {
		if f != FaultNone {
			m["fault-"+n] = f
		}
	}
	return m
}()

var devName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// Server is the fake WeChat. It is an http.Handler, safe for concurrent use.
type Server struct {
	appID, secret string
	ttl           time.Duration
	tokenTTL      time.Duration
	now           func() time.Time
	slow          time.Duration
	latency       atomic.Int64 // nanoseconds every API answer waits
	log           *slog.Logger
	mux           *http.ServeMux
	keyMode       SessionKeys // when a user gets a new session_key
	pages         []string    // Options.Pages

	mu             sync.Mutex
	codes          map[string]*issued
	phoneCodes     map[string]*phoneIssued
	sessionKeys    map[string]string // openid → its current session_key
	tokens         map[string]*token // every access token issued and not invalidated
	stable         string            // the stable_token of the moment; "" none
	legacy         string            // the latest /cgi-bin/token token; "" none
	rules          tokenRules        // stable_token's limits, the token tests' switches
	faults         map[string]injected
	calls          map[string]int
	phoneExchanges int
	wxaCodes       []WxaCodeRequest // the latest codes drawn, oldest first
	closed         chan struct{}
	closeOnce      sync.Once
	lastPruned     time.Time
}

type issued struct {
	user    User
	expires time.Time
	used    bool
}

// injected is a fault put on an API by InjectFaultFor.
type injected struct {
	fault Fault
	left  int // requests left to get it; < 0: until cleared
}

// New returns a fake WeChat for one mini-program. It panics when AppID or
// Secret is empty: that is a programming error, not a runtime condition.
func New(opts Options) *Server {
	if opts.AppID == "" || opts.Secret == "" {
		panic("fakewechat: Options.AppID and Options.Secret are required")
	}
	s := &Server{
		appID:       opts.AppID,
		secret:      opts.Secret,
		ttl:         opts.CodeTTL,
		tokenTTL:    opts.AccessTokenTTL,
		now:         opts.Now,
		slow:        opts.SlowDelay,
		log:         opts.Logger,
		keyMode:     opts.SessionKeys,
		pages:       slices.Clone(opts.Pages),
		codes:       make(map[string]*issued),
		phoneCodes:  make(map[string]*phoneIssued),
		sessionKeys: make(map[string]string),
		tokens:      make(map[string]*token),
		faults:      make(map[string]injected),
		calls:       make(map[string]int),
		closed:      make(chan struct{}),
	}
	if s.ttl <= 0 {
		s.ttl = 5 * time.Minute
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = 7200 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.slow <= 0 {
		s.slow = 1500 * time.Millisecond
	}
	s.latency.Store(int64(opts.Latency))
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /sns/jscode2session", s.jscode2session)
	s.mux.HandleFunc("POST /cgi-bin/stable_token", s.stableToken)
	s.mux.HandleFunc("GET /cgi-bin/token", s.legacyToken)
	s.mux.HandleFunc("POST /wxa/business/getuserphonenumber", s.getPhoneNumber)
	s.mux.HandleFunc("GET /wxa/checksession", s.checkSession)
	s.mux.HandleFunc("GET /wxa/resetusersessionkey", s.resetSessionKey)
	s.mux.HandleFunc("POST /wxa/getwxacodeunlimit", s.wxaCode)
	s.mux.HandleFunc("GET /fake/wx.login", s.wxLogin)
	s.mux.HandleFunc("GET /fake/phonecode", s.phoneCode)
	return s
}

// ServeHTTP serves WeChat's APIs (/sns/jscode2session, /cgi-bin/stable_token,
// /cgi-bin/token, /wxa/business/getuserphonenumber, /wxa/checksession,
// /wxa/resetusersessionkey, /wxa/getwxacodeunlimit) and the fake's own
// /fake/wx.login and /fake/phonecode.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetLatency makes every API answer from now on take d (0: at once), as WeChat's do
// across the internet: load tests use it to hold many logins in flight.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// AppID is the fake mini-program's appid.
func (s *Server) AppID() string { return s.appID }

// Secret is the fake mini-program's app secret.
func (s *Server) Secret() string { return s.secret }

// IssueCode does what wx.login does on the phone: it returns a fresh random
// code for u, valid once, for CodeTTL. Under RotateOnIssue it replaces u's
// session_key.
func (s *Server) IssueCode(u User) string {
	code := randomCode()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	s.codes[code] = &issued{user: u, expires: now.Add(s.ttl)}
	s.rotateOnIssueLocked(u.OpenID)
	return code
}

// FreshDevCode turns a dev code (dev-alice) into a fresh code of the same dev user,
// as if wx.login had just given it; any other code comes back as it is. Dev mode gives
// it to login, so that a person in the playground who reuses dev-alice logs in as
// a returning user, the way a mini-program that calls wx.login again does.
func (s *Server) FreshDevCode(code string) string {
	if name, ok := strings.CutPrefix(code, "dev-"); ok && devName.MatchString(name) {
		return s.IssueCode(s.devUser(name))
	}
	return code
}

// pruneLocked forgets expired codes (login and phone), at most once per
// TTL, so that a long-running fake does not grow without bound. A forgotten
// code answers 40029, as an expired one does.
func (s *Server) pruneLocked(now time.Time) {
	if now.Sub(s.lastPruned) < s.ttl {
		return
	}
	s.lastPruned = now
	for c, is := range s.codes {
		if !now.Before(is.expires) {
			delete(s.codes, c)
		}
	}
	for c, is := range s.phoneCodes {
		if !now.Before(is.expires) {
			delete(s.phoneCodes, c)
		}
	}
}

// InjectFault makes the next `times` jscode2session requests, whatever
// their code, get f (times < 0: every request until cleared). It overrides
// fault codes. InjectFault(FaultNone, 0) clears.
func (s *Server) InjectFault(f Fault, times int) { s.InjectFaultFor(apiCode2Session, f, times) }

// InjectFaultFor makes the next `times` requests to api get f (times < 0:
// every request until cleared); InjectFaultFor(api, FaultNone, 0) clears.
// api is one of "jscode2session", "stable_token", "token",
// "getuserphonenumber", "checksession", "resetusersessionkey",
// "getwxacodeunlimit"; any other name panics, as a typo in a test should.
func (s *Server) InjectFaultFor(api string, f Fault, times int) {
	mustAPI(api)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == FaultNone || times == 0 {
		delete(s.faults, api)
		return
	}
	s.faults[api] = injected{fault: f, left: times}
}

// Calls is how many jscode2session requests the fake received, whatever
// their outcome.
func (s *Server) Calls() int { return s.CallsTo(apiCode2Session) }

// CallsTo is how many requests to api (named as for InjectFaultFor) the
// fake received, whatever their outcome.
func (s *Server) CallsTo(api string) int {
	mustAPI(api)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[api]
}

func mustAPI(api string) {
	if !slices.Contains(apiNames, api) {
		panic(fmt.Sprintf("fakewechat: unknown api %q; want one of %s", api, strings.Join(apiNames, ", ")))
	}
}

// SessionKeyOf is openid's current session_key, the one data from the
// mini-program is encrypted with: from its latest exchange (jscode2session or
// resetusersessionkey) or, under RotateOnIssue, its latest wx.login; "" when
// it has none.
func (s *Server) SessionKeyOf(openid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionKeys[openid]
}

// Close releases requests held by FaultHang or FaultSlow; later such
// requests are not held. Close does not stop an http.Server serving s.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// OpenIDFor is the openid of the dev user name in the mini-program appid:
// deterministic, and shaped like a real one (28 characters starting "o").
func OpenIDFor(appid, name string) string {
	return hashID(appid + "/" + name)
}

// UnionIDFor is the unionid of the dev user name: deterministic and the same
// for every appid, as a unionid is across an Open Platform account's apps.
func UnionIDFor(name string) string {
	return hashID("unionid/" + name)
}

func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// takeFaultLocked returns the fault this request to api gets from
// InjectFaultFor, counting it down.
func (s *Server) takeFaultLocked(api string) Fault {
	in, ok := s.faults[api]
	if !ok {
		return FaultNone
	}
	if in.left > 0 {
		in.left--
		s.faults[api] = in
		if in.left == 0 {
			delete(s.faults, api)
		}
	}
	return in.fault
}

// answer is jscode2session's success.
type answer struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid,omitempty"`
}

// errorAnswer is what WeChat answers on an error.
type errorAnswer struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// errnoAnswer is an error some APIs answer in errno instead of errcode.
type errnoAnswer struct {
	Errno  int    `json:"errno"`
	Errmsg string `json:"errmsg"`
}

// reply is what the fake answers one request: a success (ok, marshalled as
// is) or, when errcode is not 0, an error (its errmsg gets ", rid: …").
type reply struct {
	ok      any
	errcode int
	errmsg  string
	attrs   []slog.Attr // what the fake's log shows of a success; never a secret
	errno   bool        // the error goes in errno, as getuserphonenumber's 1400001 may
	png     []byte      // a success that is an image, sent as image/png instead of ok
}

func fail(errcode int, errmsg string) reply { return reply{errcode: errcode, errmsg: errmsg} }

// faultReply is the answer of a fault WeChat itself gives (busy, rate
// limit, risky user), if f is one.
func faultReply(f Fault) (reply, bool) {
	switch f {
	case FaultBusy:
		return fail(-1, "system error"), true
	case FaultRateLimit:
		return fail(45011, "api minute-quota reach limit  mustslower  retry next minute"), true
	case FaultRiskyUser:
		return fail(40226, "invalid risky user"), true
	}
	return reply{}, false
}

// serve answers one request to api the way WeChat would, with the fault
// injected for api, else codeFault (from a fault code). work is what WeChat
// does; it sees the fault, to answer busy and the like where WeChat would.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, api string, codeFault Fault, work func(Fault) reply) {
	s.mu.Lock()
	s.calls[api]++
	fault := s.takeFaultLocked(api)
	s.mu.Unlock()
	if fault == FaultNone {
		fault = codeFault
	}
	rid := newRID()
	log := s.log.With(slog.String("api", api), slog.String("rid", rid))
	if fault != FaultNone {
		log = log.With(slog.String("fault", fault.String()))
	}

	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closed:
			t.Stop()
		}
	}

	// Faults of the network and the gateway come before WeChat looks at the request.
	switch fault {
	case FaultHTML502:
		log.Info("fake wechat answered", slog.Int("http_status", http.StatusBadGateway))
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
		return
	case FaultHang:
		log.Info("fake wechat hanging")
		select {
		case <-r.Context().Done():
		case <-s.closed:
			http.Error(w, "fake wechat closed", http.StatusServiceUnavailable)
		}
		return
	}

	// A slow WeChat has done the work before its answer is late: the code is spent
	// even when nobody is still listening, as it is with the real one.
	rep := work(fault)
	if fault == FaultSlow {
		t := time.NewTimer(s.slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			log.Info("fake wechat answered too late: the caller had gone")
			return
		case <-s.closed:
			t.Stop()
		}
	}
	var v any = rep.ok
	if rep.errcode != 0 {
		v = errorAnswer{Errcode: rep.errcode, Errmsg: rep.errmsg + ", rid: " + rid}
		if rep.errno {
			v = errnoAnswer{Errno: rep.errcode, Errmsg: rep.errmsg + ", rid: " + rid}
		}
		log.Info("fake wechat answered", slog.Int("errcode", rep.errcode))
	} else {
		log.LogAttrs(r.Context(), slog.LevelInfo, "fake wechat answered", rep.attrs...)
	}
	body, contentType := rep.png, "image/png"
	if rep.errcode != 0 || rep.png == nil {
		body, _ = json.Marshal(v)
		contentType = "application/json; encoding=utf-8"
	}
	if fault == FaultTruncatedJSON {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (s *Server) jscode2session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serve(w, r, apiCode2Session, faultCodes[q.Get("js_code")], func(fault Fault) reply {
		return s.exchange(q, fault)
	})
}

// readBody reads a POST's JSON into v, as far as it goes: WeChat answers
// 47001 to a body it cannot parse, which the caller checks with ok.
func readBody(r *http.Request, v any) (ok bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	return err == nil && json.Unmarshal(b, v) == nil
}

// exchange is code2Session proper: it checks the request and trades the
// code for the user's session_key: a new one, or the current one, as the
// SessionKeys mode has it.
func (s *Server) exchange(q map[string][]string, fault Fault) reply {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch {
	case get("appid") != s.appID:
		return fail(40013, "invalid appid")
	case get("secret") != s.secret:
		return fail(40125, "invalid appsecret")
	case get("grant_type") != "authorization_code":
		return fail(40002, "invalid grant_type")
	case get("js_code") == "":
		return fail(41008, "missing code")
	}
	if rep, ok := faultReply(fault); ok {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, issued := s.codes[get("js_code")]
	u, errRep := s.redeemLocked(get("js_code"))
	if errRep.errcode != 0 {
		return errRep
	}
	key := s.exchangeKeyLocked(u.OpenID, issued)
	return reply{
		ok:    answer{OpenID: u.OpenID, UnionID: u.UnionID, SessionKey: key},
		attrs: []slog.Attr{slog.String("openid", u.OpenID)},
	}
}

// redeemLocked resolves a code to its user, consuming it if it was issued.
func (s *Server) redeemLocked(code string) (User, reply) {
	if is, ok := s.codes[code]; ok {
		switch {
		case !s.now().Before(is.expires):
			return User{}, fail(40029, "invalid code")
		case is.used:
			return User{}, fail(40163, "code been used")
		}
		is.used = true
		return is.user, reply{}
	}
	if name, ok := strings.CutPrefix(code, "dev-"); ok && devName.MatchString(name) {
		return s.devUser(name), reply{}
	}
	if _, ok := faultCodes[code]; ok {
		// A fault code that answers normally (fault-slow, or an injected
		// fault overriding it) logs in as the dev user of that name.
		return s.devUser(code), reply{}
	}
	return User{}, fail(40029, "invalid code")
}

func (s *Server) devUser(name string) User {
	return User{OpenID: OpenIDFor(s.appID, name), UnionID: UnionIDFor(name)}
}

// wxLogin mints a code like wx.login: ?user=NAME for a dev user, or
// ?openid=X[&unionid=Y] for any user.
func (s *Server) wxLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var u User
	switch name, openid := q.Get("user"), q.Get("openid"); {
	case name != "" && openid != "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give either user or openid, not both"})
		return
	case name != "":
		if !devName.MatchString(name) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "user must match [a-z0-9_-]{1,32}"})
			return
		}
		u = s.devUser(name)
	case openid != "":
		u = User{OpenID: openid, UnionID: q.Get("unionid")}
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ?user=NAME or ?openid=X[&unionid=Y]"})
		return
	}
	code := s.IssueCode(u)
	s.log.Info("fake wx.login issued a code", slog.String("openid", u.OpenID))
	writeJSON(w, http.StatusOK, map[string]string{"code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

const codeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomCode is 32 random alphanumeric characters, the shape of a real code.
func randomCode() string {
	out := make([]byte, 0, 32)
	var buf [64]byte
	for len(out) < 32 {
		rand.Read(buf[:])
		for _, b := range buf {
			// 248 = 4·62: rejecting above it keeps every character equally likely.
			if b < 248 && len(out) < 32 {
				out = append(out, codeAlphabet[int(b)%len(codeAlphabet)])
			}
		}
	}
	return string(out)
}

// newSessionKey is a fresh key, base64 of 16 random bytes, as WeChat's.
func newSessionKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// newRID is a request id shaped like WeChat's, e.g. "6592a1b2-0f3c1a2b-5d6e7f80".
func newRID() string {
	var b [12]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:16] + "-" + h[16:]
}

var _ http.Handler = (*Server)(nil)
