// Package server builds wxlogin's HTTP handler: the routes, and the middleware every
// request passes through (request id, body limit, access log, credential into context)
// before it reaches GraphQL.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/metrics"
	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/playground"
	"github.com/wxlogin/wxlogin/internal/profile"
	"github.com/wxlogin/wxlogin/internal/reqlog"
	"github.com/wxlogin/wxlogin/internal/tracing"
	"github.com/wxlogin/wxlogin/internal/verify"
	"github.com/wxlogin/wxlogin/internal/weblogindemo"
	"github.com/wxlogin/wxlogin/internal/wechatpush"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// requestDeadline bounds one GraphQL request: past a login's 10 s, well short of the
// server's write timeout.
const requestDeadline = 15 * time.Second

// Pinger is what readiness needs of the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options are the handler's dependencies.
type Options struct {
	Auth     *auth.Service
	Profile  *profile.Service
	Phone    *phone.Service
	OpenData *opendata.Service
	DB       Pinger
	// Ent is the database for resolvers a team adds to the schema (docs/extending.md).
	Ent     *ent.Client
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// API switches introspection and suggestions; Playground serves GraphiQL at /.
	API        graph.Options
	Playground bool
	// DevMode opens the playground with a ready dev login.
	DevMode bool
	// CORSOrigins are the browser origins allowed to call /graphql.
	CORSOrigins []string
	// OpsListener says /metrics is served by Ops, on a listener of its own, and not here.
	OpsListener bool
	// DevFake, in dev mode only, is the in-process fake WeChat: its helper routes
	// (/fake/wx.login, /fake/phonecode) are served under /dev, so that a person in the
	// playground can mint codes.
	DevFake http.Handler
	// Introspection is who may call /oauth/introspect, and how often; without clients
	// the endpoint is not served (404).
	Introspection Introspection
	// PushToken and PushAESKey receive WeChat's message pushes at /wechat/events; unset,
	// the endpoints are not served (404).
	PushToken  string
	PushAESKey []byte
	Now        func() time.Time // the pushes' clock; nil: time.Now
}

// Introspection configures /oauth/introspect.
type Introspection struct {
	Clients          []verify.Client
	PerMinute, Burst int              // each client's limit; PerMinute <= 0: none
	Now              func() time.Time // the limits' clock; nil: time.Now
}

// New returns the handler for every route of the contract.
func New(o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gql := graph.NewHandler(&graph.Resolver{Auth: o.Auth, Profile: o.Profile, Phone: o.Phone, OpenData: o.OpenData, Metrics: o.Metrics, Ent: o.Ent}, log, o.API)

	mux := http.NewServeMux()
	// A subscription's stream (Accept: text/event-stream) lives as long as the web login
	// it follows, and a little longer.
	streams := deadline(o.Auth.WebLoginTTL()+time.Minute, o.Auth.Middleware(gql))
	requests := deadline(requestDeadline, o.Auth.Middleware(gql))
	mux.Handle("/graphql", cors(o.CORSOrigins, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			streams.ServeHTTP(w, r)
			return
		}
		requests.ServeHTTP(w, r)
	})))
	// Other services' checks of a token: any method, at /auth/verify and under it (a
	// gateway may append the original path), and RFC 7662 introspection.
	verified := deadline(requestDeadline, o.Auth.Middleware(verify.Forward(o.Metrics, log)))
	mux.Handle("/auth/verify", verified)
	mux.Handle("/auth/verify/", verified)
	if o.PushToken != "" {
		push := deadline(requestDeadline, wechatpush.Handler(wechatpush.Options{
			Token: o.PushToken, AESKey: o.PushAESKey, Apps: o.Auth.AppIDs(), Default: o.Auth.AppIDs()[0],
			Accounts: o.Auth, Logger: log, Now: o.Now,
		}))
		mux.Handle("/wechat/events", push)
		mux.Handle("/wechat/events/{appid}", push)
	}
	if len(o.Introspection.Clients) > 0 {
		mux.Handle("/oauth/introspect", deadline(requestDeadline, o.Auth.Middleware(verify.Introspection(verify.IntrospectionOptions{
			Auth: o.Auth, Clients: o.Introspection.Clients, PerMinute: o.Introspection.PerMinute, Burst: o.Introspection.Burst,
			Metrics: o.Metrics, Logger: log, Now: o.Introspection.Now,
		}))))
	}
	if o.Playground {
		pg := playground.Handler(playground.Options{Endpoint: "/graphql", DevMode: o.DevMode})
		mux.Handle("GET /{$}", pg)
		mux.Handle("GET "+playground.AssetPrefix, pg)
	}
	health(mux, o.DB, log)
	if !o.OpsListener {
		mux.Handle("GET /metrics", o.Metrics.Handler())
	}
	if o.DevFake != nil {
		mux.Handle("GET /dev/fake/", http.StripPrefix("/dev", o.DevFake))
	}
	if o.DevMode {
		mux.Handle("GET "+weblogindemo.Path, weblogindemo.Handler())
		mux.Handle("GET "+weblogindemo.Path+"/", weblogindemo.Handler())
	}

	h := requestID(accessLog(log, o.Metrics, mux))
	if tracing.On() {
		// Outermost, so that the access line and every log line of the request carry
		// its trace id; the span continues a traceparent the request brings.
		h = otelhttp.NewHandler(h, "wxlogin", otelhttp.WithSpanNameFormatter(spanName))
	}
	return h
}

