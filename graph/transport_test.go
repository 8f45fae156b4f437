package graph

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestBodyParams: a body is taken when it is one JSON object whose parameters have
// their types; anything else is refused, with a key sent twice (at any depth) named
// rather than one of its values silently dropped.
func TestBodyParams(t *testing.T) {
	for body, want := range map[string]string{
		// Taken: the query, or "ok" for bodies without one worth comparing.
		`{"query":"{ me { id } }"}`:                                                       "{ me { id } }",
		` { "query" : "q" , "variables" : {} } `:                                          "q",
		`{"query":"\u00e9\ud83d\ude00\n\/\"\\"}`:                                          "é😀\n/\"\\",
		`{"query":"q","variables":{"a":1,"b":{"a":2,"c":[1,{"x":"}\"a\""}]},"c":-3.5e2}}`: "q",
		`{"query":"q","variables":{"a":{"b":1},"b":{"a":1},"c":[{"a":1},{"a":2}]}}`:       "q",
		`{"query":"q","operationName":null,"variables":null,"extensions":null}`:           "q",
		// Refused.
		`{"a":1,"b":2,"a":3}`:                               `has the key "a" twice`,
		`{"query":"q","quer\u0079":"x"}`:                    `has the key "query" twice`,
		`{"query":"q","variables":{"a":[1,{"x":1,"x":2}]}}`: `has the key "x" twice`,
		`{"query":"q","variables":{"":1,"":2}}`:             `has the key "" twice`,
		`["query"]`:                                         "must be one JSON object",
		`"query"`:                                           "must be one JSON object",
		"{\"query\":\"a\x01b\"}":                            "must be one JSON object", // a control character in a string
		`{"query":"\x"}`:                                    "must be one JSON object",
		`{"query":"\u12G4"}`:                                "must be one JSON object",
		`{"query":"abc}`:                                    "must be one JSON object",
		`{"query" "x"}`:                                     "must be one JSON object",
		`{"query":"x",}`:                                    "must be one JSON object",
		`{"query":"x"} x`:                                   "must be one JSON object",
		`{"query":"x"} {}`:                                  "must be one JSON object",
		`{"query":tru}`:                                     "must be one JSON object",
		`{"query":"x","variables":{"a":1}`:                  "must be one JSON object",
		`{`:                                                 "must be one JSON object",
		``:                                                  "must be one JSON object",
		`{"query":5}`:                                       "query parameter must be a string",
		`{"query":"q","variables":[]}`:                      "variables parameter must be a JSON object",
		`{"variables":{}}`:                                  "has no query",
		`{"query":"q","variables":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`: "nests more than 64 levels deep",
	} {
		p, err := bodyParams(strings.NewReader(body))
		switch {
		case err != nil && !strings.Contains(err.Error(), want):
			t.Errorf("bodyParams(%s): %v, want %q", body, err, want)
		case err == nil && p.Query != want:
			t.Errorf("bodyParams(%s) took the query %q, want %q", body, p.Query, want)
		}
	}
	p, err := bodyParams(strings.NewReader(`{"query":"q","variables":{"n":5,"f":[true,null,"s"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := p.Variables["n"].(float64); !ok || n != 5 {
		t.Errorf("the number 5 decoded as %#v, want float64(5): a json.Number would pass for a String", p.Variables["n"])
	}
}

// TestMarshalResponse: writing data around gqlgen's output gives the bytes
// encoding/json gives, escapes included, and errors still go through encoding/json.
func TestMarshalResponse(t *testing.T) {
	for _, data := range []string{
		`{"me":null}`,
		`{"me":{"id":"1","nickname":"小明","avatarUrl":"https://a/b?c=d"}}`,
		`{"me":{"nickname":"<script>&amp;</script>"}}`,
		"{\"me\":{\"nickname\":\"a\u2028b\u2029c\"}}",
		`{"me":{"nickname":"\u00e2\u0080"}}`,
		"{\"me\":{\"nickname\":\"€⁂ a\u2029\"}}", // other E2 characters before the one escaped
		"{\"me\":{\"nickname\":\"€ …\"}}",
		"{\"me\":{\"nickname\":\"\u2028\"}}",
		`null`,
	} {
		resp := &graphql.Response{Data: json.RawMessage(data)}
		got, err := marshalResponse(resp)
		want, _ := json.Marshal(wireResponse{Data: resp.Data})
		if err != nil || string(got) != string(want) {
			t.Errorf("marshalResponse(%s) = %s, %v; encoding/json gives %s", data, got, err, want)
		}
	}
	resp := &graphql.Response{Errors: gqlerror.List{{Message: "no"}}}
	got, _ := marshalResponse(resp)
	if want, _ := json.Marshal(wireResponse{Errors: resp.Errors}); string(got) != string(want) {
		t.Errorf("an error response is %s, want %s", got, want)
	}
}
