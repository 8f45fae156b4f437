package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
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
			}{
				{"typename", "{ __typename }", ""},
				{"me", string(me), token.Token},
				{"meid", "{ me { id } }", token.Token},
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
							if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
								b.Fatalf("%s: %d %s", c.name, w.Code, w.Body)
							}
						}
					})
				})
			}
		})
	}
}
