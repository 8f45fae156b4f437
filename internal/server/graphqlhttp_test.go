package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

const (
	mediaGQL  = "application/graphql-response+json"
	mediaJSON = "application/json"
)

// rawResponse is an HTTP answer read byte for byte, for the rules of GraphQL over HTTP.
type rawResponse struct {
	status int
	header http.Header
	body   map[string]json.RawMessage
	raw    string
}

func (r rawResponse) hasData() bool { _, ok := r.body["data"]; return ok }

func (r rawResponse) code() string {
	var errs []gqlError
	json.Unmarshal(r.body["errors"], &errs)
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].Extensions["code"].(string)
	return c
}

func (r rawResponse) mediaType() string {
	mt, _, _ := strings.Cut(r.header.Get("Content-Type"), ";")
	return mt
}

// rawDo sends one request as given and reads the answer without interpreting it.
func rawDo(t *testing.T, e *env, method, target string, header map[string]string, body string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.instances[0].URL+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := rawResponse{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 && json.Unmarshal(b, &r.body) != nil {
		t.Errorf("%s %s: the answer is not a JSON object: %s", method, target, b)
	}
	return r
}

// TestGraphQLOverHTTP checks each rule of the GraphQL-over-HTTP specification with raw
// HTTP requests: media types by Accept, status codes, and no data entry where the
// request never ran.
func TestGraphQLOverHTTP(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	postJSON := func(accept, body string) map[string]string {
		h := map[string]string{"Content-Type": "application/json"}
		if accept != "" {
			h["Accept"] = accept
		}
		return h
	}
	get := func(query string, extra url.Values) string {
		v := url.Values{"query": {query}}
		for k, vs := range extra {
			v[k] = vs
		}
		return "/graphql?" + v.Encode()
	}
	invalidUTF8 := "{\"query\": \"{ me { id } }\", \"operationName\": \"\xff\"}"

	cases := []struct {
		name    string
		method  string
		target  string
		header  map[string]string
		body    string
		status  int
		media   string
		data    bool   // whether the answer must have a data entry (it must not otherwise)
		code    string // the first error's code; "" for none
		allowed string // the Allow header, when the method is refused
	}{
		// The media type of the answer follows Accept.
		{name: "no Accept: application/json", method: "POST", target: "/graphql", header: postJSON("", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaJSON, data: true},
		{name: "Accept graphql-response+json", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaGQL, data: true},
		{name: "Accept as the spec's clients send it", method: "POST", target: "/graphql", header: postJSON(mediaGQL+", application/json;q=0.9", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaGQL, data: true},
		{name: "Accept preferring application/json by quality", method: "POST", target: "/graphql", header: postJSON(mediaGQL+";q=0.5, application/json", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaJSON, data: true},
		{name: "Accept */*: application/json", method: "POST", target: "/graphql", header: postJSON("*/*", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaJSON, data: true},
		{name: "Accept of neither: 406", method: "POST", target: "/graphql", header: postJSON("text/html", ""),
			body: `{"query": "{ __typename }"}`, status: 406, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "Accept refusing JSON but taking anything: graphql-response+json", method: "POST", target: "/graphql", header: postJSON("application/json;q=0, */*", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaGQL, data: true},
		{name: "Accept with a parameter of no value", method: "POST", target: "/graphql", header: postJSON("application/json; q=0.5; foo", ""),
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaJSON, data: true},
		{name: "Accept with a quality past 1 is not believed", method: "POST", target: "/graphql", header: postJSON("application/json;q=2", ""),
			body: `{"query": "{ __typename }"}`, status: 406, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "Accept taking JSON at q=0 only: 406", method: "POST", target: "/graphql", header: postJSON("application/json;q=0, text/html", ""),
			body: `{"query": "{ __typename }"}`, status: 406, media: mediaJSON, code: "BAD_USER_INPUT"},

		// POST takes JSON and nothing else.
		{name: "JSON with charset utf-8", method: "POST", target: "/graphql", header: map[string]string{"Content-Type": "application/json; charset=utf-8"},
			body: `{"query": "{ __typename }"}`, status: 200, media: mediaJSON, data: true},
		{name: "JSON in another charset: 415", method: "POST", target: "/graphql", header: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"},
			body: `{"query": "{ __typename }"}`, status: 415, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "no Content-Type: 415", method: "POST", target: "/graphql", header: map[string]string{},
			body: `{"query": "{ __typename }"}`, status: 415, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "text/plain (a form's way round preflight): 415", method: "POST", target: "/graphql", header: map[string]string{"Content-Type": "text/plain"},
			body: `{"query": "{ __typename }"}`, status: 415, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "application/graphql body: 415", method: "POST", target: "/graphql", header: map[string]string{"Content-Type": "application/graphql"},
			body: `{ __typename }`, status: 415, media: mediaJSON, code: "BAD_USER_INPUT"},

		// A body that is not a request: 400 whatever the media type, and no data.
		{name: "JSON parse failure (json)", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "JSON parse failure (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ __typename }`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "body is an array", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `[{"query": "{ __typename }"}]`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "empty body", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: ``, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "two JSON values", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ __typename }"} {}`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "query is a number", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": 42}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "query is missing", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"variables": {}}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "operationName is an object", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "operationName": {}}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "variables is a string", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "variables": "{}"}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "extensions is an array", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "extensions": []}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "a key twice", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "query": "mutation { logout }"}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "a key twice inside variables", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "mutation ($c: String!) { login(code: $c) { token } }", "variables": {"c": "x", "n": [{"a": 1, "b": {"a": 2}}], "c": "y"}}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "a key twice deep inside variables", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "variables": {"x": [{"a": 1}, {"a": 1, "b": {"c": 1, "c": 2}}]}}`, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "the same key in sibling objects of variables", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ __typename }", "variables": {"x": [{"a": 1}, {"a": 1, "b": {"a": 1}}], "a": {}}}`, status: 200, media: mediaJSON, data: true},
		{name: "invalid UTF-8", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: invalidUTF8, status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "null parameters are absent ones", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ __typename }", "operationName": null, "variables": null, "extensions": null}`, status: 200, media: mediaGQL, data: true},

		// A document that does not parse or validate, or variables that do not coerce:
		// 200 under application/json, 400 under graphql-response+json, no data either way.
		{name: "parse failure (json)", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ me { id "}`, status: 200, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "parse failure (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ me { id "}`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "validation failure (json)", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ nope }"}`, status: 200, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "validation failure (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ nope }"}`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "variable coercion failure (json)", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "mutation ($c: String!) { login(code: $c) { token } }", "variables": {"c": 5}}`, status: 200, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "variable coercion failure (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "mutation ($c: String!) { login(code: $c) { token } }", "variables": {"c": 5}}`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "operation cannot be determined (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "query A { __typename } query B { __typename }"}`, status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "the named operation is chosen", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "query A { __typename } query B { __typename }", "operationName": "B"}`, status: 200, media: mediaGQL, data: true},

		// An operation that ran: 200 and a data entry, null when a non-null field failed.
		{name: "field error (json)", method: "POST", target: "/graphql", header: postJSON(mediaJSON, ""),
			body: `{"query": "{ me { id } }"}`, status: 200, media: mediaJSON, data: true, code: "UNAUTHENTICATED"},
		{name: "field error (graphql-response)", method: "POST", target: "/graphql", header: postJSON(mediaGQL, ""),
			body: `{"query": "{ me { id } }"}`, status: 200, media: mediaGQL, data: true, code: "UNAUTHENTICATED"},

		// GET runs queries only.
		{name: "GET query", method: "GET", target: get("{ __typename }", nil), header: map[string]string{"Accept": mediaGQL},
			status: 200, media: mediaGQL, data: true},
		{name: "GET query with variables", method: "GET", target: get("query ($x: Boolean!) { __typename @include(if: $x) }", url.Values{"variables": {`{"x": true}`}}),
			status: 200, media: mediaJSON, data: true},
		{name: "GET with variables that are not JSON", method: "GET", target: get("{ __typename }", url.Values{"variables": {`{x`}}),
			status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "GET with the query twice", method: "GET", target: "/graphql?query=%7B__typename%7D&query=%7B__typename%7D",
			status: 400, media: mediaJSON, code: "BAD_USER_INPUT"},
		{name: "GET without a query", method: "GET", target: "/graphql", header: map[string]string{"Accept": mediaGQL},
			status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},
		{name: "GET mutation: 405", method: "GET", target: get("mutation { logout }", nil), header: map[string]string{"Accept": mediaGQL},
			status: 405, media: mediaGQL, code: "BAD_USER_INPUT", allowed: "POST"},
		{name: "GET mutation named among queries: 405", method: "GET", target: get("query Q { __typename } mutation M { logout }", url.Values{"operationName": {"M"}}),
			status: 405, media: mediaJSON, code: "BAD_USER_INPUT", allowed: "POST"},
		{name: "GET parse failure (graphql-response)", method: "GET", target: get("{", nil), header: map[string]string{"Accept": mediaGQL},
			status: 400, media: mediaGQL, code: "BAD_USER_INPUT"},

		// Other methods.
		{name: "PUT: 405", method: "PUT", target: "/graphql", header: postJSON("", ""), body: `{"query": "{ __typename }"}`,
			status: 405, media: mediaJSON, code: "BAD_USER_INPUT", allowed: "GET, POST, OPTIONS"},
		{name: "DELETE: 405", method: "DELETE", target: "/graphql",
			status: 405, media: mediaJSON, code: "BAD_USER_INPUT", allowed: "GET, POST, OPTIONS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawDo(t, e, c.method, c.target, c.header, c.body)
			if r.status != c.status {
				t.Errorf("status = %d, want %d: %s", r.status, c.status, r.raw)
			}
			if r.mediaType() != c.media || !strings.Contains(strings.ToLower(r.header.Get("Content-Type")), "charset=utf-8") {
				t.Errorf("Content-Type = %q, want %s; charset=utf-8", r.header.Get("Content-Type"), c.media)
			}
			if r.hasData() != c.data {
				t.Errorf("data entry present = %v, want %v: %s", r.hasData(), c.data, r.raw)
			}
			if got := r.code(); got != c.code {
				t.Errorf("code = %q, want %q: %s", got, c.code, r.raw)
			}
			if c.allowed != "" && r.header.Get("Allow") != c.allowed {
				t.Errorf("Allow = %q, want %q", r.header.Get("Allow"), c.allowed)
			}
			if !strings.Contains(r.header.Get("Cache-Control"), "no-store") || !strings.Contains(r.header.Get("Vary"), "Accept") {
				t.Errorf("Cache-Control = %q, Vary = %q: answers carry tokens and depend on Accept", r.header.Get("Cache-Control"), r.header.Get("Vary"))
			}
		})
	}
	if n := e.fake.Calls(); n != 0 {
		t.Errorf("refused requests made %d WeChat calls, want none", n)
	}

	// Accept sent as two header lines counts as one list.
	req := mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", `{"query": "{ __typename }"}`)
	req.Header.Add("Accept", "text/html")
	req.Header.Add("Accept", mediaGQL)
	if r := e.send(req); r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), mediaGQL) {
		t.Errorf("Accept in two lines = %d %s, want 200 %s", r.Status, r.Header.Get("Content-Type"), mediaGQL)
	}
}

// TestRefusedTransportsChangeNothing: a mutation that another site's page could send
// (a form post, a multipart post, a GET) is refused and changes nothing.
func TestRefusedTransportsChangeNothing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		auth := "Bearer " + token
		logout := `mutation { logout }`
		multipart := "--XyZ\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n" +
			`{"query": "mutation { logout }"}` + "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{}\r\n--XyZ--\r\n"
		for _, c := range []struct {
			name, method, target string
			header               map[string]string
			body                 string
			status               int
		}{
			{"form-encoded", "POST", "/graphql", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth},
				"query=" + url.QueryEscape(logout), http.StatusUnsupportedMediaType},
			{"multipart", "POST", "/graphql", map[string]string{"Content-Type": "multipart/form-data; boundary=XyZ", "Authorization": auth},
				multipart, http.StatusUnsupportedMediaType},
			{"text/plain JSON", "POST", "/graphql", map[string]string{"Content-Type": "text/plain", "Authorization": auth},
				`{"query": "mutation { logout }"}`, http.StatusUnsupportedMediaType},
			{"GET", "GET", "/graphql?query=" + url.QueryEscape(logout), map[string]string{"Authorization": auth}, "", http.StatusMethodNotAllowed},
		} {
			r := rawDo(t, e, c.method, c.target, c.header, c.body)
			if r.status != c.status || r.code() != "BAD_USER_INPUT" || r.hasData() {
				t.Errorf("%s logout = %d %q (data: %v), want %d BAD_USER_INPUT without data", c.name, r.status, r.code(), r.hasData(), c.status)
			}
		}
		if u, code := e.me(0, token); code != "" || u.ID == "" {
			t.Errorf("after refused logouts, me = %q: the session must still be live", code)
		}
	})
}
