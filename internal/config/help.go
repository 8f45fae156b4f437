package config

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// setting is one environment variable, as --help shows it.
type setting struct{ name, def, meaning string }

// settings lists every variable Load reads. A test checks that none is missing.
var settings = []setting{
	{"WXLOGIN_ADDR", DefaultAddr, "listen address"},
	{"WXLOGIN_DATABASE_URL", DefaultDatabaseURL, "mysql://user:pass@host:port/dbname?params or sqlite://path"},
	{"WXLOGIN_SECRET_KEY", "dev mode: generated per run", "base64 of 32 random bytes; encrypts secrets at rest (head -c 32 /dev/urandom | base64)"},
	{"WXLOGIN_OLD_SECRET_KEYS", "none", "comma-separated earlier keys, still used to decrypt after a rotation"},
	{"WECHAT_APPID", "unset (dev mode)", "the mini-program's appid; with WECHAT_SECRET"},
	{"WECHAT_SECRET", "unset (dev mode)", "the mini-program's app secret"},
	{"WECHAT_APPS", "unset", "several mini-programs instead: appid:secret,appid:secret (the first is login's default)"},
	{"WECHAT_API_BASE", DefaultAPIBase, "base URL of the WeChat server API"},
	{"WECHAT_PUSH_TOKEN", "unset (no /wechat/events)", "the Token of the mini-program console's message push (消息推送), 3 to 32 letters or digits; with WECHAT_PUSH_AES_KEY"},
	{"WECHAT_PUSH_AES_KEY", "unset", "the console's EncodingAESKey (43 characters): pushes are taken in safe mode only"},
	{"WXLOGIN_SESSION_TTL", "720h", "a session's absolute lifetime"},
	{"WXLOGIN_SESSION_IDLE_TIMEOUT", "168h", "a session unused this long ends"},
	{"WXLOGIN_MAX_SESSIONS", "10", "live sessions per user; a login ends the least recently used beyond it"},
	{"WXLOGIN_SESSION_CACHE_TTL", "3s", "how long an instance answers for a session it looked up without reading it again (at most 4s; 0 turns it off)"},
	{"WXLOGIN_LOGIN_RATE_LIMIT", "600", "logins per minute per client address, per instance; off disables"},
	{"WXLOGIN_LOGIN_RATE_BURST", "100", "logins at once per client address"},
	{"WXLOGIN_TRUSTED_PROXIES", "none", "comma-separated IPs or CIDRs whose X-Forwarded-For is believed"},
	{"WXLOGIN_AUDIT_RETENTION", "4392h", "how long audit rows are kept (183 days: the Cybersecurity Law asks for at least six months of network logs)"},
	{"WXLOGIN_WEB_SESSION_TTL", "12h", "a web session's absolute lifetime (web login by scanning the mini-program's code)"},
	{"WXLOGIN_WEB_SESSION_IDLE_TIMEOUT", "2h", "a web session unused this long ends"},
	{"WXLOGIN_WEB_LOGIN_TTL", "5m", "how long a web login's code can be scanned and confirmed, 5s to 10m"},
	{"WXLOGIN_WEB_LOGIN_RATE_LIMIT", "10", "web logins started per minute per client address, per instance (5 at once)"},
	{"WXLOGIN_WEB_LOGIN_PAGE", "pages/weblogin/weblogin", "the mini-program page a web login's code opens"},
	{"WXLOGIN_WEB_LOGIN_ENV", "release", "the mini-program version the code opens: release, trial or develop"},
	{"WXLOGIN_AUTO_MIGRATE", "on", "on: start-up runs the migration files a MySQL database lacks; off: a database that is behind stops the start (run wxlogin migrate up)"},
	{"WXLOGIN_HOUSEKEEPING_INTERVAL", DefaultHousekeep.String(), "how often expired rows are purged"},
	{"WXLOGIN_OPS_ADDR", "none", "address of a separate listener for operators: /metrics moves there from the public listener; /healthz and /readyz are on both (e.g. 10.0.0.5:9100)"},
	{"WXLOGIN_DEBUG_ADDR", "none", "address of a separate listener serving Go's profiler at /debug/pprof/ (keep it private, e.g. 127.0.0.1:6060)"},
	{"WXLOGIN_OPENDATA_MAX_AGE", "1h", "how old a decrypted watermark may be"},
	{"WXLOGIN_SHUTDOWN_GRACE", DefaultShutdownGrace.String(), "how long in-flight requests get to finish on SIGTERM"},
	{"WXLOGIN_INTROSPECTION", "on in dev mode, else off", "GraphQL introspection (on/off)"},
	{"WXLOGIN_SUGGESTIONS", "on in dev mode, else off", `"Did you mean" hints in validation errors (on/off)`},
	{"WXLOGIN_PLAYGROUND", "on in dev mode, else off", "the GraphiQL playground at / (on/off)"},
	{"WXLOGIN_PERSISTED_QUERIES", "apq", "apq: any document, and known ones by hash; allowlist: only the manifest's documents; off: no hashes"},
	{"WXLOGIN_PERSISTED_QUERY_MANIFEST", "built in", "the allow-list: a persisted query manifest (Apollo's format); built in: clients/documents"},
	{"WXLOGIN_INTROSPECTION_CLIENTS", "none (no /oauth/introspect)", "services allowed RFC 7662 token introspection, by HTTP Basic: id:secret,id:secret (secrets of at least 16 bytes)"},
	{"WXLOGIN_INTROSPECTION_RATE_LIMIT", "6000", "introspection requests per minute per client, per instance; off disables"},
	{"WXLOGIN_INTROSPECTION_RATE_BURST", "200", "introspection requests at once per client"},
	{"WXLOGIN_CORS_ORIGINS", "none", "comma-separated browser origins allowed to call /graphql, such as https://admin.example.com"},
}

// Help writes every setting with its default and meaning.
func Help(w io.Writer) {
	fmt.Fprintln(w, "wxlogin: silent login for WeChat mini-programs, as a GraphQL back end.")
	fmt.Fprintln(w, "\nUsage:\n  wxlogin              serve (with WeChat unset: dev mode, SQLite and a built-in fake WeChat)\n  wxlogin fakewechat   run the fake WeChat on its own (-h for its flags)\n  wxlogin admin        operators' commands: user, revoke, block, unblock, delete (wxlogin admin for usage)\n  wxlogin migrate      status (what a MySQL database lacks) or up (run it)\n  wxlogin healthcheck  ask the local server's /healthz (for images without curl)\n  wxlogin --version    the version")
	fmt.Fprintln(w, "\nSettings, by environment:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  variable\tdefault\tmeaning")
	for _, s := range settings {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.name, s.def, s.meaning)
	}
	tw.Flush()
}
