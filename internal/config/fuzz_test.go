// Fuzz target for the environment. Run it with:
//
//	go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 10m -parallel 1 ./internal/config
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package config_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/config"
)

// fuzzEnvs are environments as an operator writes them, one NAME=value a line; \n in a
// value is a newline.
var fuzzEnvs = []string{
	"",
	`WECHAT_APPID=wx0123456789abcdef
WECHAT_SECRET=s3cr3t-0f-the-app-do-not-leak-9f8e7d6c
WXLOGIN_SECRET_KEY=` + goodKey + `
WXLOGIN_OLD_SECRET_KEYS=AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, not-a-key
WXLOGIN_DATABASE_URL=mysql://wxlogin:p%40ss-w0rd@db.internal:3306/wxlogin?tls=true&readTimeout=2s
WXLOGIN_SESSION_TTL=720h
WXLOGIN_SESSION_IDLE_TIMEOUT=168h
WXLOGIN_MAX_SESSIONS=10
WXLOGIN_LOGIN_RATE_LIMIT=off
WXLOGIN_LOGIN_RATE_BURST=100
WXLOGIN_AUDIT_RETENTION=2160h
WXLOGIN_OPENDATA_MAX_AGE=1h
WXLOGIN_SHUTDOWN_GRACE=20s
WXLOGIN_HOUSEKEEPING_INTERVAL=1m
WXLOGIN_INTROSPECTION=off
WXLOGIN_SUGGESTIONS=false
WXLOGIN_PLAYGROUND=0
WXLOGIN_PERSISTED_QUERIES=allowlist
WXLOGIN_CORS_ORIGINS=https://admin.example.com, http://localhost:5173
WXLOGIN_TRUSTED_PROXIES=10.0.0.0/8, 192.168.1.7, ::1, fd00::/8
WXLOGIN_DEBUG_ADDR=127.0.0.1:6060
WXLOGIN_ADDR=:8080
WECHAT_API_BASE=https://api.weixin.qq.com/`,
	`WECHAT_APPS=wxaaaa:secret-a, wxbbbb:secret-b,wxaaaa:secret-c,broken,:x,y:
WXLOGIN_SECRET_KEY=` + goodKey + `
WXLOGIN_DATABASE_URL=sqlite://wxlogin.db`,
	`WECHAT_APPS=wxaaaa:s:with:colons
WECHAT_APPID=wxaaaa
WXLOGIN_SECRET_KEY=AAECAwQFBgcICQoLDA0ODw==
WXLOGIN_DATABASE_URL=mysql://root:hunter2@/wxlogin`,
	`WXLOGIN_INTROSPECTION_CLIENTS=orders:0123456789abcdef, pay:short,:nosecret,x y:0123456789abcdef,orders:again-0123456789
WXLOGIN_INTROSPECTION_RATE_LIMIT=off`,
	`WECHAT_SECRET=only-the-secret
WXLOGIN_SECRET_KEY=not base64!
WXLOGIN_DATABASE_URL=postgres://user:hunter2@db/x`,
	`WECHAT_APPID=wx1
WECHAT_SECRET=s
WECHAT_API_BASE=htps://proxy-user:hunter2@proxy.internal:8443`,
	`WECHAT_API_BASE=ftp://x
WXLOGIN_DATABASE_URL=mysql://user:hunter2@db:bad-port/x
WXLOGIN_SESSION_TTL=-1h
WXLOGIN_SESSION_IDLE_TIMEOUT=1
WXLOGIN_MAX_SESSIONS=0
WXLOGIN_LOGIN_RATE_LIMIT=99999999999999999999
WXLOGIN_LOGIN_RATE_BURST=-3
WXLOGIN_SHUTDOWN_GRACE=9999999999h
WXLOGIN_INTROSPECTION=maybe
WXLOGIN_PERSISTED_QUERIES=APQ
WXLOGIN_CORS_ORIGINS=*, https://a.example.com/path, https://u:p@b.example.com
WXLOGIN_TRUSTED_PROXIES=10.0.0.0/33, 300.1.1.1, fe80::1%eth0, ,`,
	"WXLOGIN_DATABASE_URL=mysql://user:pa%zzss@db/x\nWXLOGIN_SECRET_KEY=" + goodKey + "=",
	"WXLOGIN_DATABASE_URL= sqlite:// \nWXLOGIN_ADDR=\t",
	`WECHAT_APPS=wx\nnewline:s1,wx\nnewline:s2
WXLOGIN_TRUSTED_PROXIES=10.0.0.1\n10.0.0.2
WXLOGIN_DATABASE_URL=mysql://u:pw\n@db/x`,
}

