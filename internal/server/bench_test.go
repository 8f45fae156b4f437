package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// BenchmarkServe runs `me` and its floor, `{ __typename }`, through the whole handler
// (middleware, GraphQL, the session cache, the access log) in process, so that the
// difference between the two is the work `me` adds, without the network or the load
// generator. `make bench` measures the same over loopback (docs/benchmarks.md).
func BenchmarkServe(b *testing.B) {
	for _, backend := range testdb.Backends(b) {
		b.Run(backend.Name, func(b *testing.B) {
			e := newEnv(b, backend, func(e *env) { e.productionLog = true })
			token := e.mustLogin(0, e.fake.IssueCode(newPerson("bench", "").app1))
			me, err := os.ReadFile("../../clients/documents/Me.graphql")
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range []struct {
				name, doc, token string
				refused          bool // by a limit, before validation
			}{
				{"typename", "{ __typename }", "", false},
				{"me", string(me), token.Token, false},
				{"meid", "{ me { id } }", token.Token, false},
				// The worst document the limits refuse: as many fields as the parser
				// takes, all of one name, which validation would compare pairwise.
				{"refused_4990_fields", "{ " + strings.Repeat("__typename ", 4990) + "}", "", true},
			} {
				body, _ := json.Marshal(map[string]string{"query": c.doc})
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
							req.Header.Set("Content-Type", "application/json")
							req.Header.Set("Accept", "application/graphql-response+json")
							if c.token != "" {
								req.Header.Set("Authorization", "Bearer "+c.token)
							}
							w := httptest.NewRecorder()
							e.handlers[0].ServeHTTP(w, req)
							if refused := bytes.Contains(w.Body.Bytes(), []byte("past the limit of")); refused != c.refused || (!refused && (w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)))) {
								b.Fatalf("%s: %d %.300s", c.name, w.Code, w.Body)
							}
						}
					})
				})
			}
		})
	}
}

// BenchmarkMeAfterAFlood measures `me` before and after a flood of distinct documents,
// of 230 aliased fields each, just under 4 KiB (3,000 of them, 12 MB of text): the query
// cache keeps them within its budget, so the heap, the collections per request and
// `me`'s cost stay as they were. gc/op is the collections per request.
func BenchmarkMeAfterAFlood(b *testing.B) {
	backend := testdb.Backends(b)[0] // SQLite: the database is not what is measured
	e := newEnv(b, backend, func(e *env) { e.productionLog = true })
	token := e.mustLogin(0, e.fake.IssueCode(newPerson("bench", "").app1)).Token
	me, err := os.ReadFile("../../clients/documents/Me.graphql")
	if err != nil {
		b.Fatal(err)
	}
	post := func(doc, token string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]string{"query": doc})
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		e.handlers[0].ServeHTTP(w, req)
		if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
			b.Fatalf("%d %.300s", w.Code, w.Body)
		}
		return w
	}
	gcs := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	run := func(name string) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			metrics.Read(gcs)
			before := gcs[0].Value.Uint64()
			for b.Loop() {
				post(string(me), token)
			}
			metrics.Read(gcs)
			b.ReportMetric(float64(gcs[0].Value.Uint64()-before)/float64(b.N), "gc/op")
			b.ReportMetric(float64(gcs[1].Value.Uint64())/(1<<20), "live-MiB")
		})
	}
	run("me")
	for i := range 3000 {
		var doc strings.Builder
		fmt.Fprintf(&doc, "query Flood%d {", i)
		for f := range 230 { // just under 4 KiB, the most an earlier cache kept
			fmt.Fprintf(&doc, " f%d: __typename", f)
		}
		doc.WriteString(" }")
		post(doc.String(), "")
	}
	run("me_after_flood")
}

// BenchmarkAliasedFields sends, as a logged-in user, one document of many aliases of a
// field that reaches the database, on MariaDB: what each request costs the server and
// the database (statements/op, from the server's Questions counter, and audit rows/op).
// The limits refuse both before anything runs; docs/benchmarks.md has the figures of
// the code before them.
func BenchmarkAliasedFields(b *testing.B) {
	var backend testdb.Backend
	for _, bk := range testdb.Backends(b) {
		if bk.Name == "mysql" {
			backend = bk
		}
	}
	if backend.Name == "" {
		b.Skip("needs MariaDB, for its count of statements")
	}
	e := newEnv(b, backend, func(e *env) { e.productionLog = true })
	token := e.mustLogin(0, e.fake.IssueCode(newPerson("bench", "").app1)).Token
	questions := func() int64 {
		var name string
		var n int64
		if err := e.db.SQL.QueryRow("SHOW GLOBAL STATUS LIKE 'Questions'").Scan(&name, &n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	for _, c := range []struct{ name, op, field string }{
		{"logoutAll_x499", "mutation", "logoutAll(keepCurrent: true)"},
		{"sessions_x499", "query", "sessions { id }"},
	} {
		var doc strings.Builder
		doc.WriteString(c.op + " {")
		for i := range 499 {
			fmt.Fprintf(&doc, " a%d: %s", i, c.field)
		}
		doc.WriteString(" }")
		body, _ := json.Marshal(map[string]string{"query": doc.String()})
		b.Run(c.name, func(b *testing.B) {
			ctx := b.Context()
			rows := e.db.AuditEvent.Query().CountX(ctx)
			asked := questions()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				w := httptest.NewRecorder()
				e.handlers[0].ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %.300s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(questions()-asked-1)/float64(b.N), "statements/op")
			b.ReportMetric(float64(e.db.AuditEvent.Query().CountX(ctx)-rows)/float64(b.N), "audit-rows/op")
		})
	}
}
