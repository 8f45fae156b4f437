package wxclient_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's genqlient recipe works as written in a fresh module: this runs its
// block with $WXLOGIN set to this repository, then builds and vets a program that
// calls the functions it made. The Go commands run offline (GOPROXY=off), from the
// module cache this repository's own build filled: the recipe's versions must be the
// ones go.mod has.
func TestGenqlientRecipeInAFreshModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds genqlient in a fresh module")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- The genqlient recipe:[^\n]*-->\n```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no genqlient recipe block")
	}
	recipe := string(m[1])
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/Khan/genqlient", "golang.org/x/tools", "github.com/vektah/gqlparser/v2"} {
		v := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + ` (v\S+)`).FindSubmatch(gomod)
		if v == nil || !strings.Contains(recipe, mod+"@"+string(v[1])) {
			t.Errorf("the recipe does not ask for %s at go.mod's version (%s)", mod, v)
		}
	}

	dir := t.TempDir()
	env := append(os.Environ(), "WXLOGIN="+root, "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=", "GOWORK=off")
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "mod", "init", "example.com/shop")
	run("bash", "-euo", "pipefail", "-c", recipe)
	program := `package main

import (
	"context"
	"fmt"
	"net/http"

	"example.com/shop/wxlogin"
	"github.com/Khan/genqlient/graphql"
)

func main() {
	c := graphql.NewClient("http://127.0.0.1:8080/graphql", http.DefaultClient)
	login, err := wxlogin.Login(context.Background(), c, "dev-alice", nil)
	if err == nil {
		fmt.Println(login.Login.Token != "", login.Login.User.Openid)
	}
	me, err := wxlogin.Me(context.Background(), c)
	fmt.Println(me.Me.Id, err)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	run("go", "build", "./...")
	run("go", "vet", "./...")
}