// FuzzLoad: Load never panics, and gives a Config or an error listing problems, one a
// line. No secret shows in the error or the Config's log line: Load is run again with
// every secret (WXLOGIN_SECRET_KEY, WXLOGIN_OLD_SECRET_KEYS, WECHAT_SECRET, the secrets
// of WECHAT_APPS and WXLOGIN_INTROSPECTION_CLIENTS, a password in the database URL or in WECHAT_API_BASE) replaced by a
// twin of the same shape, and both runs must read the same, word for word.
func FuzzLoad(f *testing.F) {
	for _, e := range fuzzEnvs {
		f.Add(e)
	}

	f.Fuzz(func(t *testing.T, text string) {
		vars := map[string]string{}
		for line := range strings.SplitSeq(text, "\n") {
			name, value, _ := strings.Cut(line, "=")
			value = strings.ReplaceAll(value, `\n`, "\n") // a value may hold a newline
			// The manifest is a file to read: its parser has a target of its own.
			if name != "WXLOGIN_PERSISTED_QUERY_MANIFEST" {
				vars[name] = value
			}
		}
		twins := map[string]string{}
		for name, value := range vars {
			twins[name] = twinSecrets(name, value)
		}

		c, err := config.Load(env(vars))
		shown := loadOutput(c, err)
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatal("Load failed with an empty error")
		}
		if err != nil {
			if joined, ok := err.(interface{ Unwrap() []error }); !ok || len(joined.Unwrap()) != strings.Count(err.Error(), "\n")+1 {
				t.Fatalf("the error is not one problem a line: %q", err)
			}
		}
		tc, terr := config.Load(env(twins))
		if twin := loadOutput(tc, terr); twin != shown {
			t.Fatalf("what Load shows depends on a secret's value:\n%s\nwith twin secrets:\n%s", shown, twin)
		}
	})
}

// loadOutput is what an operator sees of a Load: its error, and the Config's log line.
func loadOutput(c config.Config, err error) string {
	var b bytes.Buffer
	if err != nil {
		b.WriteString(err.Error() + "\n")
	}
	// Without the time, so that two runs print the same.
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("config", "config", c)
	return b.String()
}

// twinSecrets returns the value of the variable name with every secret in it changed
// into a twin of the same shape.
func twinSecrets(name, value string) string {
	switch name {
	case "WXLOGIN_SECRET_KEY", "WXLOGIN_OLD_SECRET_KEYS", "WECHAT_SECRET", "WECHAT_PUSH_TOKEN", "WECHAT_PUSH_AES_KEY":
		return twin(value)
	case "WECHAT_APPS", "WXLOGIN_INTROSPECTION_CLIENTS": // id:secret, …
		entries := strings.Split(value, ",")
		for i, e := range entries {
			if id, secret, ok := strings.Cut(e, ":"); ok {
				entries[i] = id + ":" + twin(secret)
			}
		}
		return strings.Join(entries, ",")
	case "WXLOGIN_DATABASE_URL", "WECHAT_API_BASE":
		return twinPassword(value)
	}
	return value
}

// twinPassword changes the password of a URL, found the way url.Parse finds it: after
// "scheme://", before the first '/', '?' or '#', the userinfo ends at the last '@' and
// its password follows the first ':'.
func twinPassword(raw string) string {
	raw = strings.TrimSpace(raw) // as Load reads it
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !validScheme(scheme) {
		return raw
	}
	start := len(scheme) + len("://")
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 {
		return raw
	}
	return raw[:start+colon+1] + twin(authority[colon+1:at]) + raw[start+at:]
}

// validScheme is RFC 3986's scheme: a letter, then letters, digits, '+', '-' and '.'.
func validScheme(s string) bool {
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// twin changes every letter and digit of s into another of the same kind (and hex digits
// into hex digits), so that whatever parses s parses its twin the same way: base64 stays
// base64 of the same length, a %-escape stays one.
func twin(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		case c >= 'a' && c <= 'f':
			b[i] = 'a' + (c-'a'+1)%6
		case c >= 'A' && c <= 'F':
			b[i] = 'A' + (c-'A'+1)%6
		case c >= 'g' && c <= 'z':
			b[i] = 'g' + (c-'g'+1)%20
		case c >= 'G' && c <= 'Z':
			b[i] = 'G' + (c-'G'+1)%20
		}
	}
	return string(b)
}

// The twin's own test: a secret leak that the fuzz target must catch.
func TestTwinCatchesALeak(t *testing.T) {
	leaky := func(getenv func(string) string) string {
		return loadOutput(config.Config{}, errors.New("bad database URL "+getenv("WXLOGIN_DATABASE_URL")))
	}
	vars := map[string]string{"WXLOGIN_DATABASE_URL": "mysql://u:hunter2@db/x"}
	twins := map[string]string{"WXLOGIN_DATABASE_URL": twinSecrets("WXLOGIN_DATABASE_URL", vars["WXLOGIN_DATABASE_URL"])}
	if twins["WXLOGIN_DATABASE_URL"] == vars["WXLOGIN_DATABASE_URL"] || leaky(env(vars)) == leaky(env(twins)) {
		t.Fatalf("the twin of %q is %q: a leak would go unseen", vars["WXLOGIN_DATABASE_URL"], twins["WXLOGIN_DATABASE_URL"])
	}
}
