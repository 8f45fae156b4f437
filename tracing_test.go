package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// receiver is an OTLP/HTTP trace receiver: it decodes what the real exporter sends.
type receiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = z
	}
	raw, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(raw, &req) != nil {
		http.Error(w, "not an OTLP trace export", 400)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			rc.spans = append(rc.spans, ss.Spans...)
		}
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Write(b)
}

func (rc *receiver) all() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// TestLoginTrace: with OTEL_EXPORTER_OTLP_ENDPOINT set, a login sent with a W3C
// traceparent gives one trace through the real OTLP/HTTP exporter: the request's span
// continuing the caller's, the GraphQL operation and the login resolver, the database's
// statements and the call to WeChat; the log lines carry the trace id; and no attribute
// holds the code, the token, the app secret or the session key. Without the variable,
// nothing is sent.
func TestLoginTrace(t *testing.T) {
	b := testdb.Backends(t)[0]
	const secret = "trace-test-app-secret"
	fake, vars := configured(t, b.URL(t), fakewechat.Options{AppID: "wxtrace000000001", Secret: secret})
	rc := &receiver{}
	collector := httptest.NewServer(rc)
	defer collector.Close()
	vars["OTEL_EXPORTER_OTLP_ENDPOINT"], vars["OTEL_BSP_SCHEDULE_DELAY"] = collector.URL, "50"
	// The exporter and the SDK read the OTEL_* variables themselves, from the process.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	s := start(t, vars)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	code := fake.IssueCode(fakewechat.User{OpenID: "oTrace0000000000000000000001"})
	// The code written into the document, as a careless client would: it must not
	// reach the trace even so.
	body, _ := json.Marshal(map[string]string{"query": `mutation { login(code: "` + code + `") { token } }`})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	token, _ := dig(login, "data", "login", "token").(string)
	if token == "" {
		t.Fatalf("login: %v", login)
	}
	s.stop(t) // flushes the last spans

	names := map[string]int{}
	var server *tracepb.Span
	for _, sp := range rc.all() {
		if hex.EncodeToString(sp.TraceId) != traceID {
			continue
		}
		names[sp.Name]++
		if strings.HasPrefix(sp.Name, "wechat") {
			for _, kv := range sp.Attributes {
				if kv.Key == "url.full" && !strings.HasSuffix(valueText(kv.Value), "/sns/jscode2session") {
					t.Errorf("the WeChat call's url.full is %q, want the URL without its query", valueText(kv.Value))
				}
			}
		}
		if sp.Name == "POST /graphql" {
			server = sp
		}
		for _, kv := range sp.Attributes {
			v := valueText(kv.Value)
			for what, secretValue := range map[string]string{"the code": code, "the token": token, "the app secret": secret, "the secret key": vars["WXLOGIN_SECRET_KEY"]} {
				if strings.Contains(v, secretValue) {
					t.Errorf("span %q attribute %s holds %s: %s", sp.Name, kv.Key, what, v)
				}
			}
		}
	}
	if server == nil || hex.EncodeToString(server.ParentSpanId) != parentID {
		t.Errorf("no request span continuing the caller's traceparent; spans of the trace: %v", names)
	}
	has := func(prefix string) bool {
		for n := range names {
			if strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"Mutation/login", "wechat /sns/jscode2session", "sql."} {
		if !has(want) {
			t.Errorf("no %q span in the login's trace: %v", want, names)
		}
	}
	if len(names) < 5 {
		t.Errorf("the login's trace has %d kinds of span: %v", len(names), names)
	}
	if !strings.Contains(s.stderr.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("the log lines of the request do not carry its trace id")
	}

	// Off by default: nothing is sent.
	before := len(rc.all())
	delete(vars, "OTEL_EXPORTER_OTLP_ENDPOINT")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	off := start(t, vars)
	off.graphql(t, "", `mutation { login(code: "`+fake.IssueCode(fakewechat.User{OpenID: "oTrace0000000000000000000002"})+`") { token } }`)
	off.stop(t)
	if n := len(rc.all()); n != before {
		t.Errorf("%d spans sent with tracing off", n-before)
	}
}

func valueText(v *commonpb.AnyValue) string {
	if v == nil {
		return ""
	}
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, valueText(e))
		}
		return strings.Join(parts, " ")
	}
	return ""
}
