// Package metrics holds wxlogin's Prometheus collectors, on a registry of their own.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors the server updates.
type Metrics struct {
	registry *prometheus.Registry
	logins   *prometheus.CounterVec
	requests *prometheus.CounterVec
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
	}
	m.registry.MustRegister(
		m.logins, m.requests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Login counts one login attempt; outcome is "OK" or its error code.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Request counts one HTTP request.
func (m *Metrics) Request(route, status string) { m.requests.WithLabelValues(route, status).Inc() }

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
