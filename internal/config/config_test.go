package config_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/config"
)

const goodKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDevModeDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.DevMode || c.Addr != ":8080" || c.DatabaseURL != "sqlite://wxlogin.db" || len(c.SecretKey) != 32 || !c.SecretKeyGenerated || c.Sessions.TTL != 30*24*time.Hour || c.Sessions.IdleTimeout != 7*24*time.Hour || c.Sessions.MaxSessions != 10 || c.Sessions.LoginsPerMinute != 600 || c.Sessions.LoginBurst != 100 || c.Sessions.AuditRetention != 183*24*time.Hour || c.TrustedProxies != nil {
		t.Errorf("defaults = %+v", c)
	}
}

func TestProductionConfig(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"WECHAT_APPID": "wx123", "WECHAT_SECRET": "s3cr3t", "WXLOGIN_SECRET_KEY": goodKey,
		"WXLOGIN_DATABASE_URL": "mysql://u:p@db:3306/wxlogin", "WXLOGIN_SESSION_TTL": "48h",
		"WXLOGIN_SESSION_IDLE_TIMEOUT": "2h", "WXLOGIN_MAX_SESSIONS": "3", "WXLOGIN_LOGIN_RATE_LIMIT": "off",
		"WXLOGIN_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "WXLOGIN_AUDIT_RETENTION": "24h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DevMode || c.WeChat.APIBase != "https://api.weixin.qq.com" || c.Sessions.TTL != 48*time.Hour || c.SecretKeyGenerated ||
		c.Sessions.IdleTimeout != 2*time.Hour || c.Sessions.MaxSessions != 3 || c.Sessions.LoginsPerMinute != -1 ||
		c.Sessions.AuditRetention != 24*time.Hour || fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 192.168.1.7/32]" {
		t.Errorf("config = %+v", c)
	}
}

func TestStartupErrors(t *testing.T) {
	cases := map[string]struct {
		vars map[string]string
		want []string // every one must appear in the error
	}{
		"appid without secret":                  {map[string]string{"WECHAT_APPID": "wx1"}, []string{"WECHAT_SECRET is not"}},
		"secret without appid":                  {map[string]string{"WECHAT_SECRET": "s"}, []string{"WECHAT_APPID is not"}},
		"no key outside dev":                    {map[string]string{"WECHAT_APPID": "wx1", "WECHAT_SECRET": "s"}, []string{"WXLOGIN_SECRET_KEY is required"}},
		"malformed key":                         {map[string]string{"WXLOGIN_SECRET_KEY": "not base64!"}, []string{"WXLOGIN_SECRET_KEY: is not base64"}},
		"short key":                             {map[string]string{"WXLOGIN_SECRET_KEY": "AAECAwQFBgcICQoLDA0ODw=="}, []string{"must be 32 bytes, got 16"}},
		"unknown database":                      {map[string]string{"WXLOGIN_DATABASE_URL": "postgres://x/y"}, []string{`scheme "postgres" is not supported`}},
		"mysql without database":                {map[string]string{"WXLOGIN_DATABASE_URL": "mysql://root@127.0.0.1:3306/"}, []string{"needs a host and a database name"}},
		"mysql character set":                   {map[string]string{"WXLOGIN_DATABASE_URL": "mysql://root@127.0.0.1:3306/wxlogin?character_set_client=gbk"}, []string{`WXLOGIN_DATABASE_URL: the URL parameter "character_set_client" is not accepted`, "accepted: allowCleartextPasswords"}},
		"api base in dev mode":                  {map[string]string{"WECHAT_API_BASE": "http://127.0.0.1:9090"}, []string{"WECHAT_API_BASE is set"}},
		"bad ttl":                               {map[string]string{"WXLOGIN_SESSION_TTL": "soon"}, []string{"WXLOGIN_SESSION_TTL"}},
		"bad idle timeout":                      {map[string]string{"WXLOGIN_SESSION_IDLE_TIMEOUT": "1s"}, []string{"WXLOGIN_SESSION_IDLE_TIMEOUT"}},
		"bad max sessions":                      {map[string]string{"WXLOGIN_MAX_SESSIONS": "0"}, []string{"WXLOGIN_MAX_SESSIONS"}},
		"bad rate":                              {map[string]string{"WXLOGIN_LOGIN_RATE_LIMIT": "lots"}, []string{"WXLOGIN_LOGIN_RATE_LIMIT"}},
		"bad proxy":                             {map[string]string{"WXLOGIN_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, []string{`"proxy.local" is not an IP`}},
		"both forms of apps":                    {map[string]string{"WECHAT_APPS": "wx1:s1", "WECHAT_APPID": "wx2"}, []string{"use one form"}},
		"bad apps entry":                        {map[string]string{"WECHAT_APPS": "wx1:s1,wx2", "WXLOGIN_SECRET_KEY": goodKey}, []string{"entry 2 is not appid:secret"}},
		"duplicate app":                         {map[string]string{"WECHAT_APPS": "wx1:s1,wx1:s2", "WXLOGIN_SECRET_KEY": goodKey}, []string{`lists appid "wx1" twice`}},
		"introspection client without a secret": {map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "orders"}, []string{"client 1 is not id:secret"}},
		"introspection secret too short":        {map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "orders:0123456789abcdef,pay:short"}, []string{`the client "pay"'s secret is shorter than 16 bytes`}},
		"introspection client twice":            {map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "a:0123456789abcdef,a:fedcba9876543210"}, []string{`the client "a" is listed twice`}},
		"introspection client id":               {map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "a b:0123456789abcdef"}, []string{"client 1's id must be"}},
		"every problem at once": {map[string]string{"WECHAT_APPID": "wx1", "WXLOGIN_DATABASE_URL": "redis://x"}, []string{
			"WECHAT_SECRET is not", "redis", "WXLOGIN_SECRET_KEY is required",
		}},
	}
	for name, tc := range cases {
		_, err := config.Load(env(tc.vars))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, err, w)
			}
		}
	}
}

