package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

// apq posts a request with a persistedQuery extension; query may be empty to send the
// hash alone.
func apq(t *testing.T, e *env, accept, token, hash, query string, vars map[string]any) rawResponse {
	t.Helper()
	body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	if query != "" {
		body["query"] = query
	}
	if vars != nil {
		body["variables"] = vars
	}
	b, _ := json.Marshal(body)
	h := map[string]string{"Content-Type": "application/json", "Accept": accept}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return rawDo(t, e, http.MethodPost, "/graphql", h, string(b))
}

func apqGET(t *testing.T, e *env, token, hash string) rawResponse {
	t.Helper()
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hash + `"}}`
	return rawDo(t, e, http.MethodGet, "/graphql?extensions="+url.QueryEscape(ext), map[string]string{"Authorization": "Bearer " + token}, "")
}

func manifestOp(t *testing.T, name string) persisted.Operation {
	t.Helper()
	for _, op := range persisted.Builtin().Operations {
		if op.Name == name {
			return op
		}
	}
	t.Fatalf("the built-in manifest has no %s operation", name)
	return persisted.Operation{}
}

func openid(t *testing.T, r rawResponse, field string) string {
	t.Helper()
	var data map[string]struct {
		OpenID string `json:"openid"`
	}
	json.Unmarshal(r.body["data"], &data)
	return data[field].OpenID
}

func TestAutomaticPersistedQueries(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	token := e.mustLogin(0, e.fake.IssueCode(alice)).Token
	doc := `query MyMe { me { openid } }`
	hash := persisted.Hash(doc)

	// The hash alone, before the server has seen the document: send it whole.
	for _, accept := range []string{mediaJSON, mediaGQL} {
		r := apq(t, e, accept, token, hash, "", nil)
		want := map[string]int{mediaJSON: 200, mediaGQL: 400}[accept]
		if r.status != want || r.code() != "PERSISTED_QUERY_NOT_FOUND" || r.hasData() || !strings.Contains(r.raw, `"message":"PersistedQueryNotFound"`) {
			t.Errorf("unknown hash (%s) = %d %s, want %d PERSISTED_QUERY_NOT_FOUND with the protocol's message and no data", accept, r.status, r.raw, want)
		}
	}
	// A hash that is not the document's is refused, and remembers nothing.
	wrong := persisted.Hash("something else")
	if r := apq(t, e, mediaGQL, token, wrong, doc, nil); r.status != 400 || r.code() != "BAD_USER_INPUT" {
		t.Errorf("mismatched hash = %d %s, want 400 BAD_USER_INPUT", r.status, r.raw)
	}
	if r := apq(t, e, mediaGQL, token, wrong, "", nil); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("a mismatched hash was remembered: %s", r.raw)
	}
	// A document that does not validate is not remembered either.
	bad := `query Bad { me { nope } }`
	if r := apq(t, e, mediaGQL, token, persisted.Hash(bad), bad, nil); r.code() != "BAD_USER_INPUT" {
		t.Errorf("invalid document = %s", r.raw)
	}
	if r := apq(t, e, mediaGQL, token, persisted.Hash(bad), "", nil); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("an invalid document was remembered: %s", r.raw)
	}

	// Sent whole with its hash, it runs and is remembered; then the hash alone runs it,
	// over POST and over GET.
	if r := apq(t, e, mediaGQL, token, hash, doc, nil); r.status != 200 || openid(t, r, "me") != alice.OpenID {
		t.Fatalf("document with its hash = %d %s", r.status, r.raw)
	}
	if r := apq(t, e, mediaGQL, token, hash, "", nil); r.status != 200 || openid(t, r, "me") != alice.OpenID {
		t.Errorf("hash alone after registration = %d %s", r.status, r.raw)
	}
	if r := apqGET(t, e, token, hash); r.status != 200 || openid(t, r, "me") != alice.OpenID {
		t.Errorf("hash alone over GET = %d %s", r.status, r.raw)
	}

	// The client documents' hashes are known from the start, on every instance.
	e.addInstance()
	me := manifestOp(t, "Me")
	for i := range e.instances {
		body, _ := json.Marshal(map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": me.ID}}})
		req, _ := http.NewRequest(http.MethodPost, e.instances[i].URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		r := e.send(req)
		var data struct{ Me user }
		json.Unmarshal(r.Data["me"], &data.Me)
		if r.Code() != "" || data.Me.Openid != alice.OpenID {
			t.Errorf("instance %d: the manifest's Me by hash = %v", i, r.Errors)
		}
	}
	// A mutation by hash over GET is still refused.
	logout := manifestOp(t, "Logout")
	if r := apqGET(t, e, token, logout.ID); r.status != http.StatusMethodNotAllowed {
		t.Errorf("Logout by hash over GET = %d %s, want 405", r.status, r.raw)
	}
	if _, code := e.me(0, token); code != "" {
		t.Errorf("the session ended after a refused GET logout: %s", code)
	}
}

func TestAllowListRunsOnlyTheClientDocuments(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, func(e *env) {
			e.api = graph.Options{PersistedQueries: persisted.AllowList}
		})
		login, me := manifestOp(t, "Login"), manifestOp(t, "Me")

		// The client's Login, sent whole exactly as the manifest has it, logs in.
		r := rawDo(t, e, http.MethodPost, "/graphql", map[string]string{"Content-Type": "application/json"},
			mustJSON(map[string]any{"query": login.Body, "variables": map[string]any{"code": e.fake.IssueCode(alice)}}))
		var data struct {
			Login struct{ Token string }
		}
		json.Unmarshal(r.body["data"], &data)
		if data.Login.Token == "" {
			t.Fatalf("allow-listed Login = %d %s", r.status, r.raw)
		}
		token := data.Login.Token

		// Me as its file is written (comments, other spacing) runs too, and so does its hash.
		file, err := os.ReadFile("../../clients/documents/Me.graphql")
		if err != nil {
			t.Fatal(err)
		}
		if r := rawDo(t, e, http.MethodPost, "/graphql", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token},
			mustJSON(map[string]any{"query": string(file)})); openid(t, r, "me") != alice.OpenID {
			t.Errorf("Me as written in clients/documents = %s", r.raw)
		}
		if r := apq(t, e, mediaGQL, token, me.ID, "", nil); openid(t, r, "me") != alice.OpenID {
			t.Errorf("Me by hash = %s", r.raw)
		}
		// A client that hashes its own text of an allowed document (as Apollo's and urql's
		// links do) sends it once with that hash; then the hash alone runs it.
		own := persisted.Hash(string(file))
		if r := apq(t, e, mediaGQL, token, own, "", nil); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Errorf("the client's own hash before it sent the text = %s", r.raw)
		}
		if r := apq(t, e, mediaGQL, token, own, string(file), nil); openid(t, r, "me") != alice.OpenID {
			t.Errorf("the client's own text with its hash = %s", r.raw)
		}
		if r := apq(t, e, mediaGQL, token, own, "", nil); openid(t, r, "me") != alice.OpenID {
			t.Errorf("the client's own hash after it sent the text = %s", r.raw)
		}

		// Anything else is refused before it runs: 403 under graphql-response+json.
		calls := e.fake.Calls()
		for name, doc := range map[string]string{
			"a smaller query":        `{ me { openid } }`,
			"introspection":          `{ __schema { types { name } } }`,
			"another login":          `mutation { login(code: "` + e.fake.IssueCode(bob) + `") { token } }`,
			"a logout all":           `mutation { logoutAll }`,
			"a document not parsing": `{ me {`,
		} {
			for _, accept := range []string{mediaGQL, mediaJSON} {
				r := rawDo(t, e, http.MethodPost, "/graphql", map[string]string{"Content-Type": "application/json", "Accept": accept, "Authorization": "Bearer " + token},
					mustJSON(map[string]any{"query": doc}))
				want := map[string]int{mediaGQL: 403, mediaJSON: 200}[accept]
				if r.status != want || r.code() != "QUERY_NOT_ALLOWED" || r.hasData() {
					t.Errorf("%s (%s) = %d %s, want %d QUERY_NOT_ALLOWED without data", name, accept, r.status, r.raw, want)
				}
			}
		}
		// An unknown hash is not found, and sending its document does not register it.
		doc := `query Mine { me { id } }`
		if r := apq(t, e, mediaGQL, token, persisted.Hash(doc), "", nil); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Errorf("unknown hash = %s", r.raw)
		}
		if r := apq(t, e, mediaGQL, token, persisted.Hash(doc), doc, nil); r.code() != "QUERY_NOT_ALLOWED" {
			t.Errorf("unknown document with its hash = %s", r.raw)
		}
		if r := apq(t, e, mediaGQL, token, persisted.Hash(doc), "", nil); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Errorf("allow-list mode registered a document: %s", r.raw)
		}
		if e.fake.Calls() != calls {
			t.Errorf("refused documents reached WeChat %d times", e.fake.Calls()-calls)
		}
		if _, code := e.me(0, token); code != "QUERY_NOT_ALLOWED" {
			// The harness's own me query is not a client document either.
			t.Errorf("the harness's me = %q, want QUERY_NOT_ALLOWED", code)
		}
		if r := apq(t, e, mediaGQL, token, me.ID, "", nil); openid(t, r, "me") != alice.OpenID {
			t.Errorf("the session ended after refused documents: %s", r.raw)
		}
	})
}

func TestPersistedQueriesOff(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0], func(e *env) {
		e.api = graph.Options{PersistedQueries: persisted.Off}
	})
	me := manifestOp(t, "Me")
	if r := apq(t, e, mediaGQL, "", me.ID, "", nil); r.status != 400 || r.code() != "PERSISTED_QUERY_NOT_SUPPORTED" || !strings.Contains(r.raw, "PersistedQueryNotSupported") {
		t.Errorf("hash with persisted queries off = %d %s", r.status, r.raw)
	}
	if r := rawDo(t, e, http.MethodPost, "/graphql", map[string]string{"Content-Type": "application/json"}, `{"query": "{ __typename }"}`); r.status != 200 || !r.hasData() {
		t.Errorf("a whole document with persisted queries off = %d %s", r.status, r.raw)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
