package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/phonecode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestKeysOfLoginRows: the rows 64 first logins write are keyed by time-ordered UUIDs
// (v7) on InnoDB and SQLite, and on TiDB by random ones (v4) in clustered primary keys,
// so that the inserts of a peak spread over the whole key range of every table instead
// of all landing in its last region.
func TestKeysOfLoginRows(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		svc, fake := loginService(t, b, Policy{})
		users := make([]fakewechat.User, 64)
		for i := range users {
			users[i] = fakewechat.User{OpenID: fmt.Sprintf("oKeys%03d", i)}
		}
		if _, errs := loginsAtOnce(svc, fake, users); errors.Join(errs...) != nil {
			t.Fatal(errors.Join(errs...))
		}
		tidb := b.Name == "mysql" && strings.Contains(testdb.MySQLServerVersion(t), "TiDB")
		ctx := context.Background()
		for _, table := range []string{user.Table, identity.Table, session.Table, logincode.Table, auditevent.Table} {
			rows, err := svc.db.SQL.QueryContext(ctx, "SELECT id FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			versions, leading := map[uuid.Version]int{}, map[byte]bool{}
			for rows.Next() {
				var id uuid.UUID
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				n++
				versions[id.Version()]++
				leading[id.String()[0]] = true
			}
			rows.Close()
			want := uuid.Version(7)
			if tidb {
				want = 4
			}
			if n < 64 || versions[want] != n {
				t.Errorf("%s: %d rows, ids by UUID version %v, want every one version %d", table, n, versions, want)
			}
			if tidb && len(leading) < 12 {
				t.Errorf("%s: the ids of %d rows begin with %d of the 16 hex digits: the inserts do not spread", table, n, len(leading))
			}
		}
		if !tidb {
			return
		}
		for _, table := range []string{user.Table, identity.Table, session.Table, logincode.Table, phonecode.Table, auditevent.Table} {
			var name, ddl string
			if err := svc.db.SQL.QueryRowContext(ctx, "SHOW CREATE TABLE "+table).Scan(&name, &ddl); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ddl, "PRIMARY KEY (`id`) /*T![clustered_index] CLUSTERED */") {
				t.Errorf("%s on TiDB is not clustered by its random id:\n%s", table, ddl)
			}
		}
	})
}
