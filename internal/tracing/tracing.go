// Package tracing turns on OpenTelemetry traces when the standard OTEL_* variables ask
// for them (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), exported
// over OTLP/HTTP. Off, nothing is wrapped and nothing is spent: On says which, and the
// HTTP edge, the GraphQL handler, the database pool and the WeChat client ask it once,
// when they are built.
//
// The spans come from the maintained instrumentation: otelhttp for requests and for
// the calls to WeChat, otelgqlgen for operations and resolvers, otelsql for
// statements. Some of what they record would carry secrets (a document's literal
// arguments, the WeChat URL's secret and code): the exporter drops or redacts those
// attributes before anything leaves the process (redact).
package tracing

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

var on atomic.Bool

// On says whether Setup turned tracing on.
func On() bool { return on.Load() }

// Wanted says whether the environment asks for traces.
func Wanted(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the tracer provider and W3C trace-context propagation when the
// environment asks for traces; the returned function flushes and uninstalls them. The
// exporter reads the other OTEL_EXPORTER_OTLP_* variables, the SDK OTEL_TRACES_SAMPLER
// and OTEL_BSP_*, the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func Setup(ctx context.Context, getenv func(string) string, version string) (shutdown func(context.Context) error, err error) {
	if !Wanted(getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "wxlogin"), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, err
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(redacting{exporter}), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	on.Store(true)
	return func(ctx context.Context) error {
		on.Store(false)
		otel.SetTracerProvider(noop.NewTracerProvider())
		return provider.Shutdown(ctx)
	}, nil
}

// redacting exports spans without the attributes that could carry a secret.
type redacting struct{ sdktrace.SpanExporter }

func (r redacting) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactedSpan{s}
	}
	return r.SpanExporter.ExportSpans(ctx, out)
}

type redactedSpan struct{ sdktrace.ReadOnlySpan }

func (s redactedSpan) Attributes() []attribute.KeyValue {
	var kept []attribute.KeyValue
	for _, kv := range s.ReadOnlySpan.Attributes() {
		if kv, ok := redact(kv); ok {
			kept = append(kept, kv)
		}
	}
	return kept
}

// redact drops a GraphQL document's text, its variables and a resolver's arguments
// (a login's code may be written into the document), and the query of any URL (the
// WeChat API takes its secret, a login code and the access token in the query).
func redact(kv attribute.KeyValue) (attribute.KeyValue, bool) {
	key := string(kv.Key)
	switch {
	case key == "gql.request.query", strings.HasPrefix(key, "gql.request.variables"), strings.HasPrefix(key, "gql.resolver.args"):
		return kv, false
	case key == "url.query":
		return kv, false
	case key == "url.full" || key == "http.url" || key == "http.target":
		return attribute.String(key, withoutQuery(kv.Value.AsString())), true
	}
	return kv, true
}

func withoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i]
		}
		return raw
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// TraceID is the trace id of the span in ctx, or "" outside a recorded trace.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}
