package graph

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestTopLevelMembers: the split bodyParams takes its parameters from, and the bodies it
// leaves to the careful path, so that a key sent twice is never silently dropped.
func TestTopLevelMembers(t *testing.T) {
	for body, want := range map[string][]string{
		`{}`:                                     {},
		`{"query":"{ me { id } }"}`:              {"query", `"{ me { id } }"`},
		` { "query" : "q" , "variables" : {} } `: {"query", `"q"`, "variables", `{}`},
		`{"a":1,"b":{"a":2,"c":[1,{"x":"}\"a\""}]},"c":-3.5e2 }`: {"a", "1", "b", `{"a":2,"c":[1,{"x":"}\"a\""}]}`, "c", "-3.5e2"},
		`{"v":["{","}",","],"w":"\\","x":null}`:                  {"v", `["{","}",","]`, "w", `"\\"`, "x", "null"},
		`{"query":"\u00e9\ud83d\ude00\n\/\"\\"}`:                 {"query", `"\u00e9\ud83d\ude00\n\/\"\\"`},
		// Left to the careful path: a key twice, a key with an escape, not an object.
		`{"a":1,"b":2,"a":3}`:         nil,
		`{"q\"uery":"x","query":"y"}`: nil,
		`{"quer\u0079":"x"}`:          nil,
		`["query"]`:                   nil,
		`"query"`:                     nil,
		// Left to the careful path, which names what is wrong: text that is not JSON.
		"{\"query\":\"a\x01b\"}":             nil, // a control character in a string
		`{"query":"\x"}`:                     nil,
		`{"query":"\u12G4"}`:                 nil,
		`{"query":"abc}`:                     nil,
		`{"query" "x"}`:                      nil,
		`{"query":"x",}`:                     nil,
		`{"query":"x" "y":1}`:                nil,
		`{"query":"x"} x`:                    nil,
		`{"query":tru}`:                      nil,
		`{"query":"x","variables":{"a":1}`:   nil,
		`{"query":"x","variables":{"a":1,}}`: nil,
		`{"query":}`:                         nil,
		`{`:                                  nil,
	} {
		members, ok := topLevelMembers([]byte(body))
		if want == nil {
			if ok {
				t.Errorf("topLevelMembers(%s) split it, want the careful path", body)
			}
			continue
		}
		var got []string
		for _, m := range members {
			got = append(got, string(m.key), string(m.value))
		}
		if !ok || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("topLevelMembers(%s) = %q, %v; want %q", body, got, ok, want)
		}
	}
	// A duplicate is refused with its name, not decoded as the last one.
	if _, err := bodyParams(strings.NewReader(`{"query":"{ __typename }","query":"{ me { id } }"}`)); err == nil {
		t.Error("a body with the key query twice was accepted")
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
