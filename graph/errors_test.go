package graph

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/internal/auth"
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
		{"out of time waiting", fmt.Errorf("auth: looking up a session: %w", context.DeadlineExceeded), CodeUnavailable},
		{"wechat timed out", fmt.Errorf("login: %w", wechat.ErrUnavailable), CodeWeChatUnavailable},
		{"login code busy", auth.ErrCodeBusy, CodeWeChatUnavailable},
		{"closed pool", fmt.Errorf("auth: looking up a session: %w", sql.ErrConnDone), CodeInternal},
		{"duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, CodeInternal},
		{"client went away", context.Canceled, CodeInternal},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("%s: ErrorCode = %s, want %s", c.name, got, c.want)
		}
	}
}
