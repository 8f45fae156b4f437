// Package config turns the environment into a validated Config. It is the only place
// that reads the environment.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/verify"
	"github.com/wxlogin/wxlogin/internal/wechatpush"
)

// Defaults for settings that are not set.
const (
	DefaultAddr        = ":8080"
	DefaultDatabaseURL = "sqlite://wxlogin.db"
	DefaultAPIBase     = "https://api.weixin.qq.com"
	DefaultHousekeep   = time.Minute
	// DefaultShutdownGrace is how long in-flight requests get to finish on SIGTERM.
	DefaultShutdownGrace = 20 * time.Second
)

// Config is wxlogin's validated configuration.
type Config struct {
	Addr        string
	DatabaseURL string

	// SecretKey encrypts secrets at rest (32 bytes). OldSecretKeys still decrypt what
	// earlier keys sealed, so that the key can be rotated.
	SecretKey     []byte
	OldSecretKeys [][]byte
	// SecretKeyGenerated is true when dev mode made up a key for this run.
	SecretKeyGenerated bool

	// DevMode is true when neither WECHAT_APPID nor WECHAT_SECRET is set: the server
	// runs an in-process fake WeChat.
	DevMode bool
	WeChat  WeChat

	Sessions Sessions
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// API is what the GraphQL endpoint offers beyond the API itself.
	API API
	// ShutdownGrace is how long in-flight requests get after SIGINT/SIGTERM.
	ShutdownGrace time.Duration
	// OpenDataMaxAge is how old a decrypted watermark may be.
	OpenDataMaxAge time.Duration
	// HousekeepingInterval is how often expired rows are purged.
	HousekeepingInterval time.Duration
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) on a listener of its
	// own, never on the public one.
	DebugAddr string
	// OpsAddr, when set, serves /metrics on a listener of its own, and no longer on the
	// public one; /healthz and /readyz are served on both.
	OpsAddr string
	// Introspection is who may call /oauth/introspect; no clients, no endpoint.
	Introspection Introspection
	// AutoMigrate runs the migration files a MySQL database lacks at start-up; off, a
	// database that is behind stops the start with a message naming wxlogin migrate up.
	AutoMigrate bool
}

// Introspection configures RFC 7662 token introspection.
type Introspection struct {
	Clients []verify.Client
	// PerMinute and Burst bound each client's requests; PerMinute -1: no limit.
	PerMinute, Burst int
}

// Introspection's defaults: per client, 6,000 a minute with bursts of 200, well above
// what a service checking each of its requests' tokens needs behind a session cache of
// its own, and far below what would let one client crowd out the logins.
const (
	DefaultIntrospectionPerMinute = 6000
	DefaultIntrospectionBurst     = 200
	// MinIntrospectionSecret is the shortest client secret taken: 16 bytes, such as
	// `openssl rand -hex 16` prints twice over.
	MinIntrospectionSecret = 16
)

// API holds the switches for exploring the API, on in dev mode and off outside it by
// default, and the browser origins allowed to call it.
type API struct {
	Introspection bool
	Suggestions   bool // "Did you mean …" in validation errors
	Playground    bool
	CORSOrigins   []string
	// PersistedQueries says which documents run: any (with automatic persisted
	// queries), only the manifest's (allow-list), or any sent whole (off).
	PersistedQueries persisted.Mode
	// Manifest is the allow-list's documents; nil means the built-in one, generated
	// from the client documents in the repository.
	Manifest *persisted.Manifest
}

// Sessions is the session and login policy; its defaults are auth's.
type Sessions struct {
	TTL             time.Duration // absolute lifetime
	IdleTimeout     time.Duration // ends a session unused this long
	MaxSessions     int           // live sessions per user
	LoginsPerMinute int           // per client address; -1: no limit
	LoginBurst      int
	AuditRetention  time.Duration
	// CacheTTL is how long an instance remembers a session it looked up; -1: never.
	CacheTTL time.Duration
	// Web logins (scanning the mini-program's code on a web page): the web sessions'
	// lifetimes, how long a code can be confirmed, the starts allowed per address, and
	// the mini-program page and version the code opens.
	WebTTL             time.Duration
	WebIdleTimeout     time.Duration
	WebLoginTTL        time.Duration
	WebLoginsPerMinute int
	WebLoginPage       string
	WebLoginEnv        string
}

