// Fuzz targets for GraphQL over HTTP as a client sends it: the POST body, the GET
// parameters, the Accept and Content-Type headers, and the whole transport. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzParams$' -fuzztime 10m -parallel 1 ./graph
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/persisted"
)

// paramSeeds are request parameters as a POST body; FuzzParams also reads each as a
// GET query string.
var paramSeeds = []string{
	`{"query":"{ me { id nickname } }"}`,
	`{"query":"mutation Login($code: String!) { login(code: $code) { token } }","operationName":"Login","variables":{"code":"0a1b2c"}}`,
	`{"query":null,"operationName":null,"variables":null,"extensions":null}`,
	`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`,
	`{"query":"{ me { id } }","query":"{ __typename }"}`,
	`{"query":"{ me { id } }","variables":[]}`,
	`{"operationName":"a\\\\","query":"query Me {\n  me { id }\n}\n","variables":{"k":"\"\\\\\""}}`,
	`{"query":5}`,
	"{\"query\":\"a\tb\"}",
	`{"query":"\u00e9\uD83D\uDE00","variables":{"a":[1,2.5e-3,true,false,null]}}`,
	`{"query":"\u00G9"}`,
	`{"query":"x",}`,
	`{"query":"x" "variables":{}}`,
	`{ "query" : "x" , "variables" : { } } `,
	`{"query":"{ me { id } }"} {"query":"again"}`,
	`{"query":"{ me { id } }"`,
	`[{"query":"{ me { id } }"}]`,
	`{}`,
	``,
	`"query"`,
	"{\"query\":\"\xff\"}",
	`query=%7B+me+%7B+id+%7D+%7D&variables=%7B%7D`,
	`query={__typename}&query={__typename}`,
	`query={__typename}&variables=&operationName=`,
	`query={__typename}&variables=not+json`,
	`query=%ff`,
	`extensions={"persistedQuery":{"version":1,"sha256Hash":"abc"}}`,
}

// FuzzParams reads fuzzed bytes as a POST body and as a GET query string: never a
// panic; a refusal is an input error (400 with BAD_USER_INPUT); what is taken has a
// query or a persisted query's hash, and its query is the one the request sent.
func FuzzParams(f *testing.F) {
	for _, s := range paramSeeds {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := bodyParams(bytes.NewReader(data))
		checkParams(t, "body", err, p != nil && (p.Query != "" || p.Extensions["persistedQuery"] != nil))
		if err == nil {
			if !utf8.Valid(data) || !json.Valid(data) {
				t.Fatalf("bodyParams took %q, which is not JSON in UTF-8", data)
			}
			var fields map[string]any
			if err := json.Unmarshal(data, &fields); err != nil {
				t.Fatalf("bodyParams took %q, which is not a JSON object: %v", data, err)
			}
			if q, _ := fields["query"].(string); q != p.Query {
				t.Fatalf("bodyParams read the query %q from %q", p.Query, data)
			}
		}
		q, err := url.ParseQuery(string(data))
		if err != nil {
			return // net/http would not have parsed it either
		}
		p, err = urlParams(q)
		checkParams(t, "query string", err, p != nil && (p.Query != "" || p.Extensions["persistedQuery"] != nil))
		if err == nil && len(q["query"]) == 1 && p.Query != q.Get("query") {
			t.Fatalf("urlParams read the query %q from %q", p.Query, data)
		}
	})
}

func checkParams(t *testing.T, from string, err error, hasDocument bool) {
	t.Helper()
	if err != nil {
		if ie := (*input.Error)(nil); !errors.As(err, &ie) || err.Error() == "" {
			t.Fatalf("the %s was refused with %v (%T), not an input error", from, err, err)
		}
		return
	}
	if !hasDocument {
		t.Fatalf("the %s was taken without a query or a persisted query", from)
	}
}

