package server_test

import (
	"fmt"
	"io"
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
		// Introspection's types nest without end: a valid document past the depth limit
		// (introspection has a limit of its own, 24, so that GraphiQL's 15 levels pass).
		deep := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 20) + "{ name }" + strings.Repeat(" }", 20) + " } } } }"
		graphiql := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 10) + "{ name }" + strings.Repeat(" }", 10) + " } } } }"
		if r := e.post(0, "", graphiql, nil); r.Code() != "" {
			t.Errorf("a 15-level introspection query, as GraphiQL sends: %v", r.Errors)
		}
		for _, c := range []struct{ name, doc, says string }{
			{"2,000 fields", wide.String(), "more than 5000 tokens"},
			{"25 levels deep", deep, "nested 25 levels deep with introspection, past the limit of 24"},
		} {
			r := e.post(0, "", c.doc, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Data != nil || !strings.Contains(r.Errors[0].Message, c.says) {
				t.Errorf("%s: %q %v, data %v; want BAD_USER_INPUT saying %q, and no data", c.name, r.Code(), r.Errors, r.Data, c.says)
			}
		}

		// Fragments that each spread the next twice: 2^40 fields from a 1 KB document,
		// refused without expanding them (gqlgen's own count would run for days).
		var fan strings.Builder
		fan.WriteString("query Fan { ...F0 } ")
		for i := range 40 {
			fmt.Fprintf(&fan, "fragment F%d on Query { ...F%d ...F%d } ", i, i+1, i+1)
		}
		fan.WriteString("fragment F40 on Query { __typename }")
		if r := e.post(0, "", fan.String(), nil); r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "once its fragments are expanded") {
			t.Errorf("fragment fan-out: %v, want BAD_USER_INPUT naming the expanded field count", r.Errors)
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
		if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "The mutation asks for 20 fields, past the limit of 5") {
			t.Errorf("20 aliased logins: %v, want BAD_USER_INPUT naming the mutation limit", r.Errors)
		}
		if e.fake.Calls() != 0 || e.count()["sessions"] != 0 {
			t.Errorf("20 aliased logins: %q, %d WeChat calls, %d sessions; want refused, 0 and 0", r.Code(), e.fake.Calls(), e.count()["sessions"])
		}

		// An operation without variables is measured once and remembered by its text and
		// name: sent again it is refused again, and the other operation of the same
		// document is judged on its own, before and after.
		two := `query Light { me { id } } mutation Heavy { a: login(code: "x") { token } b: login(code: "y") { token } }`
		for round := range 2 {
			for op, want := range map[string]string{"Light": "UNAUTHENTICATED", "Heavy": "BAD_USER_INPUT"} {
				body := fmt.Sprintf(`{"query": %q, "operationName": %q}`, two, op)
				r := e.send(mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", body))
				if r.Code() != want || (want == "BAD_USER_INPUT" && !strings.Contains(r.Errors[0].Message, "The query costs 1202, past the complexity limit of 1000")) {
					t.Errorf("round %d, operation %s: %q %v; want %s", round+1, op, r.Code(), r.Errors, want)
				}
			}
		}
		if e.fake.Calls() != 0 {
			t.Errorf("the Heavy operation reached WeChat %d times, want 0", e.fake.Calls())
		}

		// An 8 MiB body is refused with 413, and the server stays healthy.
		big := `{"query": "{ me { id } }", "variables": {"pad": "` + strings.Repeat("x", 8<<20) + `"}}`
		r = e.send(mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", big))
		if r.Status != http.StatusRequestEntityTooLarge || r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "larger than 1 MiB") {
			t.Errorf("8 MiB body = %d %v, want 413 BAD_USER_INPUT naming the 1 MiB limit", r.Status, r.Errors)
		}
		// Sent in chunks, with no Content-Length to refuse it by, it is cut off at the limit.
		req := mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", "")
		req.Body = io.NopCloser(strings.NewReader(big)) // unknown length: chunked
		req.ContentLength = -1
		r = e.send(req)
		if r.Status != http.StatusRequestEntityTooLarge || r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "larger than 1 MiB") {
			t.Errorf("8 MiB chunked body = %d %v, want 413 BAD_USER_INPUT naming the 1 MiB limit", r.Status, r.Errors)
		}
		if _, c := e.login(0, e.fake.IssueCode(alice)); c != "" {
			t.Errorf("a login after the big body: %q", c)
		}
	})
}
