// Package testdb gives tests a fresh database of each kind wxlogin runs on: SQLite
// always, MariaDB/MySQL whenever it is reachable. Under CI=true an unreachable MySQL
// fails the test rather than skipping it.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/database"
)

// DefaultMySQLURL is the server the tests use unless WXLOGIN_TEST_MYSQL_URL names
// another: the URL of a server (no database name); each test gets a database of its own.
const DefaultMySQLURL = "mysql://root@127.0.0.1:3306/"

// Backend is one kind of database a test runs against.
type Backend struct {
	Name string
	// Open returns a fresh, migrated, empty database, dropped when the test ends.
	Open func(t testing.TB) *database.DB
	// URL returns a fresh database's URL (not opened), for tests of start-up itself.
	URL func(t testing.TB) string
}

// Backends returns SQLite and, when reachable, MySQL.
func Backends(t testing.TB) []Backend {
	bs := []Backend{{Name: "sqlite", Open: openURL(sqliteURL), URL: sqliteURL}}
	if mysqlReachable(t) {
		bs = append(bs, Backend{Name: "mysql", Open: openURL(mysqlURL), URL: mysqlURL})
	}
	return bs
}

// Run runs fn as a subtest once per backend.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

func openURL(mk func(testing.TB) string) func(t testing.TB) *database.DB {
	return func(t testing.TB) *database.DB {
		t.Helper()
		db, err := database.Open(context.Background(), mk(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "wxlogin.db")
}

func serverURL() string {
	if u := os.Getenv("WXLOGIN_TEST_MYSQL_URL"); u != "" {
		return u
	}
	return DefaultMySQLURL
}

var (
	probeOnce sync.Once
	probeErr  error
)

// mysqlReachable probes the server once per test binary.
func mysqlReachable(t testing.TB) bool {
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var db *sql.DB
		if db, probeErr = adminConn(); probeErr == nil {
			probeErr = db.PingContext(ctx)
			db.Close()
		}
	})
	if probeErr == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but MySQL at %s is unreachable: %v", redacted(serverURL()), probeErr)
	}
	t.Logf("MySQL at %s is unreachable, testing on SQLite only: %v", redacted(serverURL()), probeErr)
	return false
}

// adminConn connects to the server without choosing a database.
func adminConn() (*sql.DB, error) {
	driver, dsn, _, err := database.DSN(strings.TrimSuffix(serverURL(), "/") + "/mysql")
	if err != nil {
		return nil, err
	}
	return sql.Open(driver, dsn)
}

// mysqlURL creates a database of the test's own and drops it when the test ends.
func mysqlURL(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "wxlogin_test_" + hex.EncodeToString(b)
	admin, err := adminConn()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE `"+name+"`"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(serverURL())
	u.Path = "/" + name
	return u.String()
}

// LimitedUser returns dbURL, a MySQL database's URL from URL, with a user of its own
// whom the server lets hold at most connections connections at once: past them it
// refuses to connect, with error 1226. Opening the database takes 3 of them for a
// moment (the pool's first connection, and the migration's two). The user is dropped
// when the test ends.
func LimitedUser(t testing.TB, dbURL string, connections int) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name, password := "wxlogin_limited_"+hex.EncodeToString(b), hex.EncodeToString(b)
	admin, err := adminConn()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	account := "'" + name + "'@'%'"
	for _, stmt := range []string{
		"CREATE USER " + account + " IDENTIFIED BY '" + password + "' WITH MAX_USER_CONNECTIONS " + strconv.Itoa(connections),
		"GRANT ALL ON `" + strings.Trim(u.Path, "/") + "`.* TO " + account,
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			admin.Close()
			t.Fatalf("creating a limited user: %v", err)
		}
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP USER "+account); err != nil {
			t.Errorf("dropping the limited user %s: %v", name, err)
		}
	})
	u.User = url.UserPassword(name, password)
	return u.String()
}

func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

// MySQLServerVersion is VERSION() of the MySQL server the tests use ("" without
// one): some tests are MariaDB's only, and say so on another engine (TiDB).
func MySQLServerVersion(t testing.TB) string {
	t.Helper()
	if !mysqlReachable(t) {
		return ""
	}
	db, err := adminConn()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
