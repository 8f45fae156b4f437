package graph

import (
	"encoding/json"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// queryOnlyGET serves queries over GET and refuses mutations with 405, so that a link or
// an image tag can never change anything. Unlike gqlgen's GET alone, every refusal goes
// through the error presenter and so carries its code.
type queryOnlyGET struct{ transport.GET }

func (t queryOnlyGET) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	q := r.URL.Query()
	for _, name := range []string{"variables", "extensions"} {
		if v := q.Get(name); v != "" && !json.Valid([]byte(v)) {
			refuse(w, r, exec, http.StatusBadRequest, "The "+name+" parameter is not valid JSON.")
			return
		}
	}
	if doc, err := parser.ParseQuery(&ast.Source{Input: q.Get("query")}); err == nil {
		if op := doc.Operations.ForName(q.Get("operationName")); op != nil && op.Operation != ast.Query {
			w.Header().Set("Allow", "POST")
			refuse(w, r, exec, http.StatusMethodNotAllowed, "GET serves queries only: send "+string(op.Operation)+"s as POST with a JSON body.")
			return
		}
	}
	t.GET.Do(w, r, exec)
}

// unsupported answers every request no other transport takes: another method, or a POST
// that is not JSON (form posts would let another site send mutations).
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if r.Method == http.MethodPost {
		refuse(w, r, exec, http.StatusUnsupportedMediaType, "POST /graphql takes a JSON body: set Content-Type: application/json.")
		return
	}
	w.Header().Set("Allow", "GET, POST, OPTIONS")
	refuse(w, r, exec, http.StatusMethodNotAllowed, "/graphql takes GET for queries and POST for everything.")
}

func refuse(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, msg string) {
	resp := exec.DispatchError(r.Context(), gqlerror.List{{Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(resp)
}
