// Package auth is login and sessions: a wx.login code becomes a user and a session, a
// bearer token becomes the session in the request's context, and logout revokes it.
package auth

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

const (
	// DefaultLoginTimeout bounds one login end to end, waiting included; the contract
	// promises an answer within 10 s whatever WeChat does, and the WeChat client's own
	// deadline is shorter. Clean-up after a failure gets cleanupGrace more.
	DefaultLoginTimeout = 9500 * time.Millisecond
	// LoginAnswerBound is when, at the latest, a login's answer leaves, failed or not:
	// inside the contract's 10 s.
	LoginAnswerBound = 9900 * time.Millisecond
	cleanupGrace     = 300 * time.Millisecond
	// lastSeenEvery limits writes of a session's last-seen time.
	lastSeenEvery = time.Minute
	// DefaultCodeWindow is how long a spent code logs its user in again: no longer than
	// the code's own life.
	DefaultCodeWindow = 5 * time.Minute
	// MaxLoginsPerCode is how many sessions one code opens, the first login included:
	// enough for a double tap and a retry after a lost answer (the SDK sends a code again
	// only after WECHAT_UNAVAILABLE, at most twice), few enough that a code someone else
	// saw is no reusable credential. Past it the code answers INVALID_CODE.
	MaxLoginsPerCode = 3
)

// Options are the Service's dependencies and policy.
type Options struct {
	DB *database.DB
	// Apps are the mini-programs logins may come from; the first is the default.
	Apps    []wxapp.App
	Keyring *seal.Keyring
	Policy  Policy
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	CodeWindow     time.Duration // default DefaultCodeWindow
	// SessionCacheTTL is how long a session looked up is remembered (at most
	// MaxSessionCacheTTL); 0 means DefaultSessionCacheTTL, below 0 no cache.
	SessionCacheTTL time.Duration
	LoginTimeout    time.Duration    // default DefaultLoginTimeout
	Now             func() time.Time // default time.Now
	Logger          *slog.Logger
	// DevCodes, in dev mode only, turns a reusable dev code (dev-alice) into a fresh
	// code of the built-in fake WeChat, so that a dev code logs in as a new wx.login
	// code does: isNewUser only the first time, and no bound on its reuse.
	DevCodes func(code string) string
}

// Policy is how sessions live and how logins are limited. Zero fields take the defaults.
type Policy struct {
	// SessionTTL is a session's absolute lifetime.
	SessionTTL time.Duration
	// IdleTimeout ends a session not used for this long.
	IdleTimeout time.Duration
	// MaxSessions is how many live sessions a user may have; a new login ends the least
	// recently used beyond it.
	MaxSessions int
	// LoginsPerMinute and LoginBurst limit logins per client address. LoginsPerMinute
	// below 0 switches the limit off.
	LoginsPerMinute int
	LoginBurst      int
	// AuditRetention is how long audit rows are kept.
	AuditRetention time.Duration
	// WebSessionTTL and WebIdleTimeout are SessionTTL and IdleTimeout for web sessions,
	// made by scanning the mini-program's code on a web page.
	WebSessionTTL  time.Duration
	WebIdleTimeout time.Duration
	// WebLoginTTL is how long a web login's code can be scanned and confirmed.
	WebLoginTTL time.Duration
	// WebLoginsPerMinute and WebLoginBurst limit the web logins a client address starts
	// (each fetches a mini-program code from WeChat); the instance as a whole starts at
	// most ten times as many.
	WebLoginsPerMinute int
	WebLoginBurst      int
	// WebLoginPage is the mini-program page a web login's code opens ("" is the home
	// page); WebLoginEnv the version: release, trial or develop.
	WebLoginPage string
	WebLoginEnv  string
}

