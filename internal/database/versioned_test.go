package database_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/database/migrations"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

func mysqlBackend(t *testing.T) testdb.Backend {
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			return b
		}
	}
	t.Skip("versioned migrations are MySQL's")
	return testdb.Backend{}
}

// mariaDB is the MySQL backend when it is MariaDB, whose DDL the files are; on TiDB or
// MySQL itself the test says why it does not run.
func mariaDB(t *testing.T) testdb.Backend {
	b := mysqlBackend(t)
	if v := testdb.MySQLServerVersion(t); !strings.Contains(strings.ToLower(v), "mariadb") {
		t.Skipf("the migration files are MariaDB's DDL; on %s start-up keeps to ent's automatic migration", v)
	}
	return b
}

func migrationFiles(t *testing.T) []string {
	names, err := fs.Glob(migrations.Files, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	return names
}

// TestVersionedMigrationsOnAFreshDatabase: a new database gets the committed files,
// each recorded as applied; a second start finds nothing to do.
func TestVersionedMigrationsOnAFreshDatabase(t *testing.T) {
	b := mariaDB(t)
	ctx := context.Background()
	url := b.URL(t)
	db, err := database.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM atlas_schema_revisions WHERE type = 2 AND applied = total").Scan(&applied)
	db.Close()
	if want := len(migrationFiles(t)); applied != want {
		t.Errorf("%d migrations recorded as run, want the %d files", applied, want)
	}
	st, err := database.MigrationStatus(ctx, url)
	if err != nil || len(st.Pending) != 0 || len(st.Applied) != len(migrationFiles(t)) {
		t.Errorf("status: %+v, %v", st, err)
	}
	if _, err := database.OpenMigrating(ctx, url, nil, false); err != nil {
		t.Errorf("a database up to date, with WXLOGIN_AUTO_MIGRATE=off: %v", err)
	}
}

// TestAutoMigratedDatabaseMovesOntoTheFiles: a database an earlier version made with
// its automatic migration, and filled, is refused with auto-migration off (naming
// `wxlogin migrate up`), and brought onto the files by migrate up without losing a row.
func TestAutoMigratedDatabaseMovesOntoTheFiles(t *testing.T) {
	b := mariaDB(t)
	ctx := context.Background()
	url := b.URL(t)
	driverName, dsn, dia, err := database.DSN(url)
	if err != nil {
		t.Fatal(err)
	}
	// The previous release's code path: ent's automatic migration, then some rows.
	drv, err := entsql.Open(dia, dsn)
	if err != nil {
		t.Fatal(driverName, err)
	}
	legacy := ent.NewClient(ent.Driver(drv))
	if err := legacy.Schema.Create(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := legacy.User.Create().SetID(uuid.Must(uuid.NewV7())).SetNickname("Legacy").SetCreatedAt(now).SetLastLoginAt(now).SaveX(ctx)
	id := legacy.Identity.Create().SetID(uuid.Must(uuid.NewV7())).SetAppid("wxlegacy").SetOpenid("oLegacy").SetSessionKey([]byte("sealed")).
		SetUserID(u.ID).SetCreatedAt(now).SetUpdatedAt(now).SaveX(ctx)
	legacy.Session.Create().SetID(uuid.Must(uuid.NewV7())).SetTokenHash(make([]byte, 32)).SetUserID(u.ID).SetIdentityID(id.ID).
		SetCreatedAt(now).SetExpiresAt(now.Add(time.Hour)).SetLastSeenAt(now).SaveX(ctx)
	legacy.Close()

	if st, err := database.MigrationStatus(ctx, url); err != nil || len(st.Applied) != 0 || len(st.Pending) != len(migrationFiles(t)) {
		t.Errorf("status of the auto-migrated database: %+v, %v; want every file pending", st, err)
	}
	_, err = database.OpenMigrating(ctx, url, nil, false)
	if !errors.Is(err, database.ErrBehind) || !strings.Contains(err.Error(), "wxlogin migrate up") {
		t.Fatalf("with auto-migration off: %v, want ErrBehind naming wxlogin migrate up", err)
	}
	if err := database.MigrateUp(ctx, url, nil); err != nil {
		t.Fatal(err)
	}
	db, err := database.OpenMigrating(ctx, url, nil, false)
	if err != nil {
		t.Fatalf("after migrate up, with auto-migration off: %v", err)
	}
	defer db.Close()
	if n := db.User.Query().CountX(ctx); n != 1 {
		t.Errorf("%d users after the migration, want the 1 there was", n)
	}
	if got := db.User.GetX(ctx, u.ID); got.Nickname == nil || *got.Nickname != "Legacy" {
		t.Errorf("the user after the migration: %+v", got)
	}
	if n := db.Session.Query().CountX(ctx); n != 1 {
		t.Errorf("%d sessions after the migration, want 1", n)
	}
	st, err := database.MigrationStatus(ctx, url)
	if err != nil || len(st.Pending) != 0 || len(st.Applied) == 0 {
		t.Errorf("status after migrate up: %+v, %v", st, err)
	}
}
