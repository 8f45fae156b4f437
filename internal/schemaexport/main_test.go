package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wxlogin/wxlogin/graph"
)

// TestArtifactsDescribeTheServedSchema reads the written artifacts back as a client
// generator would, and checks that they describe every type and field the server has.
func TestArtifactsDescribeTheServedSchema(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	served := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	want := fieldsOf(served)
	if len(want) < 20 {
		t.Fatalf("the served schema has only %d fields: %v", len(want), want)
	}

	sdl, err := os.ReadFile(filepath.Join(dir, "schema.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: string(sdl)})
	if gerr != nil {
		t.Fatalf("the SDL does not load: %v", gerr)
	}
	if got := fieldsOf(parsed); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the SDL describes\n%v\nthe server serves\n%v", got, want)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "introspection.json"))
	if err != nil {
		t.Fatal(err)
	}
	var intro struct {
		Data struct {
			Schema struct {
				Types []struct {
					Name   string
					Fields []struct{ Name string }
				}
			} `json:"__schema"`
		}
	}
	if err := json.Unmarshal(raw, &intro); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ty := range intro.Data.Schema.Types {
		if strings.HasPrefix(ty.Name, "__") {
			continue
		}
		for _, f := range ty.Fields {
			got = append(got, ty.Name+"."+f.Name)
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the introspection JSON describes\n%v\nthe server serves\n%v", got, want)
	}
}

// fieldsOf lists Type.field for every object type of a schema but the built-in ones.
func fieldsOf(s *ast.Schema) []string {
	var out []string
	for name, def := range s.Types {
		if strings.HasPrefix(name, "__") || def.Kind != ast.Object {
			continue
		}
		for _, f := range def.Fields {
			if !strings.HasPrefix(f.Name, "__") {
				out = append(out, name+"."+f.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}
