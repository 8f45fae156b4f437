// Package reqlog carries what the GraphQL layer learns about a request (the operation,
// the error codes it answered with) back out to the access line and the metrics written
// when the request ends.
package reqlog

import "context"

// Entry is what is known about one request.
type Entry struct {
	Operation     string   // the operation's name; "" when anonymous or unknown
	OperationType string   // query or mutation; "" when the request never got that far
	ErrorCodes    []string // extensions.code of each error in the response, in order
}

type key struct{}

// With returns a context carrying a new, empty entry.
func With(ctx context.Context) (context.Context, *Entry) {
	e := &Entry{}
	return context.WithValue(ctx, key{}, e), e
}

// From returns the context's entry, or nil when there is none.
func From(ctx context.Context) *Entry {
	e, _ := ctx.Value(key{}).(*Entry)
	return e
}

// Outcome is "ok" for a response without errors, else its first error code.
func (e *Entry) Outcome() string {
	if len(e.ErrorCodes) == 0 {
		return "ok"
	}
	return e.ErrorCodes[0]
}
