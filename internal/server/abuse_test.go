package server_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

// aliased is an operation of n aliases of one field: "mutation { a0: logout a1: logout … }".
func aliased(op string, n int, field string) string {
	var b strings.Builder
	b.WriteString(op + " {")
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, field)
	}
	b.WriteString(" }")
	return b.String()
}

// TestLimitsComeBeforeValidation: validation costs the square of a document's fields
// (4,990 fields took 1.4 s of it), so the field and spread limits refuse a document
// before it is validated: a document past them gets the limit's answer even when it
// would not validate, and the largest documents that pass are as wide as GraphiQL needs.
func TestLimitsComeBeforeValidation(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		var chain strings.Builder
		chain.WriteString("{ ...F0 }")
		for i := range 16 {
			fmt.Fprintf(&chain, " fragment F%d on Query { ...F%d }", i, i+1)
		}
		chain.WriteString(" fragment F16 on Query { __typename }")
		for _, c := range []struct{ name, doc, says string }{
			{"4,990 fields", "{ " + strings.Repeat("__typename ", 4990) + "}", "asks for 4990 fields once its fragments are expanded, past the limit of 250"},
			// Validation would refuse it: the limit answers first.
			{"4,989 fields and one unknown", "{ " + strings.Repeat("__typename ", 4989) + "nosuchfield }", "asks for 4990 fields once its fragments are expanded, past the limit of 250"},
			{"251 aliases", aliased("query", 251, "__typename"), "asks for 251 fields once its fragments are expanded, past the limit of 250"},
			// Validation walks a fragment that no operation spreads as well.
			{"an unused fragment of 251 fields", "{ __typename } fragment F on Query { " + strings.Repeat("__typename ", 251) + "}", "asks for 252 fields"},
			{"17 spreads in a chain", chain.String(), "spreads fragments 17 times once they are expanded, past the limit of 16"},
		} {
			r := e.post(0, "", c.doc, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Data != nil || !strings.Contains(r.Errors[0].Message, c.says) {
				t.Errorf("%s: %q %v, data %v; want BAD_USER_INPUT saying %q, and no data", c.name, r.Code(), r.Errors, r.Data, c.says)
			}
		}

		graphiql, err := os.ReadFile("../../graph/testdata/graphiql-introspection.graphql")
		if err != nil {
			t.Fatal(err)
		}
		for name, doc := range map[string]string{
			"GraphiQL's schema query (220 fields, 10 spreads)": string(graphiql),
			"250 aliases": aliased("query", 250, "__typename"),
		} {
			if r := e.post(0, "", doc, nil); r.Code() != "" {
				t.Errorf("%s: %v", name, r.Errors)
			}
		}
	})
}

// TestAliasesCannotMultiplyWork: a field that reaches the database costs a share of the
// complexity budget and a mutation runs at most five fields, so that aliases cannot
// turn one request into hundreds of transactions or queries; a refused request runs
// nothing. The client documents, one field each, pass.
func TestAliasesCannotMultiplyWork(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		phone := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		tablet := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		logoutAlls := func() int {
			return e.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventLogoutAll)).CountX(ctx)
		}

		for _, c := range []struct{ name, doc, says string }{
			{"499 aliased logoutAll", aliased("mutation", 499, "logoutAll(keepCurrent: true)"), "The mutation asks for 499 fields, past the limit of 5 a request"},
			{"6 aliased logoutAll", aliased("mutation", 6, "logoutAll(keepCurrent: true)"), "The mutation asks for 6 fields, past the limit of 5 a request"},
			{"6 mutations through a fragment", "mutation { ...M ...M } fragment M on Mutation { a: logoutAll(keepCurrent: true) b: logoutAll(keepCurrent: true) c: logoutAll(keepCurrent: true) }", "The mutation asks for 6 fields"},
			{"249 aliased sessions", aliased("query", 249, "sessions { id }"), "asks for 498 fields once its fragments are expanded, past the limit of 250"},
			{"20 aliased sessions", aliased("query", 20, "sessions { id }"), "The query costs 1020, past the complexity limit of 1000"},
			{"a login and a profile update", `mutation { login(code: "x") { token } updateProfile(input: {nickname: "x"}) { id } u: updateProfile(input: {nickname: "y"}) { id } l: logout d: logout }`, "past the complexity limit of 1000"},
		} {
			r := e.post(0, phone, c.doc, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Data != nil || !strings.Contains(r.Errors[0].Message, c.says) {
				t.Errorf("%s: %q %v, data %v; want BAD_USER_INPUT saying %q, and no data", c.name, r.Code(), r.Errors, r.Data, c.says)
			}
		}
		if n := logoutAlls(); n != 0 {
			t.Errorf("%d logoutAll audit rows after refused requests, want 0", n)
		}
		if _, c := e.me(0, tablet); c != "" {
			t.Errorf("the other session after refused logoutAlls: %s, want it still live", c)
		}
		if e.fake.Calls() != 2 {
			t.Errorf("%d WeChat calls, want the 2 logins'", e.fake.Calls())
		}

		// At the limits: five mutations run, five transactions; 19 lists of sessions.
		if r := e.post(0, phone, aliased("mutation", 5, "logoutAll(keepCurrent: true)"), nil); r.Code() != "" {
			t.Errorf("5 aliased logoutAll: %v", r.Errors)
		}
		if n := logoutAlls(); n != 5 {
			t.Errorf("%d logoutAll audit rows after 5 aliased logoutAll, want 5", n)
		}
		if r := e.post(0, phone, aliased("query", 19, "sessions { id }"), nil); r.Code() != "" {
			t.Errorf("19 aliased sessions: %v", r.Errors)
		}
		if n := e.db.Session.Query().Where(session.RevokedAtIsNil()).CountX(ctx); n != 1 {
			t.Errorf("%d live sessions, want the one that ran logoutAll", n)
		}
	})
}

// TestFieldsAfterALogoutRunWithoutTheSession: a mutation's fields run in order, and once
// one ends the request's own session the ones after it have none: the update after a
// logout answers UNAUTHENTICATED and changes nothing; after a logoutAll that keeps the
// current session, or a revokeSession of another, the next field still runs.
func TestFieldsAfterALogoutRunWithoutTheSession(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		for _, c := range []struct{ name, doc string }{
			{"logout", `mutation { logout u: updateProfile(input: {nickname: "after"}) { nickname } }`},
			{"logoutAll", `mutation { logoutAll u: updateProfile(input: {nickname: "after"}) { nickname } }`},
		} {
			p := e.mustLogin(0, e.fake.IssueCode(alice))
			r := e.post(0, p.Token, c.doc, nil)
			if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "UNAUTHENTICATED" || fmt.Sprint(r.Errors[0].Path) != "[u]" {
				t.Errorf("%s, then an update: %v, want UNAUTHENTICATED for u alone", c.name, r.Errors)
			}
			if u := e.db.User.GetX(ctx, mustUUID(t, p.User.ID)); u.Nickname != nil {
				t.Errorf("%s, then an update: the nickname is %q, want none", c.name, *u.Nickname)
			}
		}
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		r := e.post(0, p.Token, `mutation { logoutAll(keepCurrent: true) u: updateProfile(input: {nickname: "kept"}) { nickname } }`, nil)
		if r.Code() != "" {
			t.Errorf("logoutAll(keepCurrent: true), then an update: %v, want both to run", r.Errors)
		}
	})
}
