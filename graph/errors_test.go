package graph

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/go-sql-driver/mysql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// TestDatabaseOutageCodes: a database that cannot be reached, or a request that ran out
// of time waiting for it, answers UNAVAILABLE; WeChat's troubles keep their own code,
// and a database that is merely in the wrong state is INTERNAL.
func TestDatabaseOutageCodes(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"connection refused", fmt.Errorf("auth: looking up a session: %w", refused), CodeUnavailable},
		{"connection dropped or stalled", fmt.Errorf("auth: looking up a session: %w", mysql.ErrInvalidConn), CodeUnavailable},
		{"bad connection", driver.ErrBadConn, CodeUnavailable},
		{"too many connections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, CodeUnavailable},
		{"the user's connections used up", fmt.Errorf("auth: looking up a session: %w", &mysql.MySQLError{Number: 1226, Message: "User 'wxlogin' has exceeded the 'max_user_connections' resource (current value: 4)"}), CodeUnavailable},
		{"more than max_user_connections", &mysql.MySQLError{Number: 1203, Message: "User wxlogin already has more than 'max_user_connections' active connections"}, CodeUnavailable},
		{"dial cut short by the client leaving", fmt.Errorf("auth: looking up a session: %w", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}), CodeInternal},
		{"out of time waiting", fmt.Errorf("auth: looking up a session: %w", context.DeadlineExceeded), CodeUnavailable},
		{"wechat timed out", fmt.Errorf("login: %w", wechat.ErrUnavailable), CodeWeChatUnavailable},
		{"code still being exchanged", claim.ErrBusy, CodeWeChatUnavailable},
		{"closed pool", fmt.Errorf("auth: looking up a session: %w", sql.ErrConnDone), CodeInternal},
		{"duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, CodeInternal},
		{"client went away", context.Canceled, CodeInternal},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("%s: ErrorCode = %s, want %s", c.name, got, c.want)
		}
	}
}

// TestRecoverLogsTheStack: a recovered panic is logged with the stack that led to it,
// so that an operator can find the line that panicked.
func TestRecoverLogsTheStack(t *testing.T) {
	var logs bytes.Buffer
	recoverFunc := Recover(slog.New(slog.NewJSONHandler(&logs, nil)))
	var err error
	func() {
		defer func() { err = recoverFunc(context.Background(), recover()) }()
		resolverBug()
	}()
	var line struct{ Msg, Panic, Stack string }
	if jerr := json.Unmarshal(logs.Bytes(), &line); jerr != nil {
		t.Fatalf("%v: %s", jerr, logs.Bytes())
	}
	if err == nil || ErrorCode(err) != CodeInternal || line.Panic != "a resolver's bug" ||
		!strings.Contains(line.Stack, "graph.resolverBug") || !strings.Contains(line.Stack, "errors_test.go") {
		t.Errorf("recovered %v; logged %q with panic %q and stack:\n%s\nwant the stack down to this test's line", err, line.Msg, line.Panic, line.Stack)
	}
}

func resolverBug() { panic("a resolver's bug") }

// TestLoggedPathIsClipped: a field's path is the client's aliases, so an internal
// error's line shows at most the first 256 bytes of it.
func TestLoggedPathIsClipped(t *testing.T) {
	var logs bytes.Buffer
	present := ErrorPresenter(slog.New(slog.NewJSONHandler(&logs, nil)))
	alias := strings.Repeat("a", 10<<10)
	ctx := graphql.WithFieldContext(context.Background(), &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Alias: alias}}})
	if e := present(ctx, errors.New("a bug")); e.Extensions["code"] != CodeInternal {
		t.Fatalf("code %v, want INTERNAL", e.Extensions["code"])
	}
	if !strings.Contains(logs.String(), "graphql: internal error") || strings.Contains(logs.String(), strings.Repeat("a", 257)) {
		t.Errorf("the internal error's line is %d bytes; want the 10 KiB alias clipped to 256:\n%.400s", logs.Len(), logs.String())
	}
}
