// Package metrics holds wxlogin's Prometheus collectors, on a registry of their own.
package metrics

import (
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets span a cached `me` (milliseconds) to a login at its 10 s bound.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15}

// Operation names come from clients. The known ones (the client documents') always get
// a label of their own; of the rest, the first maxOperations names of at most
// maxOperationName bytes do, and everything else is counted as "other".
const (
	maxOperations    = 50
	maxOperationName = 64
)

// Metrics is the set of collectors the server updates.
type Metrics struct {
	registry         *prometheus.Registry
	logins           *prometheus.CounterVec
	requests         *prometheus.CounterVec
	requestLatency   *prometheus.HistogramVec
	operations       *prometheus.CounterVec
	operationLatency *prometheus.HistogramVec
	wechatCalls      *prometheus.CounterVec
	wechatLatency    *prometheus.HistogramVec
	verifications    *prometheus.CounterVec

	mu     sync.Mutex
	known  map[string]bool // the client documents' operation names
	others map[string]bool // other names given a label of their own
}

// New makes the collectors and registers them, with Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_logins_total",
			Help: "Login attempts by outcome: OK or the error code returned.",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "status"}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxlogin_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_graphql_requests_total",
			Help: "GraphQL requests by operation type (query, mutation; none when refused before parsing), operation name (anonymous; other past 50 names besides the client documents') and outcome (ok, or the first error code).",
		}, []string{"type", "operation", "outcome"}),
		operationLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxlogin_graphql_request_duration_seconds",
			Help:    "GraphQL request latency by operation type and name.",
			Buckets: latencyBuckets,
		}, []string{"type", "operation"}),
		wechatCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_wechat_requests_total",
			Help: "HTTP attempts at WeChat's API by API and result: its errcode (0 is success), http_<status>, bad_response, timeout, canceled or transport_error.",
		}, []string{"api", "result"}),
		wechatLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxlogin_wechat_request_duration_seconds",
			Help:    "Latency of HTTP attempts at WeChat's API, by API.",
			Buckets: latencyBuckets,
		}, []string{"api"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_verifications_total",
			Help: "Session checks for other services, by endpoint (forward_auth, introspection) and outcome (valid, invalid, unavailable, error; for introspection also unauthorized_client, rate_limited, bad_request).",
		}, []string{"endpoint", "outcome"}),
		known:  map[string]bool{},
		others: map[string]bool{},
	}
	m.registry.MustRegister(
		m.logins, m.requests, m.requestLatency, m.operations, m.operationLatency, m.wechatCalls, m.wechatLatency, m.verifications,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Database exports the figures of a connection pool (open, in use, idle, waits) as
// go_sql_* metrics labelled with name.
func (m *Metrics) Database(name string, db *sql.DB) {
	m.registry.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// Login counts one login attempt; outcome is "OK" or its error code.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Request counts one HTTP request and its duration.
func (m *Metrics) Request(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.requestLatency.WithLabelValues(route).Observe(d.Seconds())
}

// GraphQL counts one GraphQL request: its operation's type and name (either may be
// empty), its outcome, and its duration.
func (m *Metrics) GraphQL(opType, opName, outcome string, d time.Duration) {
	if opType == "" {
		opType, opName = "none", "none"
	} else if opName == "" {
		opName = "anonymous"
	} else {
		opName = m.operationLabel(opName)
	}
	m.operations.WithLabelValues(opType, opName, outcome).Inc()
	m.operationLatency.WithLabelValues(opType, opName).Observe(d.Seconds())
}

// KnownOperations names the operations that always get a label of their own.
func (m *Metrics) KnownOperations(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.known[n] = true
	}
}

func (m *Metrics) operationLabel(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.known[name], m.others[name]:
		return name
	case len(name) > maxOperationName || len(m.others) >= maxOperations:
		return "other"
	}
	m.others[name] = true
	return name
}

// WeChat counts one HTTP attempt at WeChat's API and its latency.
func (m *Metrics) WeChat(api, result string, d time.Duration) {
	m.wechatCalls.WithLabelValues(api, result).Inc()
	m.wechatLatency.WithLabelValues(api).Observe(d.Seconds())
}

// Verification counts one session check made for another service.
func (m *Metrics) Verification(endpoint, outcome string) {
	m.verifications.WithLabelValues(endpoint, outcome).Inc()
}

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
