package database_test

import (
	"bytes"
	"context"
	"database/sql"
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
	// The previous release's code path: ent's automatic migration, which made what the
	// first file holds, then some rows.
	drv, err := entsql.Open(dia, dsn)
	if err != nil {
		t.Fatal(driverName, err)
	}
	initial, err := fs.ReadFile(migrations.Files, migrationFiles(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(initial), ";\n") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			if _, err := drv.DB().ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
	}
	legacy := ent.NewClient(ent.Driver(drv))
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := legacy.User.Create().SetID(uuid.Must(uuid.NewV7())).SetNickname("Legacy").SetCreatedAt(now).SetLastLoginAt(now).SaveX(ctx)
	id := legacy.Identity.Create().SetID(uuid.Must(uuid.NewV7())).SetAppid("wxlegacy").SetOpenid("oLegacy").SetSessionKey([]byte("sealed")).
		SetUserID(u.ID).SetCreatedAt(now).SetUpdatedAt(now).SaveX(ctx)
	// Its columns, not today's ent's: later versions add some.
	if _, err := drv.DB().ExecContext(ctx, "INSERT INTO sessions (id, token_hash, user_id, identity_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		uuid.Must(uuid.NewV7()), make([]byte, 32), u.ID, id.ID, now, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	insertIntClaim(t, drv.DB(), now)
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
	if kept := db.LoginCode.Query().AllX(ctx); len(kept) != 1 || kept[0].ID == uuid.Nil || kept[0].State != "done" {
		t.Errorf("login codes after the migration: %+v, want the earlier version's claim under a UUID", kept)
	}
	db.LoginCode.Create().SetCodeHash(make([]byte, 32)).SetLeaseUntil(now).SetExpiresAt(now).SaveX(ctx)
	st, err := database.MigrationStatus(ctx, url)
	if err != nil || len(st.Pending) != 0 || len(st.Applied) == 0 {
		t.Errorf("status after migrate up: %+v, %v", st, err)
	}
}

// insertIntClaim writes a login code's claim as versions before the UUID ids did, with
// an AUTO_INCREMENT id.
func insertIntClaim(t *testing.T, db *sql.DB, now time.Time) {
	t.Helper()
	_, err := db.Exec("INSERT INTO login_codes (id, code_hash, state, lease_until, expires_at, created_at) VALUES (7, ?, 'done', ?, ?, ?)",
		bytes.Repeat([]byte{7}, 32), now, now.Add(time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
}

// TestCodeClaimsMoveToUUIDs: a database on the first file, with a claim keyed by
// AUTO_INCREMENT, keeps the claim under a UUID after migrate up, and new claims get
// ids of their own.
func TestCodeClaimsMoveToUUIDs(t *testing.T) {
	b := mariaDB(t)
	ctx := context.Background()
	url := b.URL(t)
	if err := database.MigrateFirst(ctx, url, 1); err != nil {
		t.Fatal(err)
	}
	_, dsn, dia, err := database.DSN(url)
	if err != nil {
		t.Fatal(err)
	}
	drv, err := entsql.Open(dia, dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	insertIntClaim(t, drv.DB(), now)
	drv.Close()
	if err := database.MigrateUp(ctx, url, nil); err != nil {
		t.Fatal(err)
	}
	db, err := database.OpenMigrating(ctx, url, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kept := db.LoginCode.Query().OnlyX(ctx)
	if kept.ID == uuid.Nil || !bytes.Equal(kept.CodeHash, bytes.Repeat([]byte{7}, 32)) || kept.State != "done" {
		t.Errorf("the claim after the migration: id %v, state %s", kept.ID, kept.State)
	}
	made := db.LoginCode.Create().SetCodeHash(make([]byte, 32)).SetLeaseUntil(now).SetExpiresAt(now).SaveX(ctx)
	if made.ID == kept.ID || made.ID.Version() != 7 {
		t.Errorf("a new claim's id %v (version %d), the kept one's %v: want a new time-ordered UUID", made.ID, made.ID.Version(), kept.ID)
	}
}

// TestIntegerKeyedClaimsAreReplaced: on MySQL or TiDB, whose schema ent's automatic
// migration keeps, code-claim tables an earlier version keyed by AUTO_INCREMENT are
// made again with UUID ids at start-up (TiDB cannot change a clustered key's type).
func TestIntegerKeyedClaimsAreReplaced(t *testing.T) {
	b := mysqlBackend(t)
	if v := testdb.MySQLServerVersion(t); strings.Contains(strings.ToLower(v), "mariadb") {
		t.Skip("MariaDB moves claims onto UUIDs through the migration files (TestCodeClaimsMoveToUUIDs)")
	}
	ctx := context.Background()
	url := b.URL(t)
	_, dsn, dia, err := database.DSN(url)
	if err != nil {
		t.Fatal(err)
	}
	drv, err := entsql.Open(dia, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = drv.DB().ExecContext(ctx, "CREATE TABLE login_codes (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, code_hash binary(32) NOT NULL UNIQUE, state enum('pending','done','failed') NOT NULL DEFAULT 'pending', lease_until datetime(6) NOT NULL, expires_at datetime(6) NOT NULL, created_at datetime(6) NOT NULL)")
	drv.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("starting on a database with integer-keyed claims: %v", err)
	}
	defer db.Close()
	now := time.Now().UTC()
	made := db.LoginCode.Create().SetCodeHash(make([]byte, 32)).SetLeaseUntil(now).SetExpiresAt(now).SaveX(ctx)
	if made.ID == uuid.Nil {
		t.Error("a claim without an id")
	}
}
