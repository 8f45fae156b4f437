// Package extending_test keeps docs/extending.md true: it follows the guide on a copy
// of the repository (the worked example's files are in testdata/), regenerates with
// ent and gqlgen, and runs the example's end-to-end test there, so that a change to
// wxlogin that would break a team's own types breaks this test first.
package extending_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// root is the repository, from this package's folder.
const root = "../.."

func TestExtendingExample(t *testing.T) {
	if testing.Short() {
		t.Skip("copies the repository and regenerates it: not in -short")
	}
	work := t.TempDir()
	copyRepository(t, work)

	// Step 1 and 2 of the guide: the entity, the schema, the resolvers and a helper.
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata", path)
		return copyFile(path, filepath.Join(work, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Step 3: the new fields' costs, beside wxlogin's own.
	edit(t, filepath.Join(work, "graph", "handler.go"), "\tcfg.Complexity.Query.Sessions = read\n",
		"\tcfg.Complexity.Query.Sessions = read\n"+
			"\tcfg.Complexity.Query.MyNotes = read\n"+
			"\tcfg.Complexity.Mutation.AddNote = func(childComplexity int, _ string) int { return write(childComplexity) }\n")

	// Step 4: make generate's Go part, and the MySQL migration of the new table.
	run(t, work, "go", "generate", "./ent")
	run(t, work, "go", "generate", "./graph")
	if mysqlReachable(t) {
		run(t, work, "go", "run", "./tools/migrations", "-name", "add_notes")
		run(t, work, "go", "run", "./tools/migrations", "-check")
	}
	resolvers, err := os.ReadFile(filepath.Join(work, "graph", "notes.resolvers.go"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(resolvers, []byte("not implemented")) || !bytes.Contains(resolvers, []byte("r.Ent.Note.Create()")) {
		t.Fatalf("gqlgen did not keep the example's resolvers:\n%s", resolvers)
	}
	// Step 5: it builds, and the example's test passes through the real handler.
	run(t, work, "go", "vet", "./graph/...", "./internal/server/...")
	out := run(t, work, "go", "test", "-count=1", "-run", "^TestNotes$", "-v", "./internal/server/")
	if !strings.Contains(out, "--- PASS: TestNotes") {
		t.Fatalf("the example's test did not run:\n%s", out)
	}
}

// copyRepository copies the files git tracks into dir.
func copyRepository(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v (the test copies the repository git tracks)", err)
	}
	for name := range strings.SplitSeq(strings.TrimRight(string(list), "\x00"), "\x00") {
		if strings.HasPrefix(name, "internal/extending/") {
			continue // not this test itself
		}
		if err := copyFile(filepath.Join(root, name), filepath.Join(dir, name)); err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the working tree
			}
			t.Fatal(err)
		}
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// edit replaces old, which must be in the file once, with new.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte(old)) != 1 {
		t.Fatalf("%s no longer has %q once: update docs/extending.md and this test", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mysqlReachable says whether the tests have MariaDB, which writing a migration needs;
// under CI=true they must.
func mysqlReachable(t *testing.T) bool {
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			return true
		}
	}
	return false
}
