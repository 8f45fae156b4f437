package persisted

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func TestCacheKeepsWithinItsBytesLeastRecentlyUsedOut(t *testing.T) {
	c := newCache(1000)
	doc := func(i int) string { return strings.Repeat(string(rune('a'+i)), 136) } // 64+136 = 200 bytes each
	for i := range 5 {
		c.add(Hash(doc(i)), doc(i))
	}
	c.get(Hash(doc(0))) // 0 is now the most recently used; 1 the least
	c.add(Hash(doc(5)), doc(5))
	if _, ok := c.get(Hash(doc(1))); ok {
		t.Error("the least recently used document survived a full cache")
	}
	for _, i := range []int{0, 2, 3, 4, 5} {
		if got, ok := c.get(Hash(doc(i))); !ok || got != doc(i) {
			t.Errorf("document %d lost", i)
		}
	}
	if c.size > c.max {
		t.Errorf("cache holds %d bytes, past its %d", c.size, c.max)
	}
	big := strings.Repeat("x", 300)
	c.add(Hash(big), big)
	if _, ok := c.get(Hash(big)); ok {
		t.Error("a document of more than a quarter of the cache was kept")
	}
}

func TestCanonicalIgnoresSpacingAndComments(t *testing.T) {
	parse := func(s string) string {
		doc, err := parser.ParseQuery(&ast.Source{Input: s})
		if err != nil {
			t.Fatal(err)
		}
		printed, _ := Canonical(doc)
		return printed
	}
	a := parse("query Me { me { id openid } }")
	b := parse("# who am I\nquery Me {\n\tme {\n\t\tid\n\t\topenid # mine\n\t}\n}\n")
	if a != b {
		t.Errorf("two texts of one document print differently:\n%s\n%s", a, b)
	}
	if c := parse("query Me { me { openid id } }"); c == a {
		t.Error("a different document printed the same")
	}
}

func TestManifestIDsMustBeTheirBodiesHashes(t *testing.T) {
	if _, err := ParseManifest([]byte(`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"00","name":"X","type":"query","body":"{ a }"}]}`)); err == nil {
		t.Error("a manifest whose id is not its body's hash was accepted")
	}
	if _, err := ParseManifest([]byte(`{"operations":[]}`)); err == nil {
		t.Error("a file without the manifest format was accepted")
	}
	m := Builtin()
	names := map[string]bool{}
	for _, op := range m.Operations {
		names[op.Name] = true
	}
	for _, want := range []string{"Login", "Me", "Logout", "Sessions", "RevokeSession", "LogoutAll", "UpdateProfile", "BindPhoneNumber", "DecryptOpenData"} {
		if !names[want] {
			t.Errorf("the built-in manifest lacks %s", want)
		}
	}
}

func TestAllowListOfAForeignManifestIgnoresFormatting(t *testing.T) {
	// A manifest as Apollo's tools print it: another spacing than ours.
	body := "query Me {\n  me {\n    id\n  }\n}"
	raw := `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + Hash(body) + `","name":"Me","type":"query","body":` + strconv.Quote(body) + `}]}`
	m, err := ParseManifest([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	e := New(AllowList, m, 1<<20, 5000)
	for _, text := range []string{body, "query Me { me { id } }", "# mine\nquery Me {\n\tme { id }\n}"} {
		if !e.allowed(text) {
			t.Errorf("%q is the manifest's document, but not allowed", text)
		}
	}
	if e.allowed("query Me { me { id openid } }") {
		t.Error("another document was allowed")
	}
	if _, err := ParseManifest([]byte(`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + Hash("{ me {") + `","name":"X","type":"query","body":"{ me {"}]}`)); err == nil {
		t.Error("a manifest with a body that does not parse was accepted")
	}
}

// TestVariableDirectivesAreNeverAllowed: gqlparser's formatter drops directives on
// variable definitions, so a document with one has no canonical print and matches no
// manifest document, even one that is otherwise the same.
func TestVariableDirectivesAreNeverAllowed(t *testing.T) {
	doc, err := parser.ParseQuery(&ast.Source{Input: "query ($a: Int @d) { a(x: $a) }"})
	if err != nil {
		t.Fatal(err)
	}
	if printed, ok := Canonical(doc); ok {
		t.Errorf("Canonical printed %q for a document with a variable directive", printed)
	}
	body := "query ($a: Int) {\n  a(x: $a)\n}\n"
	m, err := ParseManifest([]byte(`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + Hash(body) + `","name":"A","type":"query","body":` + strconv.Quote(body) + `}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := New(AllowList, m, 1<<20, 5000)
	if !e.allowed(body) {
		t.Fatal("setup: the manifest's own document is not allowed")
	}
	if e.allowed("query ($a: Int @d) { a(x: $a) }") {
		t.Error("a document with a directive on its variable passed for the manifest's")
	}
}
