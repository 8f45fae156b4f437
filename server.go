// Command wxlogin serves silent login for WeChat mini-programs over GraphQL.
//
//	wxlogin              serve (configured by environment; dev mode when WeChat is not)
//	wxlogin fakewechat   run the fake WeChat on its own, for client teams
//	wxlogin admin …      operators' commands on users (see admin.go)
//	wxlogin migrate …    status or up: the versioned migrations of a MySQL database
//	wxlogin healthcheck  exit 0 when the server on WXLOGIN_ADDR answers /healthz (for images without curl)
//	wxlogin --version    the version
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // time zones inside the binary: the image has no /usr/share/zoneinfo

	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/accesstoken"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/config"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/metrics"
	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/profile"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/server"
	"github.com/wxlogin/wxlogin/internal/tracing"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "fakewechat":
		err = runFake(ctx, os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "admin":
		err = runAdmin(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
	case len(os.Args) > 1 && os.Args[1] == "migrate":
		err = runMigrate(ctx, os.Args[2:], os.Getenv, os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "healthcheck":
		err = healthcheck(ctx, os.Getenv)
	case len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version" || os.Args[1] == "version"):
		fmt.Println(versionLine())
	case len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help"):
		config.Help(os.Stdout)
	case len(os.Args) > 1:
		config.Help(os.Stderr)
		err = fmt.Errorf("unknown argument %q: settings come from the environment", os.Args[1])
	default:
		tuneGC(os.Getenv)
		err = serve(ctx, os.Getenv, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wxlogin:", err)
		os.Exit(1)
	}
}

// maxHeaderBytes bounds a request's headers (Go's default is 1 MiB): a mini-program's
// request carries a token and a few short headers, and a browser's a few KiB of them.
// Past it the answer is 431.
const maxHeaderBytes = 64 << 10

// GC settings for when the operator sets neither GOGC nor GOMEMLIMIT.
const (
	gcPercent   = 400
	memoryLimit = 100 << 20
)

// tuneGC makes the garbage collector run less often than Go's default. The live heap is
// small (a few MB), so at GOGC=100 a busy instance collected dozens of times a second,
// and each collection also shrank the stacks of idle connections that the next request
// then grew again. The soft memory limit keeps the heap bounded under bursts. GOGC or
// GOMEMLIMIT in the environment means the operator decides, and nothing is changed.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(memoryLimit)
}

// serve reads the configuration, wires the parts, serves, and drains on signal.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Text for a person in dev mode, JSON for log collectors everywhere else.
	var handler slog.Handler = slog.NewJSONHandler(stderr, server.LogOptions())
	if cfg.DevMode {
		handler = slog.NewTextHandler(stderr, server.LogOptions())
	}
	log := slog.New(server.LogHandler(handler))

	// Traces, when the OTEL_* variables ask for them: before the database and the
	// WeChat clients are made, which are traced only then.
	v, _ := buildVersion()
	stopTracing, err := tracing.Setup(ctx, getenv, v)
	if err != nil {
		return fmt.Errorf("tracing (OTEL_*): %w", err)
	}
	defer func() {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(flush); err != nil {
			log.Warn("tracing: the last spans were not all sent", "error", err)
		}
	}()
	if tracing.On() {
		log.Info("tracing on: spans go to the OTLP/HTTP endpoint of OTEL_EXPORTER_OTLP_ENDPOINT")
	}

	db, err := database.OpenMigrating(ctx, cfg.DatabaseURL, log, cfg.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	meter := metrics.New()
	meter.Database("wxlogin", db.SQL)
	manifest := cfg.API.Manifest
	if manifest == nil {
		manifest = persisted.Builtin()
	}
	for _, op := range manifest.Operations {
		meter.KnownOperations(op.Name)
	}

	apps, base := cfg.WeChat.Apps, cfg.WeChat.APIBase
	var devFake http.Handler
	var devCodes func(string) string
	if cfg.DevMode {
		fake, fakeBase, stopFake, err := startDevFake(log)
		if err != nil {
			return err
		}
		defer stopFake() // after the drain: in-flight dev logins still reach it
		apps, base = []config.App{{AppID: fake.AppID(), Secret: fake.Secret()}}, fakeBase
		devFake, devCodes = fake, fake.FreshDevCode
	}
	keyring, err := seal.NewKeyring(cfg.SecretKey, cfg.OldSecretKeys...)
	if err != nil {
		return err
	}
	// Each mini-program has its own WeChat client and its own access token.
	var platform []wxapp.App
	for _, app := range apps {
		wc, err := wechat.New(wechat.Config{BaseURL: base, AppID: app.AppID, Secret: app.Secret, Logger: log, Observe: meter.WeChat})
		if err != nil {
			return err
		}
		platform = append(platform, wxapp.App{Client: wc, Tokens: accesstoken.New(accesstoken.Options{DB: db, Source: wc, Keyring: keyring, Logger: log})})
	}
	authn, err := auth.New(auth.Options{
		DB: db, Apps: platform, Keyring: keyring, Logger: log,
		Policy: auth.Policy{
			SessionTTL:      cfg.Sessions.TTL,
			IdleTimeout:     cfg.Sessions.IdleTimeout,
			MaxSessions:     cfg.Sessions.MaxSessions,
			LoginsPerMinute: cfg.Sessions.LoginsPerMinute,
			LoginBurst:      cfg.Sessions.LoginBurst,
			AuditRetention:  cfg.Sessions.AuditRetention,

			WebSessionTTL:      cfg.Sessions.WebTTL,
			WebIdleTimeout:     cfg.Sessions.WebIdleTimeout,
			WebLoginTTL:        cfg.Sessions.WebLoginTTL,
			WebLoginsPerMinute: cfg.Sessions.WebLoginsPerMinute,
			WebLoginPage:       cfg.Sessions.WebLoginPage,
			WebLoginEnv:        cfg.Sessions.WebLoginEnv,
		},
		TrustedProxies:  cfg.TrustedProxies,
		SessionCacheTTL: cfg.Sessions.CacheTTL,
		DevCodes:        devCodes,
	})
	if err != nil {
		return err
	}

	phones := phone.New(phone.Options{DB: db, Apps: platform, Keyring: keyring, Logger: log})
	openData := opendata.New(opendata.Options{Apps: platform, Keyring: keyring, MaxAge: cfg.OpenDataMaxAge, Logger: log})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	routes := server.Options{
		Auth: authn, Profile: profile.New(db.Client), Phone: phones, DB: db, Ent: db.Client, Metrics: meter, Logger: log,
		OpenData: openData, DevFake: devFake,
		API: graph.Options{
			Introspection: cfg.API.Introspection, Suggestions: cfg.API.Suggestions,
			PersistedQueries: cfg.API.PersistedQueries, Manifest: manifest,
		},
		Playground: cfg.API.Playground, DevMode: cfg.DevMode, CORSOrigins: cfg.API.CORSOrigins,
		OpsListener: cfg.OpsAddr != "",
		PushToken:   cfg.WeChat.PushToken, PushAESKey: cfg.WeChat.PushAESKey,
		Introspection: server.Introspection{
			Clients:   cfg.Introspection.Clients,
			PerMinute: cfg.Introspection.PerMinute, Burst: cfg.Introspection.Burst,
		},
	}
	srv := &http.Server{
		Handler:           server.New(routes),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second, // well past a login's 10 s bound
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.OpsAddr != "" {
		stopOps, err := serveAside("ops", "WXLOGIN_OPS_ADDR", cfg.OpsAddr, server.Ops(routes), log)
		if err != nil {
			return err
		}
		defer stopOps()
	}
	if cfg.DebugAddr != "" {
		stopDebug, err := serveAside("profiler", "WXLOGIN_DEBUG_ADDR", cfg.DebugAddr, profiler(), log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	if cfg.DevMode {
		log.Warn("DEV MODE: logins go to a built-in fake WeChat; do not use in production")
		devBanner(stderr, cfg, ln.Addr())
	}
	log.Info("wxlogin serving", "config", cfg, "listen", ln.Addr().String())

	housekeeping, stopHousekeeping := context.WithCancel(context.Background())
	defer stopHousekeeping()
	go authn.RunHousekeeping(housekeeping, cfg.HousekeepingInterval, phones.PurgeExpired)
	go migratePhoneNumbers(housekeeping, phones, log)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining requests: %w", err)
	}
	log.Info("stopped")
	return nil
}

// migratePhoneNumbers rewrites, once per start, the phone numbers an earlier version
// stored in WeChat's own form in E.164; they are shown in E.164 meanwhile.
func migratePhoneNumbers(ctx context.Context, phones *phone.Service, log *slog.Logger) {
	n, err := phones.MigrateNumbers(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("phone: rewriting stored numbers in E.164 stopped; the next start carries on", "error", err, "rows", n)
	case n > 0:
		log.Info("phone: stored numbers rewritten in E.164", "rows", n)
	}
}

// serveAside serves h on a listener of its own, never reachable through the public
// address, and logs "<what> serving" with the address. setting names the variable
// that asked for it, for errors.
func serveAside(what, setting, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes}
	go hs.Serve(ln)
	log.Info(what+" serving", "addr", ln.Addr().String())
	return func() { hs.Close() }, nil
}

// profiler is Go's profiler, for WXLOGIN_DEBUG_ADDR.
func profiler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startDevFake runs the fake WeChat in-process on a loopback port, with credentials
// made up for this run.
func startDevFake(log *slog.Logger) (fake *fakewechat.Server, base string, stop func(), err error) {
	secret := make([]byte, 16)
	rand.Read(secret)
	fake = fakewechat.New(fakewechat.Options{AppID: "wxdevfake0000001", Secret: hex.EncodeToString(secret), Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	hs := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	return fake, "http://" + ln.Addr().String(), func() { fake.Close(); hs.Close() }, nil
}

func devBanner(w io.Writer, cfg config.Config, addr net.Addr) {
	port := "8080"
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = fmt.Sprint(tcp.Port)
	}
	lines := []string{
		"*** DEV MODE *** WECHAT_APPID and WECHAT_SECRET are not set, so logins go to a built-in FAKE WeChat.",
		"  playground: http://localhost:" + port + "/",
		"  web login:  http://localhost:" + port + "/weblogin   (a demo: log in by scanning, the phone simulated)",
		"  graphql:    http://localhost:" + port + "/graphql   (POST, Content-Type: application/json)",
		"  log in:     mutation { login(code: \"dev-alice\") { token user { id openid } } }",
		"              any code dev-<name> logs in as the dev user <name>, every time",
		"  then send:  Authorization: Bearer <token>   with   query { me { id openid } }",
		"  phone code: curl 'http://localhost:" + port + "/dev/fake/phonecode?openid=<openid>&phone=13800000000'",
		"              then  mutation { bindPhoneNumber(code: \"<code>\") { phoneNumber } }",
		"  database:   " + config.RedactURL(cfg.DatabaseURL),
	}
	if cfg.SecretKeyGenerated {
		lines = append(lines, "  secrets:    WXLOGIN_SECRET_KEY is not set: a key was generated for this run only")
	}
	fmt.Fprintf(w, "\n%s\n\n", strings.Join(lines, "\n"))
}

// runFake is the fakewechat subcommand.
func runFake(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "push" {
		return runFakePush(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("fakewechat", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	appid := fs.String("appid", "wxfake0000000001", "the appid the fake accepts")
	secret := fs.String("secret", "fakesecret", "the app secret the fake accepts")
	latency := fs.Duration("latency", 0, "how long every API answer takes (e.g. 200ms), as across the internet")
	keys := fs.String("session-keys", "exchange", "when a user gets a new session_key: exchange (every login), keep (never), issue (when wx.login issues the code)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	mode, err := fakewechat.ParseSessionKeys(*keys)
	if err != nil {
		return err
	}
	return fakewechat.Run(ctx, *addr, fakewechat.Options{AppID: *appid, Secret: *secret, Latency: *latency, SessionKeys: mode}, stdout)
}

// runFakePush sends one of WeChat's consent pushes to a running server, signed and
// encrypted as WeChat sends them: `wxlogin fakewechat push -event user_authorization_revoke
// -openid … -url http://127.0.0.1:8080/wechat/events -token … -aes-key …`.
func runFakePush(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fakewechat push", flag.ContinueOnError)
	p := fakewechat.Push{}
	fs.StringVar(&p.URL, "url", "http://127.0.0.1:8080/wechat/events", "the server's push URL")
	fs.StringVar(&p.Token, "token", os.Getenv("WECHAT_PUSH_TOKEN"), "the push token (default $WECHAT_PUSH_TOKEN)")
	fs.StringVar(&p.AESKey, "aes-key", os.Getenv("WECHAT_PUSH_AES_KEY"), "the EncodingAESKey (default $WECHAT_PUSH_AES_KEY)")
	fs.StringVar(&p.AppID, "appid", "wxdevfake0000001", "the mini-program's appid (the default: dev mode's)")
	fs.StringVar(&p.OpenID, "openid", "", "the user's openid (in dev mode, see me { openid })")
	fs.StringVar(&p.Event, "event", "user_authorization_revoke", "user_authorization_revoke, user_authorization_cancellation or user_info_modified")
	fs.BoolVar(&p.XML, "xml", false, "send the XML form instead of JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if p.OpenID == "" {
		return errors.New("fakewechat push needs -openid")
	}
	_, answer, err := p.Send(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "pushed", p.Event, "for", p.OpenID, "to", p.URL+":", answer)
	return nil
}

// healthcheck asks the server on WXLOGIN_ADDR (on this host) for /healthz, as an
// image's HEALTHCHECK does where there is no shell and no curl.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	addr := getenv("WXLOGIN_ADDR")
	if addr == "" {
		addr = config.DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("WXLOGIN_ADDR %q: %v", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %d", resp.StatusCode)
	}
	return nil
}

// runMigrate is `wxlogin migrate status` (JSON: the versions applied and pending) and
// `wxlogin migrate up` (runs what is pending, under the instances' migration lock).
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "status" && args[0] != "up") {
		return errors.New("usage: wxlogin migrate status|up (with the server's WXLOGIN_DATABASE_URL)")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if args[0] == "up" {
		if err := database.MigrateUp(ctx, cfg.DatabaseURL, nil); err != nil {
			return err
		}
	}
	st, err := database.MigrationStatus(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	out := map[string]any{
		"applied": append([]string{}, st.Applied...), "pending": append([]string{}, st.Pending...),
		"upToDate": len(st.Pending) == 0,
	}
	return printJSON(stdout, out)
}
