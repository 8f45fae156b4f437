package graph

import (
	"encoding/json"
	"testing"
)

// TestDuplicateKeys: a key twice in one object, at any depth, is found both ways (the
// count that decides whether to look, and the reading that names the key); the same
// key in different objects, and colons inside strings, are no duplicates.
func TestDuplicateKeys(t *testing.T) {
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
		{`{"k:\"": "v:\\", "k2": ":{\":"}`, false, ""},
		{`{"k:\"": 1, "k:\"": 2}`, true, "k:\""},
	} {
		var v map[string]any
		if err := json.Unmarshal([]byte(c.json), &v); err != nil {
			t.Fatal(err)
		}
		if counted := membersIn([]byte(c.json)) != keysIn(v); counted != c.dup {
			t.Errorf("%s: members %d, keys decoded %d; want a duplicate: %v", c.json, membersIn([]byte(c.json)), keysIn(v), c.dup)
		}
		if key, dup := duplicateKey([]byte(c.json)); dup != c.dup || key != c.key {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q, %v", c.json, key, dup, c.key, c.dup)
		}
	}
}