func TestSecretsStayOutOfTheLogValue(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"WECHAT_APPID": "wx123", "WECHAT_SECRET": "app-secret-value", "WXLOGIN_SECRET_KEY": goodKey,
		"WXLOGIN_DATABASE_URL": "mysql://user:db-password@db:3306/wxlogin",
	}))
	if err != nil {
		t.Fatal(err)
	}
	shown := c.LogValue().String()
	for _, secret := range []string{"app-secret-value", "db-password", goodKey} {
		if strings.Contains(shown, secret) {
			t.Errorf("log value %q shows %q", shown, secret)
		}
	}
	if !strings.Contains(shown, "wx123") || strings.Contains(shown, "app-secret-value") {
		t.Errorf("log value %q lacks the appid", shown)
	}
}

// TestIntrospectionClients: the clients are id:secret pairs, a secret may hold colons,
// and neither a good nor a refused secret is ever shown.
func TestIntrospectionClients(t *testing.T) {
	c, err := config.Load(env(map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "orders:0123456789abcdef, pay:a:b:c:d:e:f:g:h:i", "WXLOGIN_INTROSPECTION_RATE_LIMIT": "60"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Introspection.Clients) != 2 || c.Introspection.Clients[1].ID != "pay" || c.Introspection.Clients[1].Secret != "a:b:c:d:e:f:g:h:i" ||
		c.Introspection.PerMinute != 60 || c.Introspection.Burst != config.DefaultIntrospectionBurst {
		t.Errorf("introspection = %+v", c.Introspection)
	}
	if shown := c.LogValue().String(); strings.Contains(shown, "0123456789abcdef") || !strings.Contains(shown, "orders") {
		t.Errorf("log value %q shows a secret, or not the client ids", shown)
	}
	_, err = config.Load(env(map[string]string{"WXLOGIN_INTROSPECTION_CLIENTS": "orders:tooshort,x"}))
	if err == nil || strings.Contains(err.Error(), "tooshort") {
		t.Errorf("a refused client's error %q shows its secret", err)
	}
	if dev, _ := config.Load(env(nil)); len(dev.Introspection.Clients) != 0 || dev.Introspection.PerMinute != config.DefaultIntrospectionPerMinute {
		t.Errorf("default introspection = %+v", dev.Introspection)
	}
}

func TestSeveralApps(t *testing.T) {
	c, err := config.Load(env(map[string]string{"WECHAT_APPS": "wxfirst:s1, wxsecond:s2", "WXLOGIN_SECRET_KEY": goodKey}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DevMode || len(c.WeChat.Apps) != 2 || c.WeChat.Apps[0] != (config.App{AppID: "wxfirst", Secret: "s1"}) || c.WeChat.Apps[1].AppID != "wxsecond" {
		t.Errorf("apps = %+v", c.WeChat.Apps)
	}
	single, _ := config.Load(env(map[string]string{"WECHAT_APPID": "wx1", "WECHAT_SECRET": "s", "WXLOGIN_SECRET_KEY": goodKey}))
	if len(single.WeChat.Apps) != 1 || single.WeChat.Apps[0].AppID != "wx1" {
		t.Errorf("single app = %+v", single.WeChat.Apps)
	}
}

// TestHelpListsEverySetting: every variable config.go reads appears in --help.
func TestHelpListsEverySetting(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	var help strings.Builder
	config.Help(&help)
	names := regexp.MustCompile(`"((?:WXLOGIN|WECHAT)_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(names) < 20 {
		t.Fatalf("found only %d settings in config.go", len(names))
	}
	for _, m := range names {
		if !strings.Contains(help.String(), m[1]) {
			t.Errorf("--help does not list %s", m[1])
		}
	}
}

func TestAPISwitches(t *testing.T) {
	dev, _ := config.Load(env(nil))
	prod, _ := config.Load(env(map[string]string{"WECHAT_APPID": "wx1", "WECHAT_SECRET": "s", "WXLOGIN_SECRET_KEY": goodKey}))
	if !dev.API.Introspection || !dev.API.Playground || !dev.API.Suggestions {
		t.Errorf("dev mode API = %+v, want all on", dev.API)
	}
	if prod.API.Introspection || prod.API.Playground || prod.API.Suggestions || prod.API.CORSOrigins != nil {
		t.Errorf("production API = %+v, want all off and no origins", prod.API)
	}
	on, err := config.Load(env(map[string]string{"WECHAT_APPID": "wx1", "WECHAT_SECRET": "s", "WXLOGIN_SECRET_KEY": goodKey,
		"WXLOGIN_PLAYGROUND": "on", "WXLOGIN_CORS_ORIGINS": "https://Admin.example.com, http://localhost:5173", "WXLOGIN_SHUTDOWN_GRACE": "45s"}))
	if err != nil || !on.API.Playground || on.API.Introspection || len(on.API.CORSOrigins) != 2 || on.API.CORSOrigins[0] != "https://admin.example.com" || on.ShutdownGrace != 45*time.Second {
		t.Errorf("switched = %+v %v, %v", on.API, on.ShutdownGrace, err)
	}
	for _, bad := range []string{"*", "https://x.example.com/path", "admin.example.com"} {
		if _, err := config.Load(env(map[string]string{"WXLOGIN_CORS_ORIGINS": bad})); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	if _, err := config.Load(env(map[string]string{"WXLOGIN_PLAYGROUND": "maybe"})); err == nil {
		t.Error("WXLOGIN_PLAYGROUND=maybe accepted")
	}
}

// TestSessionCacheTTL: 3 s unless set; any spelling of zero turns it off; past 4 s is
// refused, since a logout must reach every instance within 5 s.
func TestSessionCacheTTL(t *testing.T) {
	for raw, want := range map[string]time.Duration{"": 3 * time.Second, "1500ms": 1500 * time.Millisecond, "4s": 4 * time.Second, "0": -1, "off": -1, "0s": -1, "0ms": -1, "0m": -1} {
		c, err := config.Load(env(map[string]string{"WXLOGIN_SESSION_CACHE_TTL": raw}))
		if err != nil || c.Sessions.CacheTTL != want {
			t.Errorf("WXLOGIN_SESSION_CACHE_TTL=%q: %v %v, want %v", raw, c.Sessions.CacheTTL, err, want)
		}
	}
	for _, raw := range []string{"5s", "-1s", "soon"} {
		if _, err := config.Load(env(map[string]string{"WXLOGIN_SESSION_CACHE_TTL": raw})); err == nil || !strings.Contains(err.Error(), "WXLOGIN_SESSION_CACHE_TTL") {
			t.Errorf("WXLOGIN_SESSION_CACHE_TTL=%q: %v, want a problem naming the setting", raw, err)
		}
	}
}
