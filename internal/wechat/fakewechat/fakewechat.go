// Package fakewechat is a fake of WeChat's server API, served over real HTTP
// the way WeChat answers (HTTP 200, JSON errcode/errmsg, errmsg ending in
// ", rid: …"). It backs dev mode, the tests, and client teams who need codes
// without a phone: codes are minted with IssueCode or GET /fake/wx.login, and
// faults (busy, rate limit, slow, gateway errors…) can be injected.
package fakewechat

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a Server.
type Options struct {
	AppID, Secret string           // required
	CodeTTL       time.Duration    // how long an issued code is valid; default 5 minutes
	Now           func() time.Time // default time.Now (tests move the clock)
	SlowDelay     time.Duration    // delay for FaultSlow; default 1500ms
	Logger        *slog.Logger     // optional; default discards
}

// User is who a code logs in as. UnionID "" means the mini-program is not
// bound to an Open Platform account, and WeChat sends no unionid.
type User struct{ OpenID, UnionID string }

// Fault is a misbehaviour of WeChat the fake can put on.
type Fault int

const (
	FaultNone          Fault = iota
	FaultBusy                // errcode -1 "system error"; the code is not consumed
	FaultRateLimit           // errcode 45011
	FaultRiskyUser           // errcode 40226
	FaultSlow                // exchanges the code, then waits SlowDelay (or until the request ends) to answer
	FaultHTML502             // HTTP 502 with an HTML body, like a gateway error page
	FaultTruncatedJSON       // HTTP 200, the answer's JSON cut in half
	FaultHang                // no answer until the request ends or the Server is closed
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
	now           func() time.Time
	slow          time.Duration
	log           *slog.Logger
	mux           *http.ServeMux

	mu         sync.Mutex
	codes      map[string]*issued
	fault      Fault
	faultLeft  int // requests left to get fault; < 0: until cleared
	calls      int
	closed     chan struct{}
	closeOnce  sync.Once
	lastPruned time.Time
}

type issued struct {
	user    User
	expires time.Time
	used    bool
}

// New returns a fake WeChat for one mini-program. It panics when AppID or
// Secret is empty: that is a programming error, not a runtime condition.
func New(opts Options) *Server {
	if opts.AppID == "" || opts.Secret == "" {
		panic("fakewechat: Options.AppID and Options.Secret are required")
	}
	s := &Server{
		appID:  opts.AppID,
		secret: opts.Secret,
		ttl:    opts.CodeTTL,
		now:    opts.Now,
		slow:   opts.SlowDelay,
		log:    opts.Logger,
		codes:  make(map[string]*issued),
		closed: make(chan struct{}),
	}
	if s.ttl <= 0 {
		s.ttl = 5 * time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.slow <= 0 {
		s.slow = 1500 * time.Millisecond
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /sns/jscode2session", s.jscode2session)
	s.mux.HandleFunc("GET /fake/wx.login", s.wxLogin)
	return s
}

// ServeHTTP serves /sns/jscode2session and /fake/wx.login.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AppID is the fake mini-program's appid.
func (s *Server) AppID() string { return s.appID }

// Secret is the fake mini-program's app secret.
func (s *Server) Secret() string { return s.secret }

// IssueCode does what wx.login does on the phone: it returns a fresh random
// code for u, valid once, for CodeTTL.
func (s *Server) IssueCode(u User) string {
	code := randomCode()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	s.codes[code] = &issued{user: u, expires: now.Add(s.ttl)}
	return code
}

// pruneLocked forgets expired codes, at most once per TTL, so that a
// long-running fake does not grow without bound. A forgotten code answers
// 40029, as an expired one does.
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
}

// InjectFault makes the next `times` jscode2session requests, whatever
// their code, get f (times < 0: every request until cleared). It overrides
// fault codes. InjectFault(FaultNone, 0) clears.
func (s *Server) InjectFault(f Fault, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultLeft = f, times
	if f == FaultNone || times == 0 {
		s.fault, s.faultLeft = FaultNone, 0
	}
}

// Calls is how many jscode2session requests the fake received, whatever
// their outcome.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
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

// takeFaultLocked returns the fault this request gets from InjectFault,
// counting it down.
func (s *Server) takeFaultLocked() Fault {
	if s.fault == FaultNone || s.faultLeft == 0 {
		return FaultNone
	}
	f := s.fault
	if s.faultLeft > 0 {
		s.faultLeft--
		if s.faultLeft == 0 {
			s.fault = FaultNone
		}
	}
	return f
}

type answer struct {
	OpenID     string `json:"openid,omitempty"`
	SessionKey string `json:"session_key,omitempty"`
	UnionID    string `json:"unionid,omitempty"`
	Errcode    int    `json:"errcode,omitempty"`
	Errmsg     string `json:"errmsg,omitempty"`
}

func (s *Server) jscode2session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := q.Get("js_code")

	s.mu.Lock()
	s.calls++
	fault := s.takeFaultLocked()
	s.mu.Unlock()
	if fault == FaultNone {
		fault = faultCodes[code]
	}
	rid := newRID()
	log := s.log.With(slog.String("api", "jscode2session"), slog.String("rid", rid))
	if fault != FaultNone {
		log = log.With(slog.String("fault", fault.String()))
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
	ans := s.exchange(q, fault)
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
	if ans.Errcode != 0 {
		ans.Errmsg += ", rid: " + rid
		log.Info("fake wechat answered", slog.Int("errcode", ans.Errcode))
	} else {
		log.Info("fake wechat answered", slog.String("openid", ans.OpenID))
	}
	body, _ := json.Marshal(ans)
	if fault == FaultTruncatedJSON {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// exchange is code2Session proper: it checks the request and trades the code.
func (s *Server) exchange(q map[string][]string, fault Fault) answer {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch {
	case get("appid") != s.appID:
		return answer{Errcode: 40013, Errmsg: "invalid appid"}
	case get("secret") != s.secret:
		return answer{Errcode: 40125, Errmsg: "invalid appsecret"}
	case get("grant_type") != "authorization_code":
		return answer{Errcode: 40002, Errmsg: "invalid grant_type"}
	case get("js_code") == "":
		return answer{Errcode: 41008, Errmsg: "missing code"}
	}
	switch fault {
	case FaultBusy:
		return answer{Errcode: -1, Errmsg: "system error"}
	case FaultRateLimit:
		return answer{Errcode: 45011, Errmsg: "api minute-quota reach limit  mustslower  retry next minute"}
	case FaultRiskyUser:
		return answer{Errcode: 40226, Errmsg: "invalid risky user"}
	}
	u, errAns := s.redeem(get("js_code"))
	if errAns.Errcode != 0 {
		return errAns
	}
	return answer{OpenID: u.OpenID, UnionID: u.UnionID, SessionKey: newSessionKey()}
}

// redeem resolves a code to its user, consuming it if it was issued.
func (s *Server) redeem(code string) (User, answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if is, ok := s.codes[code]; ok {
		switch {
		case !s.now().Before(is.expires):
			return User{}, answer{Errcode: 40029, Errmsg: "invalid code"}
		case is.used:
			return User{}, answer{Errcode: 40163, Errmsg: "code been used"}
		}
		is.used = true
		return is.user, answer{}
	}
	if name, ok := strings.CutPrefix(code, "dev-"); ok && devName.MatchString(name) {
		return s.devUser(name), answer{}
	}
	if _, ok := faultCodes[code]; ok {
		// A fault code that answers normally (fault-slow, or an injected
		// fault overriding it) logs in as the dev user of that name.
		return s.devUser(code), answer{}
	}
	return User{}, answer{Errcode: 40029, Errmsg: "invalid code"}
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
