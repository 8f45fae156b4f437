package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

func TestDocumentLimits(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		var wide strings.Builder
		wide.WriteString("{ ")
		for i := range 2000 {
			fmt.Fprintf(&wide, "f%d: __typename ", i)
		}
		wide.WriteString("}")
		deep := "{ me " + strings.Repeat("{ a ", 50) + strings.Repeat("} ", 50) + "}"
		for name, doc := range map[string]string{"2,000 fields": wide.String(), "50 levels deep": deep} {
			r := e.post(0, "", doc, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Data != nil {
				t.Errorf("%s: %q, data %v; want BAD_USER_INPUT and no data", name, r.Code(), r.Data)
			}
		}

		// 20 aliased logins with one code: refused before any runs.
		code := e.fake.IssueCode(alice)
		var many strings.Builder
		many.WriteString("mutation {")
		for i := range 20 {
			fmt.Fprintf(&many, " l%d: login(code: %q) { token }", i, code)
		}
		many.WriteString(" }")
		r := e.post(0, "", many.String(), nil)
		if r.Code() != "BAD_USER_INPUT" || e.fake.Calls() != 0 || e.count()["sessions"] != 0 {
			t.Errorf("20 aliased logins: %q, %d WeChat calls, %d sessions; want refused, 0 and 0", r.Code(), e.fake.Calls(), e.count()["sessions"])
		}

		// An 8 MiB body is refused with 413, and the server stays healthy.
		big := `{"query": "{ me { id } }", "variables": {"pad": "` + strings.Repeat("x", 8<<20) + `"}}`
		r = e.send(mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", big))
		if r.Status != http.StatusRequestEntityTooLarge || r.Code() != "BAD_USER_INPUT" {
			t.Errorf("8 MiB body = %d %q, want 413 BAD_USER_INPUT", r.Status, r.Code())
		}
		if _, c := e.login(0, e.fake.IssueCode(alice)); c != "" {
			t.Errorf("a login after the big body: %q", c)
		}
	})
}