// WeChat holds the mini-programs' credentials. Empty in dev mode.
type WeChat struct {
	// Apps are the mini-programs served; the first is login's default.
	Apps    []App
	APIBase string
	// PushToken and PushAESKey receive WeChat's message pushes (/wechat/events):
	// the token and the decoded EncodingAESKey of the admin console's 消息推送.
	// Both unset: the endpoints answer 404.
	PushToken  string
	PushAESKey []byte
}

// App is one mini-program's credentials.
type App struct {
	AppID  string
	Secret string
}

// AppIDs lists the apps' ids, for logs.
func (w WeChat) AppIDs() []string {
	ids := make([]string, len(w.Apps))
	for i, a := range w.Apps {
		ids[i] = a.AppID
	}
	return ids
}

// LogValue shows the configuration without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("database", RedactURL(c.DatabaseURL)),
		slog.Bool("dev_mode", c.DevMode),
		slog.Any("wechat_appids", c.WeChat.AppIDs()),
		slog.String("wechat_api_base", RedactURL(c.WeChat.APIBase)),
		slog.Duration("session_ttl", c.Sessions.TTL),
		slog.Duration("session_idle_timeout", c.Sessions.IdleTimeout),
		slog.Int("max_sessions", c.Sessions.MaxSessions),
		slog.Int("login_rate_limit", c.Sessions.LoginsPerMinute),
		slog.Int("login_rate_burst", c.Sessions.LoginBurst),
		slog.Duration("session_cache_ttl", c.Sessions.CacheTTL),
		slog.Duration("web_session_ttl", c.Sessions.WebTTL),
		slog.Duration("web_session_idle_timeout", c.Sessions.WebIdleTimeout),
		slog.Duration("web_login_ttl", c.Sessions.WebLoginTTL),
		slog.Int("web_login_rate_limit", c.Sessions.WebLoginsPerMinute),
		slog.String("web_login_page", c.Sessions.WebLoginPage),
		slog.String("web_login_env", c.Sessions.WebLoginEnv),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.String("debug_addr", c.DebugAddr),
		slog.String("ops_addr", c.OpsAddr),
		slog.Any("introspection_clients", c.Introspection.ids()),
		slog.Bool("wechat_push", c.WeChat.PushToken != ""),
	)
}

// ids lists the introspection clients' ids, for logs: never their secrets.
func (i Introspection) ids() []string {
	ids := make([]string, len(i.Clients))
	for n, c := range i.Clients {
		ids[n] = c.ID
	}
	return ids
}