// Policy defaults.
const (
	DefaultSessionTTL      = 30 * 24 * time.Hour
	DefaultIdleTimeout     = 7 * 24 * time.Hour
	DefaultMaxSessions     = 10
	DefaultLoginsPerMinute = 600
	DefaultLoginBurst      = 100
	DefaultAuditRetention  = 183 * 24 * time.Hour

	DefaultWebSessionTTL      = 12 * time.Hour
	DefaultWebIdleTimeout     = 2 * time.Hour
	DefaultWebLoginTTL        = 5 * time.Minute
	DefaultWebLoginsPerMinute = 10
	DefaultWebLoginBurst      = 5
	DefaultWebLoginPage       = "pages/weblogin/weblogin"
	// MaxWebLoginWatchers bounds the web logins one client address waits for at once,
	// over subscriptions, on an instance.
	MaxWebLoginWatchers = 20
)

func (p Policy) withDefaults() Policy {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&p.SessionTTL, DefaultSessionTTL)
	def(&p.IdleTimeout, DefaultIdleTimeout)
	def(&p.AuditRetention, DefaultAuditRetention)
	def(&p.WebSessionTTL, DefaultWebSessionTTL)
	def(&p.WebIdleTimeout, DefaultWebIdleTimeout)
	def(&p.WebLoginTTL, DefaultWebLoginTTL)
	if p.WebLoginsPerMinute <= 0 {
		p.WebLoginsPerMinute = DefaultWebLoginsPerMinute
	}
	if p.WebLoginBurst <= 0 {
		p.WebLoginBurst = DefaultWebLoginBurst
	}
	if p.WebLoginPage == "" {
		p.WebLoginPage = DefaultWebLoginPage
	}
	if p.MaxSessions <= 0 {
		p.MaxSessions = DefaultMaxSessions
	}
	if p.LoginsPerMinute == 0 {
		p.LoginsPerMinute = DefaultLoginsPerMinute
	}
	if p.LoginBurst <= 0 {
		p.LoginBurst = DefaultLoginBurst
	}
	return p
}

// Service logs people in and keeps their sessions.
type Service struct {
	db          *database.DB
	apps        wxapp.Set
	keyring     *seal.Keyring
	policy      Policy
	trusted     []netip.Prefix
	limiter     *limiter
	webLimiter  *ratelimit.Limiter // web logins started, per address
	webInstance *ratelimit.Limiter // and by the instance
	webWatchers counter            // web logins waited for, per address
	sessions    *sessionCache      // nil: every request reads its session
	known       *knownIdentities
	codeWindow  time.Duration
	devCodes    func(code string) string  // nil outside dev mode
	lookupQuery string                    // a session's, for the dialect (lookupQuery)
	codeClaims  claim.Machine[codeRecord] // the login codes' claims
	claims      *claims                   // their inserts, grouped when logins come together
	exists      *existence                // whether identities exist, asked together likewise
	// firstLogins and returningLogins: the logins that come together, each kind in a
	// transaction of its own (sendFirstLogins, sendReturningLogins).
	firstLogins, returningLogins batcher[groupLogin, groupLoggedIn]
	loginTimeout                 time.Duration
	now                          func() time.Time
	log                          *slog.Logger

	mu      sync.Mutex
	flights map[string]*flight // codes being exchanged by this instance, by hash
}

// flight is one code exchange in progress; requests with the same code wait for it.
type flight struct {
	done chan struct{}
	rec  codeRecord
	err  error
}

// codeRecord is what a code exchange established: who the code logs in, and the
// code's row, which counts its logins.
type codeRecord struct {
	id                 uuid.UUID
	userID, identityID uuid.UUID
	newUser            bool
}

// Client describes where a request comes from; it is stored with the session and the
// audit trail, and logged.
type Client struct {
	IP        string
	UserAgent string
}

// Bounds on what a Client keeps of a request: the columns' sizes. A User-Agent is the
// client's to choose, up to the server's header limit.
const (
	maxClientIP        = 64
	maxClientUserAgent = 512
)

// NewClient is the Client of a request from ip with that User-Agent, each clipped to
// what is stored and logged, and made valid UTF-8.
func NewClient(ip, userAgent string) Client {
	return Client{IP: clip(ip, maxClientIP), UserAgent: clip(userAgent, maxClientUserAgent)}
}