// FuzzNegotiate: reading Accept and Content-Type never panics; a blank Accept gets
// application/json; a refusal (406) answers in application/json; a type is only chosen
// when the header names it, application/* or */*; and Content-Type is JSON only when
// it says application/json.
func FuzzNegotiate(f *testing.F) {
	for _, c := range [][2]string{
		{"", "application/json"},
		{"application/graphql-response+json, application/json;q=0.9", "application/json; charset=utf-8"},
		{"application/json", "application/json;charset=UTF8"},
		{"*/*", "application/json; charset=latin1"},
		{"application/*;q=0.5, application/json;q=0.5", "Application/JSON"},
		{"text/html", "text/plain"},
		{"application/json;q=0", "application/graphql"},
		{"application/json;q=abc, */*;q=2", "application/json;"},
		{"application/json;q=NaN", "application/json; charset=\"utf-8\""},
		{"application/json;q=1e-400", "application/x-www-form-urlencoded"},
		{" , ;, ;q=1", "multipart/form-data; boundary=x"},
		{"application/graphql-response+json;q=0.001", ";;;"},
	} {
		f.Add(c[0], c[1])
	}

	f.Fuzz(func(t *testing.T, accept, contentType string) {
		media, ok := negotiate([]string{accept})
		lower := strings.ToLower(accept)
		switch {
		case strings.TrimSpace(accept) == "":
			if media != mediaJSON || !ok {
				t.Fatalf("a blank Accept %q gave %s, %v", accept, media, ok)
			}
		case !ok:
			if media != mediaJSON {
				t.Fatalf("the refusal of Accept %q answers in %s", accept, media)
			}
		case !strings.Contains(lower, media) && !strings.Contains(lower, "application/*") && !strings.Contains(lower, "*/*"):
			t.Fatalf("Accept %q gave %s, which it does not name", accept, media)
		}
		if isJSON(contentType) && !strings.Contains(strings.ToLower(contentType), mediaJSON) {
			t.Fatalf("Content-Type %q was taken as JSON", contentType)
		}
	})
}

// FuzzTransport sends fuzzed requests through the real handler (no services: a field
// that needs one fails with INTERNAL, which is still an answer): never a 5xx, a panic or
// a hang; the answer is JSON in the negotiated type, with errors that each carry a code,
// and a data entry only when the operation ran (200).
func FuzzTransport(f *testing.F) {
	for i, s := range paramSeeds {
		f.Add(uint8(i), "application/json", "application/json", "", []byte(s))
		f.Add(uint8(0), "application/graphql-response+json", "application/json", s, []byte(nil))
	}
	f.Add(uint8(1), "", "application/json", "", []byte(`{"query":"mutation { logout }"}`))
	f.Add(uint8(0), "", "application/json", "query=mutation+%7B+logout+%7D", []byte(nil))
	f.Add(uint8(1), "text/html", "application/json", "", []byte(`{"query":"{ __typename }"}`))
	f.Add(uint8(1), "", "application/x-www-form-urlencoded", "", []byte(`query={__typename}`))
	f.Add(uint8(2), "", "", "", []byte(nil))
	f.Add(uint8(3), "", "application/json", "", []byte(`{"query":"{ __typename }"}`))
	f.Add(uint8(1), "", "application/json", "", []byte(`{"query":"{ __schema { types { name } } }"}`))
	f.Add(uint8(1), "", "application/json", "", []byte(`{"query":"query Q($n: Int) { __typename }","variables":{"n":1.5}}`))
	f.Add(uint8(1), "", "application/json", "", []byte(`{"query":"{ a: __typename b: __typename }","operationName":"Missing"}`))
	f.Add(uint8(1), "", "application/json", "", []byte(`{"query":"{ __typename }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"a9ce3ad1c1797cd8f77bd4fc4e2bf2dd0ea1cac1ca46b8a65e2e9e4b1e3c0a56"}}}`))

	h := NewHandler(&Resolver{}, slog.New(slog.DiscardHandler), Options{PersistedQueries: persisted.Automatic})
	methods := []string{http.MethodGet, http.MethodPost, http.MethodOptions, http.MethodPut}

	f.Fuzz(func(t *testing.T, method uint8, accept, contentType, rawQuery string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		r.Method = methods[int(method)%len(methods)]
		r.URL.RawQuery = rawQuery
		r.Header.Set("Accept", accept)
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %q, Accept %q: status %d: %s", r.Method, body, accept, w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent {
			if r.Method != http.MethodOptions {
				t.Fatalf("%s answered 204", r.Method)
			}
			return
		}
		media, ok := negotiate([]string{accept})
		if got := w.Header().Get("Content-Type"); got != media+"; charset=utf-8" {
			t.Fatalf("Accept %q: the answer is %q, want %s", accept, got, media)
		}
		if !ok && w.Code != http.StatusNotAcceptable {
			t.Fatalf("Accept %q takes neither type, but the status is %d", accept, w.Code)
		}
		var resp struct {
			Data   *json.RawMessage `json:"data"`
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("the answer is not JSON: %v: %s", err, w.Body)
		}
		if resp.Data == nil && len(resp.Errors) == 0 {
			t.Fatalf("the answer has neither data nor errors: %s", w.Body)
		}
		if resp.Data != nil && w.Code != http.StatusOK {
			t.Fatalf("status %d with a data entry: %s", w.Code, w.Body)
		}
		for _, e := range resp.Errors {
			if code, _ := e.Extensions["code"].(string); code == "" || e.Message == "" {
				t.Fatalf("an error without a code or a message: %s", w.Body)
			}
		}
	})
}
