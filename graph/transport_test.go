package graph

import "testing"

func TestDuplicateKey(t *testing.T) {
	for _, c := range []struct {
		json string
		dup  bool
		key  string
	}{
		{`{}`, false, ""},
		{`{"a": 1, "b": 2}`, false, ""},
		{`{"a": 1, "a": 2}`, true, "a"},
		{`{"a": {"b": 1}, "b": {"a": 1}, "c": [{"a": 1}, {"a": 2}]}`, false, ""},
		{`{"a": [1, {"x": 1, "y": [], "x": 2}]}`, true, "x"},
		{`{"a": {"b": {"c": {}}}, "d": 1, "a": 2}`, true, "a"},
		{`{"": 1, "": 2}`, true, ""},
		{`[{"a": 1}, {"a": 1}]`, false, ""},
		{`"a string"`, false, ""},
	} {
		if key, dup := duplicateKey([]byte(c.json)); dup != c.dup || key != c.key {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q, %v", c.json, key, dup, c.key, c.dup)
		}
	}
}
