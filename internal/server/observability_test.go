package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// logLines returns the captured JSON log lines that carry request_id id.
func logLines(t *testing.T, e *env, id string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == id {
			lines = append(lines, m)
		}
	}
	return lines
}

func TestRequestIDAndAccessLine(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])

	// A login with the client's request id: the id comes back, and every line the
	// request logged (the WeChat call, the access line) carries it.
	req := newGraphQLRequest(e, "")
	body, _ := json.Marshal(map[string]any{"query": loginMutation, "variables": map[string]any{"code": e.fake.IssueCode(alice)}, "operationName": "Login"})
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	req.ContentLength = int64(len(body))
	req.Header.Set("X-Request-Id", "trace-login-1")
	if r := e.send(req); r.Code() != "" || r.Header.Get("X-Request-Id") != "trace-login-1" {
		t.Fatalf("login = %v, X-Request-Id %q; want success and the id back", r.Errors, r.Header.Get("X-Request-Id"))
	}
	lines := logLines(t, e, "trace-login-1")
	var access []map[string]any
	sawWeChat := false
	for _, l := range lines {
		switch l["msg"] {
		case "request":
			access = append(access, l)
		case "wechat api call":
			sawWeChat = true
		}
	}
	if !sawWeChat {
		t.Errorf("the WeChat call's log line does not carry the request id; lines with it: %v", lines)
	}
	if len(access) != 1 {
		t.Fatalf("%d access lines for the request, want 1: %v", len(access), lines)
	}
	a := access[0]
	if a["operation"] != "Login" || a["operation_type"] != "mutation" || a["status"] != float64(200) || a["path"] != "/graphql" || a["duration_ms"] == nil {
		t.Errorf("access line = %v, want operation Login, type mutation, status 200, a duration", a)
	}
	if _, has := a["error_codes"]; has {
		t.Errorf("access line of a successful login has error codes: %v", a)
	}

	// A failing request: its error codes are on the line. A request id that is not
	// sane (too long, odd characters) is replaced by one of ours.
	req = newGraphQLRequest(e, `mutation Again { login(code: "spent-code-1") { token } }`)
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	r := e.send(req)
	id := r.Header.Get("X-Request-Id")
	if r.Code() != "INVALID_CODE" || id == "" || strings.ContainsAny(id, " \t") {
		t.Fatalf("invalid code = %q, request id %q; want INVALID_CODE and an id of ours", r.Code(), id)
	}
	lines = logLines(t, e, id)
	found := false
	for _, l := range lines {
		if l["msg"] == "request" {
			found = true
			codes, _ := l["error_codes"].([]any)
			if l["operation"] != "Again" || len(codes) != 1 || codes[0] != "INVALID_CODE" {
				t.Errorf("access line = %v, want operation Again and error_codes [INVALID_CODE]", l)
			}
		}
	}
	if !found {
		t.Errorf("no access line with the generated id %q", id)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	e.mustLogin(0, e.fake.IssueCode(alice))
	e.login(0, "never-issued-code")
	e.post(0, "", `query Who { me { id } }`, nil)

	resp, err := e.client.Get(e.instances[0].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		// Login outcomes by error code.
		`wxlogin_logins_total{outcome="OK"} 1`,
		`wxlogin_logins_total{outcome="INVALID_CODE"} 1`,
		// Requests by operation and outcome, and their latency.
		`wxlogin_graphql_requests_total{operation="Login",outcome="ok",type="mutation"} 1`,
		`wxlogin_graphql_requests_total{operation="Login",outcome="INVALID_CODE",type="mutation"} 1`,
		`wxlogin_graphql_requests_total{operation="Who",outcome="UNAUTHENTICATED",type="query"} 1`,
		`wxlogin_graphql_request_duration_seconds_count{operation="Login",type="mutation"} 2`,
		`wxlogin_http_request_duration_seconds_bucket{route="/graphql",le="+Inf"} 3`,
		// WeChat calls by API and errcode, and their latency.
		`wxlogin_wechat_requests_total{api="jscode2session",result="0"} 1`,
		`wxlogin_wechat_requests_total{api="jscode2session",result="40029"} 1`,
		`wxlogin_wechat_request_duration_seconds_count{api="jscode2session"} 2`,
		// The database pool and the process.
		`go_sql_max_open_connections{db_name="wxlogin"}`,
		`go_sql_in_use_connections{db_name="wxlogin"}`,
		`go_sql_wait_count_total{db_name="wxlogin"}`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMetricLabelsAreBounded: nothing a client sends becomes a label as it is: not its
// path, not a long operation name.
func TestMetricLabelsAreBounded(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	// A path that the mux redirects to its clean form, sent as is.
	req := mustRequest(t, http.MethodGet, e.instances[0].URL+"/healthz", "", "")
	req.URL.Opaque = "/junk-label-1/../healthz"
	resp, err := http.DefaultTransport.RoundTrip(req) // not following the redirect
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		t.Fatalf("GET /junk-label-1/../healthz = %d, want the mux's redirect", resp.StatusCode)
	}
	long := "Q" + strings.Repeat("x", 10000)
	e.post(0, "", "query "+long+" { __typename }", nil)

	resp, err = e.client.Get(e.instances[0].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	if strings.Contains(text, "junk-label-1") {
		t.Error("a client's path became a route label")
	}
	if strings.Contains(text, "Qxxxxxxxx") || !strings.Contains(text, `wxlogin_graphql_requests_total{operation="other",outcome="ok",type="query"} 1`) {
		t.Error("a 10,000-byte operation name became a label, or was not counted as other")
	}
	if strings.Contains(e.logs.String(), strings.Repeat("x", 100)) {
		t.Error("the access line holds the whole 10,000-byte operation name")
	}
}