// Load reads the configuration through getenv (os.Getenv in production). Every problem
// is reported, one per line, in the returned error.
func Load(getenv func(string) string) (Config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var problems []error
	c := Config{
		Addr:        env("WXLOGIN_ADDR", DefaultAddr),
		DatabaseURL: env("WXLOGIN_DATABASE_URL", DefaultDatabaseURL),
		WeChat:      WeChat{APIBase: env("WECHAT_API_BASE", "")},
	}
	appid, secret, list := env("WECHAT_APPID", ""), env("WECHAT_SECRET", ""), env("WECHAT_APPS", "")

	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		problems = append(problems, err)
	}

	switch {
	case list != "" && (appid != "" || secret != ""):
		problems = append(problems, errors.New("WECHAT_APPS and WECHAT_APPID/WECHAT_SECRET are both set; use one form"))
	case list != "":
		seen := map[string]bool{}
		for i, entry := range strings.Split(list, ",") {
			id, sec, ok := strings.Cut(strings.TrimSpace(entry), ":")
			switch {
			case !ok || id == "" || sec == "":
				problems = append(problems, fmt.Errorf("WECHAT_APPS entry %d is not appid:secret", i+1))
			case seen[id]:
				problems = append(problems, fmt.Errorf("WECHAT_APPS lists appid %q twice", id))
			default:
				seen[id] = true
				c.WeChat.Apps = append(c.WeChat.Apps, App{AppID: id, Secret: sec})
			}
		}
	case appid == "" && secret == "":
		c.DevMode = true
		if c.WeChat.APIBase != "" {
			problems = append(problems, errors.New("WECHAT_API_BASE is set but WECHAT_APPID and WECHAT_SECRET are not; dev mode always uses the built-in fake WeChat"))
		}
	case appid == "":
		problems = append(problems, errors.New("WECHAT_SECRET is set but WECHAT_APPID is not; set both, or neither for dev mode"))
	case secret == "":
		problems = append(problems, errors.New("WECHAT_APPID is set but WECHAT_SECRET is not; set both, or neither for dev mode"))
	default:
		c.WeChat.Apps = []App{{AppID: appid, Secret: secret}}
	}
	if !c.DevMode {
		if c.WeChat.APIBase == "" {
			c.WeChat.APIBase = DefaultAPIBase
		}
		if u, err := url.Parse(c.WeChat.APIBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			// Redacted: a proxy's URL may carry a password.
			problems = append(problems, fmt.Errorf("WECHAT_API_BASE %q is not an http(s) URL", RedactURL(c.WeChat.APIBase)))
		}
	}

	switch raw := env("WXLOGIN_SECRET_KEY", ""); {
	case raw != "":
		key, err := ParseKey(raw)
		if err != nil {
			problems = append(problems, fmt.Errorf("WXLOGIN_SECRET_KEY: %w", err))
		}
		c.SecretKey = key
	case c.DevMode:
		c.SecretKey = make([]byte, 32)
		rand.Read(c.SecretKey)
		c.SecretKeyGenerated = true
	default:
		problems = append(problems, errors.New("WXLOGIN_SECRET_KEY is required outside dev mode; make one with: head -c 32 /dev/urandom | base64"))
	}
	if raw := env("WXLOGIN_OLD_SECRET_KEYS", ""); raw != "" {
		for i, part := range strings.Split(raw, ",") {
			key, err := ParseKey(strings.TrimSpace(part))
			if err != nil {
				problems = append(problems, fmt.Errorf("WXLOGIN_OLD_SECRET_KEYS, key %d: %w", i+1, err))
				continue
			}
			c.OldSecretKeys = append(c.OldSecretKeys, key)
		}
	}

	duration := func(name string, def, least time.Duration) time.Duration {
		raw := env(name, "")
		if raw == "" {
			return def
		}
		d, err := time.ParseDuration(raw)
		if err != nil || d < least {
			problems = append(problems, fmt.Errorf("%s %q must be a duration of at least %s, such as %s", name, raw, least, def))
			return def
		}
		return d
	}
	integer := func(name string, def, least int) int {
		raw := env(name, "")
		if raw == "" {
			return def
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < least {
			problems = append(problems, fmt.Errorf("%s %q must be a whole number of at least %d", name, raw, least))
			return def
		}
		return n
	}
	c.Sessions = Sessions{
		TTL:            duration("WXLOGIN_SESSION_TTL", auth.DefaultSessionTTL, time.Minute),
		IdleTimeout:    duration("WXLOGIN_SESSION_IDLE_TIMEOUT", auth.DefaultIdleTimeout, 2*time.Minute),
		MaxSessions:    integer("WXLOGIN_MAX_SESSIONS", auth.DefaultMaxSessions, 1),
		LoginBurst:     integer("WXLOGIN_LOGIN_RATE_BURST", auth.DefaultLoginBurst, 1),
		AuditRetention: duration("WXLOGIN_AUDIT_RETENTION", auth.DefaultAuditRetention, time.Hour),

		WebTTL:             duration("WXLOGIN_WEB_SESSION_TTL", auth.DefaultWebSessionTTL, time.Minute),
		WebIdleTimeout:     duration("WXLOGIN_WEB_SESSION_IDLE_TIMEOUT", auth.DefaultWebIdleTimeout, 2*time.Minute),
		WebLoginTTL:        duration("WXLOGIN_WEB_LOGIN_TTL", auth.DefaultWebLoginTTL, 5*time.Second),
		WebLoginsPerMinute: integer("WXLOGIN_WEB_LOGIN_RATE_LIMIT", auth.DefaultWebLoginsPerMinute, 1),
		WebLoginPage:       env("WXLOGIN_WEB_LOGIN_PAGE", auth.DefaultWebLoginPage),
		WebLoginEnv:        env("WXLOGIN_WEB_LOGIN_ENV", "release"),
	}
	if c.Sessions.WebLoginTTL > 10*time.Minute {
		problems = append(problems, fmt.Errorf("WXLOGIN_WEB_LOGIN_TTL %s must be at most 10m: a code on a screen is for minutes", c.Sessions.WebLoginTTL))
	}
	switch c.Sessions.WebLoginEnv {
	case "release", "trial", "develop":
	default:
		problems = append(problems, fmt.Errorf("WXLOGIN_WEB_LOGIN_ENV %q must be release, trial or develop", c.Sessions.WebLoginEnv))
	}
	if p := c.Sessions.WebLoginPage; strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") {
		problems = append(problems, fmt.Errorf("WXLOGIN_WEB_LOGIN_PAGE %q must be a page as app.json names it, such as %s: no leading slash, no query", p, auth.DefaultWebLoginPage))
	}
	if raw := env("WXLOGIN_LOGIN_RATE_LIMIT", ""); raw == "off" || raw == "0" {
		c.Sessions.LoginsPerMinute = -1
	} else {
		c.Sessions.LoginsPerMinute = integer("WXLOGIN_LOGIN_RATE_LIMIT", auth.DefaultLoginsPerMinute, 1)
	}
	switch raw := env("WXLOGIN_SESSION_CACHE_TTL", ""); raw {
	case "", "off", "0", "0s":
		if raw != "" {
			c.Sessions.CacheTTL = -1
		} else {
			c.Sessions.CacheTTL = auth.DefaultSessionCacheTTL
		}
	default:
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || d > auth.MaxSessionCacheTTL {
			problems = append(problems, fmt.Errorf("WXLOGIN_SESSION_CACHE_TTL %q: use a duration from 0 (off) to %s, such as 3s: a logout must reach every instance within 5 s", raw, auth.MaxSessionCacheTTL))
		}
		c.Sessions.CacheTTL = d
		if d == 0 {
			c.Sessions.CacheTTL = -1 // 0ms, 0m…: off, as 0 is
		}
	}
	c.OpenDataMaxAge = duration("WXLOGIN_OPENDATA_MAX_AGE", time.Hour, time.Minute)
	c.ShutdownGrace = duration("WXLOGIN_SHUTDOWN_GRACE", DefaultShutdownGrace, 0)
	toggle := func(name string) bool {
		switch raw := strings.ToLower(env(name, "")); raw {
		case "":
			return c.DevMode
		case "on", "true", "1":
			return true
		case "off", "false", "0":
			return false
		default:
			problems = append(problems, fmt.Errorf("%s %q must be on or off", name, raw))
			return c.DevMode
		}
	}
	c.API = API{
		Introspection: toggle("WXLOGIN_INTROSPECTION"),
		Suggestions:   toggle("WXLOGIN_SUGGESTIONS"),
		Playground:    toggle("WXLOGIN_PLAYGROUND"),
	}
	if mode, err := persisted.ParseMode(strings.ToLower(env("WXLOGIN_PERSISTED_QUERIES", string(persisted.Automatic)))); err != nil {
		problems = append(problems, fmt.Errorf("WXLOGIN_PERSISTED_QUERIES %s", err))
	} else {
		c.API.PersistedQueries = mode
	}
	if path := env("WXLOGIN_PERSISTED_QUERY_MANIFEST", ""); path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			c.API.Manifest, err = persisted.ParseManifest(b)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("WXLOGIN_PERSISTED_QUERY_MANIFEST: %w", err))
		}
	}
	if raw := env("WXLOGIN_CORS_ORIGINS", ""); raw != "" {
		for _, origin := range strings.Split(raw, ",") {
			origin = strings.TrimSpace(origin)
			u, err := url.Parse(origin)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				problems = append(problems, fmt.Errorf("WXLOGIN_CORS_ORIGINS: %q is not an origin such as https://admin.example.com (no path, no wildcard)", origin))
				continue
			}
			c.API.CORSOrigins = append(c.API.CORSOrigins, strings.ToLower(origin))
		}
	}
	c.HousekeepingInterval = duration("WXLOGIN_HOUSEKEEPING_INTERVAL", DefaultHousekeep, time.Second)
	c.DebugAddr = env("WXLOGIN_DEBUG_ADDR", "")
	c.OpsAddr = env("WXLOGIN_OPS_ADDR", "")
	if raw := env("WXLOGIN_TRUSTED_PROXIES", ""); raw != "" {
		for _, part := range strings.Split(raw, ",") {
			part = strings.TrimSpace(part)
			p, err := netip.ParsePrefix(part)
			if err != nil {
				var a netip.Addr
				if a, err = netip.ParseAddr(part); err == nil {
					p = netip.PrefixFrom(a, a.BitLen())
				}
			}
			if err != nil {
				problems = append(problems, fmt.Errorf("WXLOGIN_TRUSTED_PROXIES: %q is not an IP address or CIDR range", part))
				continue
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
	}
	switch token, key := env("WECHAT_PUSH_TOKEN", ""), env("WECHAT_PUSH_AES_KEY", ""); {
	case token == "" && key == "":
	case token == "" || key == "":
		problems = append(problems, errors.New("WECHAT_PUSH_TOKEN and WECHAT_PUSH_AES_KEY go together: wxlogin takes WeChat's pushes in safe mode only (plaintext mode's signature does not cover the message)"))
	case len(token) < 3 || len(token) > 32 || strings.Trim(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "":
		problems = append(problems, errors.New("WECHAT_PUSH_TOKEN must be 3 to 32 letters or digits, as the WeChat console takes"))
	default:
		aes, err := wechatpush.ParseAESKey(key)
		if err != nil {
			problems = append(problems, fmt.Errorf("WECHAT_PUSH_AES_KEY: %v (the console's EncodingAESKey)", err))
		}
		c.WeChat.PushToken, c.WeChat.PushAESKey = token, aes
	}
	switch raw := strings.ToLower(env("WXLOGIN_AUTO_MIGRATE", "on")); raw {
	case "on", "true", "1":
		c.AutoMigrate = true
	case "off", "false", "0":
	default:
		problems = append(problems, fmt.Errorf("WXLOGIN_AUTO_MIGRATE %q must be on or off", raw))
	}
	c.Introspection = Introspection{Burst: integer("WXLOGIN_INTROSPECTION_RATE_BURST", DefaultIntrospectionBurst, 1)}
	if raw := env("WXLOGIN_INTROSPECTION_RATE_LIMIT", ""); raw == "off" || raw == "0" {
		c.Introspection.PerMinute = -1
	} else {
		c.Introspection.PerMinute = integer("WXLOGIN_INTROSPECTION_RATE_LIMIT", DefaultIntrospectionPerMinute, 1)
	}
	if raw := env("WXLOGIN_INTROSPECTION_CLIENTS", ""); raw != "" {
		seen := map[string]bool{}
		for n, part := range strings.Split(raw, ",") {
			// The problems name a client by its place and id, never by its secret.
			id, secret, ok := strings.Cut(strings.TrimSpace(part), ":")
			switch {
			case !ok || id == "":
				problems = append(problems, fmt.Errorf("WXLOGIN_INTROSPECTION_CLIENTS: client %d is not id:secret", n+1))
			case !validClientID(id):
				problems = append(problems, fmt.Errorf("WXLOGIN_INTROSPECTION_CLIENTS: client %d's id must be letters, digits, '.', '_' or '-', at most 64 of them", n+1))
			case seen[id]:
				problems = append(problems, fmt.Errorf("WXLOGIN_INTROSPECTION_CLIENTS: the client %q is listed twice", id))
			case len(secret) < MinIntrospectionSecret:
				problems = append(problems, fmt.Errorf("WXLOGIN_INTROSPECTION_CLIENTS: the client %q's secret is shorter than %d bytes: make one with `openssl rand -hex 16`", id, MinIntrospectionSecret))
			default:
				seen[id] = true
				c.Introspection.Clients = append(c.Introspection.Clients, verify.Client{ID: id, Secret: secret})
			}
		}
	}

	return c, errors.Join(problems...)
}

// validClientID says whether an introspection client id is short and plain enough to
// appear in a log line and a metric as it is.
func validClientID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '.' || r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("must be 32 bytes, got %d; make one with: head -c 32 /dev/urandom | base64", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("is not base64; make one with: head -c 32 /dev/urandom | base64")
}

func checkDatabaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("WXLOGIN_DATABASE_URL is not a URL: use mysql://user:pass@host:port/dbname or sqlite://path")
	}
	switch u.Scheme {
	case "sqlite":
		if u.Host+u.Path == "" {
			return errors.New("WXLOGIN_DATABASE_URL: sqlite:// needs a file path, such as sqlite://wxlogin.db")
		}
	case "mysql":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return errors.New("WXLOGIN_DATABASE_URL: mysql:// needs a host and a database name, such as mysql://user:pass@127.0.0.1:3306/wxlogin")
		}
		// The parameters the URL may carry are the database package's to decide; its
		// refusal is reported here with the others, naming the setting.
		if _, _, _, err := database.DSN(raw); err != nil {
			return fmt.Errorf("WXLOGIN_DATABASE_URL: %s", strings.TrimPrefix(err.Error(), "database: "))
		}
	default:
		return fmt.Errorf("WXLOGIN_DATABASE_URL scheme %q is not supported: use mysql:// or sqlite://", u.Scheme)
	}
	return nil
}

// RedactURL hides the password of a URL (the database's, WeChat's API base).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}