// Account is a user as seen through one of their WeChat identities.
type Account struct {
	User     *ent.User
	Identity *ent.Identity
}

// Login is the result of a successful login.
type Login struct {
	Token     string
	ExpiresAt time.Time
	Account   Account
	NewUser   bool
}

// Current is the session a request authenticated with.
type Current struct {
	Session *ent.Session
	Account Account
}

// New builds a Service.
func New(o Options) (*Service, error) {
	if o.DB == nil || len(o.Apps) == 0 || o.Keyring == nil {
		return nil, errors.New("auth: DB, Apps and Keyring are required")
	}
	s := &Service{
		db:           o.DB,
		apps:         wxapp.NewSet(o.Apps),
		keyring:      o.Keyring,
		policy:       o.Policy.withDefaults(),
		trusted:      o.TrustedProxies,
		codeWindow:   o.CodeWindow,
		devCodes:     o.DevCodes,
		loginTimeout: o.LoginTimeout,
		now:          o.Now,
		log:          o.Logger,
		flights:      make(map[string]*flight),
		known:        newKnownIdentities(),
	}
	if s.loginTimeout <= 0 {
		s.loginTimeout = DefaultLoginTimeout
	}
	s.limiter = newLimiter(s.policy.LoginsPerMinute, s.policy.LoginBurst)
	// One bucket per address, and the instance's own under "".
	s.webLimiter = ratelimit.New(s.policy.WebLoginsPerMinute, time.Minute, s.policy.WebLoginBurst)
	s.webInstance = ratelimit.New(10*s.policy.WebLoginsPerMinute, time.Minute, 10*s.policy.WebLoginBurst)
	s.webWatchers = counter{max: MaxWebLoginWatchers, n: map[string]int{}}
	switch {
	case o.SessionCacheTTL == 0:
		s.sessions = newSessionCache(DefaultSessionCacheTTL)
	case o.SessionCacheTTL > 0:
		s.sessions = newSessionCache(o.SessionCacheTTL)
	}
	if s.codeWindow <= 0 || s.codeWindow > DefaultCodeWindow {
		s.codeWindow = DefaultCodeWindow
	}
	s.codeClaims = claim.Machine[codeRecord]{Window: s.codeWindow, Refusals: refusals, Unknown: wechat.ErrUnexpected, Now: s.clock}
	s.claims = newClaims(s.db)
	s.lookupQuery = lookupQuery(s.db.Dialect)
	s.exists = newExistence(s.db)
	s.firstLogins = batcher[groupLogin, groupLoggedIn]{name: "first logins", max: maxBatch, send: s.sendFirstLogins}
	s.returningLogins = batcher[groupLogin, groupLoggedIn]{name: "returning logins", max: maxBatch, send: s.sendReturningLogins}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Forget makes this instance read the user's sessions afresh: call it after changing
// what a session shows of its user (a profile, a phone number).
func (s *Service) Forget(userID uuid.UUID) {
	s.sessions.forget(s.now(), []uuid.UUID{userID}, nil)
}

// clock is the current time as the database stores it: UTC, microseconds.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// AppIDs lists the served mini-programs' appids, the default first.
func (s *Service) AppIDs() []string { return s.apps.AppIDs() }

// SessionEnds is when a session ends unless it is used again: the sooner of its
// absolute end and its idle timeout.
func (s *Service) SessionEnds(sess *ent.Session) time.Time {
	idle := sess.LastSeenAt.Add(s.policy.IdleTimeout)
	if sess.Web {
		idle = sess.LastSeenAt.Add(s.policy.WebIdleTimeout)
	}
	if idle.Before(sess.ExpiresAt) {
		return idle
	}
	return sess.ExpiresAt
}

// IdentityBinding is the additional data a session_key is sealed with: it ties the
// sealed value to its identity, so a value copied to another row does not open.
func IdentityBinding(appid, openid string) []byte {
	return []byte(appid + "\x00" + openid)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clip shortens s to at most n bytes without splitting a character, and drops invalid
// UTF-8 that a strict MySQL column would refuse.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
