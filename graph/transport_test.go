package graph

import (
	"strings"
	"testing"
)

// TestTopLevelKeys: the count bodyParams compares with the decoded object's size, so
// that a key sent twice is never silently dropped.
func TestTopLevelKeys(t *testing.T) {
	for body, want := range map[string]int{
		`{}`:                                     0,
		`{"query":"{ me { id } }"}`:              1,
		` { "query" : "q" , "variables" : {} } `: 2,
		`{"a":1,"b":{"a":2,"c":[1,{"x":"}\"a\""}]},"a":3}`: 3,
		`{"q\"uery":"x","query":"y"}`:                      2,
		`{"v":["{","}",","],"w":"\\","x":null}`:            3,
	} {
		if got := topLevelKeys([]byte(body)); got != want {
			t.Errorf("topLevelKeys(%s) = %d, want %d", body, got, want)
		}
	}
	// A duplicate is refused with its name, not decoded as the last one.
	if _, err := bodyParams(strings.NewReader(`{"query":"{ __typename }","query":"{ me { id } }"}`)); err == nil {
		t.Error("a body with the key query twice was accepted")
	}
}
