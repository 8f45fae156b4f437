package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

func TestHTTPEdge(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		base := e.instances[0].URL
		get := func(path string) (int, string, http.Header) {
			t.Helper()
			resp, err := e.client.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), resp.Header
		}

		if code, _, _ := get("/healthz"); code != 200 {
			t.Errorf("/healthz = %d", code)
		}
		if code, _, _ := get("/readyz"); code != 200 {
			t.Errorf("/readyz = %d with the database up", code)
		}
		if code, body, _ := get("/"); code != 200 || !strings.Contains(body, "/graphql") || !strings.Contains(strings.ToLower(body), "graphiql") {
			t.Errorf("playground = %d, want GraphiQL pointed at /graphql", code)
		}
		if code, _, _ := get("/nowhere"); code != 404 {
			t.Errorf("/nowhere = %d, want 404", code)
		}

		// GET serves queries, never mutations.
		r := e.send(mustRequest(t, http.MethodGet, base+"/graphql?query="+url.QueryEscape(`{ me { id } }`), "", ""))
		if r.Status != 200 || r.Code() != "UNAUTHENTICATED" {
			t.Errorf("GET query without a token = %d %q, want 200 UNAUTHENTICATED", r.Status, r.Code())
		}
		r = e.send(mustRequest(t, http.MethodGet, base+"/graphql?query="+url.QueryEscape(`mutation { login(code: "`+e.fake.IssueCode(alice)+`") { token } }`), "", ""))
		if r.Status != http.StatusMethodNotAllowed || r.Code() != "BAD_USER_INPUT" || r.Header.Get("Allow") != "POST" {
			t.Errorf("GET mutation = %d %q Allow=%q, want 405 BAD_USER_INPUT Allow=POST", r.Status, r.Code(), r.Header.Get("Allow"))
		}
		if e.fake.Calls() != 0 {
			t.Error("a GET mutation reached WeChat")
		}

		// No form posts: another site could send them from a browser.
		r = e.send(mustRequest(t, http.MethodPost, base+"/graphql", "application/x-www-form-urlencoded", "query=mutation+%7B+logout+%7D"))
		if r.Status != http.StatusUnsupportedMediaType || r.Code() != "BAD_USER_INPUT" {
			t.Errorf("form post = %d %q, want 415 BAD_USER_INPUT", r.Status, r.Code())
		}
		r = e.send(mustRequest(t, http.MethodPost, base+"/graphql", "application/json", `{"query": "mutation { login(code: \"code-marker-7f3a\") `))
		if r.Code() != "BAD_USER_INPUT" || len(r.Errors) != 1 || strings.Contains(r.Errors[0].Message, "code-marker-7f3a") {
			t.Errorf("broken JSON = %d %q %q, want BAD_USER_INPUT without the body echoed", r.Status, r.Code(), r.Errors)
		}
		big := `{"query": "` + strings.Repeat(" ", 2<<20) + `{ me { id } }"}`
		r = e.send(mustRequest(t, http.MethodPost, base+"/graphql", "application/json", big))
		if r.Status != http.StatusRequestEntityTooLarge || r.Code() != "BAD_USER_INPUT" {
			t.Errorf("2 MiB body = %d %q, want 413 BAD_USER_INPUT", r.Status, r.Code())
		}

		// The request id comes back, taken from the client when it is sane.
		req := mustRequest(t, http.MethodGet, base+"/healthz", "", "")
		req.Header.Set("X-Request-Id", "abc-123")
		resp, _ := e.client.Do(req)
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("X-Request-Id = %q, want abc-123", got)
		}

		e.login(0, e.fake.IssueCode(alice))
		if code, body, _ := get("/metrics"); code != 200 || !strings.Contains(body, `wxlogin_logins_total{outcome="OK"} 1`) || !strings.Contains(body, "process_resident_memory_bytes") {
			t.Errorf("/metrics = %d, want a login counted and process metrics:\n%.600s", code, body)
		}

		e.db.Close()
		if code, _, _ := get("/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d with the database closed, want 503", code)
		}
		if code, _, _ := get("/healthz"); code != 200 {
			t.Errorf("/healthz = %d with the database closed, want 200: the process is up", code)
		}
		// A database failure is INTERNAL, never a 5xx and never its details.
		if _, c := e.me(0, strings.Repeat("A", 43)); c != "INTERNAL" {
			t.Errorf("me with the database closed = %q, want INTERNAL", c)
		}
	})
}

func mustRequest(t *testing.T, method, url, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}
