// Micro-benchmarks of error mapping: ErrorCode, which walks an error's chain to find its
// contract code, and the error presenter gqlgen calls on every error a resolver returns;
// and of reading a request's body.
//
// Run them with:
//
//	go test -run '^$' -bench . ./graph
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// benchError is an error a resolver returns, with the code the contract gives it.
type benchError struct {
	name string
	err  error
	code string
}

// benchErrors are representative resolver errors, each as its package makes it.
func benchErrors(b *testing.B) []benchError {
	b.Helper()
	_, unauthenticated := auth.CurrentFrom(context.Background()) // no credential in the context
	return []benchError{
		{"unauthenticated", unauthenticated, CodeUnauthenticated},
		{"wechat_invalid_code", invalidCodeError(b), CodeInvalidCode},
		{"input", input.Errorf("code must be the 1 to 128 character code from wx.login."), CodeBadUserInput},
		// Unknown errors miss every case: the longest walk, and the presenter logs them.
		{"unknown", fmt.Errorf("auth: looking up a session: %w", errors.New("driver: bad connection")), CodeInternal},
	}
}

// invalidCodeError is the error the WeChat client really returns for a code WeChat
// refuses (errcode 40029), got from the fake WeChat over HTTP.
func invalidCodeError(b *testing.B) error {
	const appID, secret = "wxbenchapp000001", "bench-app-secret-5c2e"
	fake := fakewechat.New(fakewechat.Options{AppID: appID, Secret: secret})
	srv := httptest.NewServer(fake)
	defer func() { fake.Close(); srv.Close() }()
	wc, err := wechat.New(wechat.Config{BaseURL: srv.URL, AppID: appID, Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	_, err = wc.Code2Session(context.Background(), "never-issued-code")
	if !errors.Is(err, wechat.ErrInvalidCode) {
		b.Fatalf("Code2Session with an unknown code = %v, want wechat.ErrInvalidCode", err)
	}
	return err
}

func BenchmarkErrorCode(b *testing.B) {
	for _, e := range benchErrors(b) {
		if got := ErrorCode(e.err); got != e.code {
			b.Fatalf("ErrorCode(%s) = %s, want %s", e.name, got, e.code)
		}
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ErrorCode(e.err)
			}
		})
	}
}

func BenchmarkErrorPresenter(b *testing.B) {
	present := ErrorPresenter(slog.New(slog.DiscardHandler))
	// As in a resolver: the error belongs to a field.
	ctx := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("login"))
	for _, e := range benchErrors(b) {
		if got := present(ctx, e.err).Extensions["code"]; got != e.code {
			b.Fatalf("presented %s with code %v, want %s", e.name, got, e.code)
		}
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				present(ctx, e.err)
			}
		})
	}
}

// BenchmarkBodyParams reads the body the mini-program SDK sends for `me`: its document
// (newlines escaped) and empty variables.
func BenchmarkBodyParams(b *testing.B) {
	doc, err := os.ReadFile("../clients/documents/Me.graphql")
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"query": string(doc), "variables": map[string]any{}})
	b.ReportAllocs()
	for b.Loop() {
		p, err := bodyParams(bytes.NewReader(body))
		if err != nil || p.Query != string(doc) {
			b.Fatalf("%v %q", err, p.Query)
		}
	}
}

// BenchmarkParseWorstRefused is the parse alone of the worst document the limits refuse
// (as many fields as the parser takes, all of one name): a refusal of it through the
// whole handler (BenchmarkServe/*/refused_4990_fields) should cost about this much.
func BenchmarkParseWorstRefused(b *testing.B) {
	src := &ast.Source{Input: "{ " + strings.Repeat("__typename ", 4990) + "}"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.ParseQueryWithTokenLimit(src, parserTokenLimit); err != nil {
			b.Fatal(err)
		}
	}
}