// spanName names a request's span by its route, never its own path: /auth/verify/…
// carries a gateway's paths, which would make every span a name of its own.
func spanName(_ string, r *http.Request) string {
	for _, route := range []string{"/graphql", "/auth/verify", "/oauth/introspect", "/wechat/events", "/healthz", "/readyz", "/metrics"} {
		if r.URL.Path == route || strings.HasPrefix(r.URL.Path, route+"/") {
			return r.Method + " " + route
		}
	}
	return r.Method
}

// Ops returns the handler of the operators' listener: /metrics, /healthz and /readyz.
// Its requests are not logged: a scraper's every few seconds would drown the rest.
func Ops(o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	health(mux, o.DB, log)
	mux.Handle("GET /metrics", o.Metrics.Handler())
	return mux
}

// health serves the probes: /healthz while the process is up, /readyz while the
// database answers.
func health(mux *http.ServeMux, db Pinger, log *slog.Logger) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			log.WarnContext(r.Context(), "readiness: the database does not answer", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("database unavailable\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
}

// deadline gives each request a context that ends after d, so that no resolver runs on.
func deadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestID takes the request id from X-Request-Id when it is sane, or makes one, and
// returns it in the response header and in the context for every log line.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// accessLog writes one line per request and counts it: for GraphQL, with the operation
// and the error codes it answered with. It limits the body first, so a huge body is
// refused with 413 before anything reads it.
func accessLog(log *slog.Logger, m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, entry := reqlog.With(r.Context())
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// The GraphQL transport answers a body past the limit with 413, inside CORS and
		// with its usual headers, as soon as its read crosses the limit.
		r.Body = http.MaxBytesReader(rec, r.Body, MaxBodyBytes)
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		// The route is the pattern the request matched, never its own path: the label
		// set stays bounded whatever clients send.
		route := "other"
		if r.Pattern != "" {
			route = r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path // drop the method
			}
			if route == "/{$}" {
				route = "/"
			}
		}
		m.Request(route, rec.status, took)
		attrs := []slog.Attr{
			slog.String("method", truncate(r.Method, 16)),
			slog.String("path", truncate(r.URL.Path, 256)),
			slog.Int("status", rec.status),
			slog.Float64("duration_ms", float64(took.Microseconds())/1000),
			slog.Int("bytes", rec.bytes),
		}
		if route == "/graphql" && r.Method != http.MethodOptions { // a preflight is no GraphQL request
			m.GraphQL(entry.OperationType, entry.Operation, entry.Outcome(), took)
			if entry.Operation != "" {
				attrs = append(attrs, slog.String("operation", truncate(entry.Operation, 64)))
			}
			if entry.OperationType != "" {
				attrs = append(attrs, slog.String("operation_type", entry.OperationType))
			}
			if n := len(entry.ErrorCodes); n > 0 {
				// One per error, and a document may have a thousand fields: the first
				// few say what went wrong, the count how much.
				attrs = append(attrs, slog.Any("error_codes", entry.ErrorCodes[:min(n, maxLoggedCodes)]))
				if n > maxLoggedCodes {
					attrs = append(attrs, slog.Int("errors", n))
				}
			}
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// maxLoggedCodes bounds the error codes an access line lists.
const maxLoggedCodes = 16

// truncate cuts s to at most n bytes, at a character's start, marking the cut: for
// what the client sent (its method, path and operation name).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return clipText(s, n) + "…"
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush sends what was written: a subscription's events go as they come.
func (s *statusRecorder) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }
