// Package persisted serves persisted queries. In automatic mode (APQ) a client may send
// a document's SHA-256 instead of the document, and the server remembers the documents it
// has run. In allow-list mode only the documents of a manifest run, so that a leaked
// token cannot be used to send arbitrary queries. The manifest is generated from the
// client documents in the repository (clients/documents), in the format Apollo's tools
// read and write.
package persisted

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wxlogin/wxlogin/internal/input"
)

// Mode says which documents run.
type Mode string

const (
	// Automatic runs any document, and takes a known document's hash in its place.
	Automatic Mode = "apq"
	// AllowList runs only the documents of the manifest, sent whole or by hash.
	AllowList Mode = "allowlist"
	// Off runs any document sent whole, and refuses hashes.
	Off Mode = "off"
)

// ParseMode reads a mode's name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Automatic, AllowList, Off:
		return m, nil
	}
	return "", fmt.Errorf("must be %s, %s or %s", Automatic, AllowList, Off)
}

// The refusals. Their messages are the ones clients of the APQ protocol look for.
var (
	// ErrNotFound: the hash is of no document the server knows; send the document
	// along with its hash.
	ErrNotFound = errors.New("PersistedQueryNotFound")
	// ErrNotSupported: persisted queries are off.
	ErrNotSupported = errors.New("PersistedQueryNotSupported")
	// ErrNotAllowed: in allow-list mode, the document is not in the manifest.
	ErrNotAllowed = errors.New("the document is not in the server's allow-list")
)

// Hash is the id of a document: the hex SHA-256 of its text.
func Hash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// Extension is the gqlgen handler extension that resolves and checks persisted queries.
type Extension struct {
	mode       Mode
	known      map[string]string // manifest: id → document
	cache      *cache            // documents run in automatic mode
	tokenLimit int
}

// New makes the extension. The manifest's documents are known by hash in every mode but
// Off; in AllowList mode they are the only ones that run. cacheBytes bounds the memory
// that remembered documents take in Automatic mode; tokenLimit bounds the parse of a
// document checked against the allow-list.
func New(mode Mode, m *Manifest, cacheBytes, tokenLimit int) *Extension {
	e := &Extension{mode: mode, known: map[string]string{}, cache: newCache(cacheBytes), tokenLimit: tokenLimit}
	if m != nil {
		for _, op := range m.Operations {
			e.known[op.ID] = op.Body
			if op.canonical != "" {
				e.known[op.canonical] = op.Body // so that any formatting of it is allowed
			}
		}
	}
	return e
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationInterceptor
} = (*Extension)(nil)

// ExtensionName names the extension for gqlgen.
func (*Extension) ExtensionName() string { return "PersistedQueries" }

// Validate is called by gqlgen once, with the schema.
func (*Extension) Validate(graphql.ExecutableSchema) error { return nil }

// pendingKey marks, in the operation's stats, a document to remember once it validates.
const pendingKey = "persisted.pending"

// MutateOperationParameters fills in the document of a hash, checks a hash sent with
// its document, and in allow-list mode refuses unknown documents.
func (e *Extension) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	hash, sent, err := requestedHash(p.Extensions)
	if err != nil {
		return refusal(err)
	}
	if sent {
		if e.mode == Off {
			return refusal(ErrNotSupported)
		}
		if p.Query == "" {
			doc, ok := e.lookup(hash)
			if !ok {
				return refusal(ErrNotFound)
			}
			p.Query = doc
			return nil // a known document: from the manifest, or already validated here
		}
		if Hash(p.Query) != hash {
			return refusal(input.Errorf("The persistedQuery hash is not the SHA-256 of the query sent with it."))
		}
		if e.mode == AllowList && !e.allowed(p.Query) {
			return refusal(ErrNotAllowed)
		}
		// Remembered once it validates; in allow-list mode only allowed documents get
		// here, so a client hashing its own text of them can send the hash next time.
		graphql.GetOperationContext(ctx).Stats.SetExtension(pendingKey, hash)
		return nil
	}
	if e.mode == AllowList && !e.allowed(p.Query) {
		return refusal(ErrNotAllowed)
	}
	return nil
}

// InterceptOperation remembers a document sent with its hash, now that its operation is
// about to run: it has parsed, validated and passed every limit, so the cache never
// holds a document that cannot run.
func (e *Extension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	if hash, ok := op.Stats.GetExtension(pendingKey).(string); ok {
		e.cache.add(hash, op.RawQuery)
	}
	return next(ctx)
}

func (e *Extension) lookup(hash string) (string, bool) {
	if doc, ok := e.known[hash]; ok {
		return doc, true
	}
	return e.cache.get(hash) // Off never asks
}

// allowed says whether a document is in the manifest: as sent, or once formatted the
// way the manifest is, so that a client's own spacing and comments do not matter.
func (e *Extension) allowed(query string) bool {
	if _, ok := e.known[Hash(query)]; ok {
		return true
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, e.tokenLimit)
	if err != nil {
		return false
	}
	canonical, ok := Canonical(doc)
	if !ok {
		return false // no manifest document has directives on its variables
	}
	_, ok = e.known[Hash(canonical)]
	return ok
}

// requestedHash reads extensions.persistedQuery: {"version": 1, "sha256Hash": "…"}.
func requestedHash(ext map[string]any) (hash string, sent bool, err error) {
	raw, ok := ext["persistedQuery"]
	if !ok || raw == nil {
		return "", false, nil
	}
	pq, ok := raw.(map[string]any)
	if !ok {
		return "", true, input.Errorf("extensions.persistedQuery must be an object: {\"version\": 1, \"sha256Hash\": \"…\"}.")
	}
	if v := fmt.Sprint(pq["version"]); v != "1" {
		return "", true, input.Errorf("extensions.persistedQuery.version must be 1.")
	}
	hash, _ = pq["sha256Hash"].(string)
	if len(hash) != sha256.Size*2 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", true, input.Errorf("extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits.")
	}
	return hash, true, nil
}

func refusal(err error) *gqlerror.Error {
	msg := err.Error()
	if errors.Is(err, ErrNotAllowed) {
		msg = "This server runs only the documents in its allow-list, and this is not one of them: add it to the client documents and regenerate the manifest."
	}
	return &gqlerror.Error{Message: msg, Err: err}
}

// Manifest is a persisted query manifest, in Apollo's format.
type Manifest struct {
	Format     string      `json:"format"`
	Version    int         `json:"version"`
	Operations []Operation `json:"operations"`
}

// Operation is one document of a manifest.
type Operation struct {
	ID   string `json:"id"` // Hash(Body)
	Name string `json:"name"`
	Type string `json:"type"` // query, mutation or subscription
	Body string `json:"body"`

	canonical string // the hash of the body formatted the canonical way
}

// ManifestFormat is the format name Apollo's tools give a manifest.
const ManifestFormat = "apollo-persisted-query-manifest"

// ParseManifest reads a manifest and checks that every id is its document's hash.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a persisted query manifest: %w", err)
	}
	if m.Format != ManifestFormat || m.Version != 1 {
		return nil, fmt.Errorf("not a persisted query manifest: want format %q version 1", ManifestFormat)
	}
	for i, op := range m.Operations {
		if op.ID != Hash(op.Body) {
			return nil, fmt.Errorf("manifest operation %q: id is not the SHA-256 of its body", op.Name)
		}
		doc, err := parser.ParseQuery(&ast.Source{Input: op.Body})
		if err != nil {
			return nil, fmt.Errorf("manifest operation %q: the body does not parse: %w", op.Name, err)
		}
		canonical, ok := Canonical(doc)
		if !ok {
			return nil, fmt.Errorf("manifest operation %q: directives on variables are not supported", op.Name)
		}
		m.Operations[i].canonical = Hash(canonical)
	}
	return &m, nil
}
