package database_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/faultproxy"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

// TestInstancesStartingTogether: several instances, each its own process, starting at
// once on one empty database all migrate it and come up.
func TestInstancesStartingTogether(t *testing.T) {
	if url := os.Getenv("WXLOGIN_TEST_MIGRATE_URL"); url != "" { // one of the instances
		db, err := database.Open(context.Background(), url, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		db.Close()
		os.Exit(0)
	}
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		url := b.URL(t)
		outs := make([][]byte, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestInstancesStartingTogether$")
				cmd.Env = append(os.Environ(), "WXLOGIN_TEST_MIGRATE_URL="+url)
				outs[i], errs[i] = cmd.CombinedOutput()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("instance %d: %v: %s", i, err, outs[i])
			}
		}
		db, err := database.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if n, err := db.User.Query().Count(context.Background()); err != nil || n != 0 {
			t.Errorf("after the start-ups: users = %d, %v; want an empty, working schema", n, err)
		}
	})
}

func TestUnreachableDatabaseErrorHidesThePassword(t *testing.T) {
	_, err := database.Open(context.Background(), "mysql://root:hunter2-secret@127.0.0.1:1/wxlogin", nil)
	if err == nil {
		t.Fatal("opened a database on port 1")
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestUnsupportedURLs(t *testing.T) {
	for _, u := range []string{"postgres://x/y", "sqlite://", "mysql://127.0.0.1:3306/", "::"} {
		if _, _, _, err := database.DSN(u); err == nil {
			t.Errorf("DSN(%q) accepted", u)
		}
	}
}

// TestArgumentsAreEscapedOnlyInSafeCharacterSets: arguments are escaped into statements
// on the client in UTF-8, and never in a character set where a quote can hide inside a
// multi-byte character.
func TestArgumentsAreEscapedOnlyInSafeCharacterSets(t *testing.T) {
	for params, want := range map[string]bool{
		"":                          true,
		"?charset=utf8mb4":          true,
		"?charset=gbk&collation=":   false,
		"?charset=big5":             false,
		"?collation=gbk_chinese_ci": false,
	} {
		_, dsn, _, err := database.DSN("mysql://u:p@db:3306/wxlogin" + params)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("%s: %v", params, err)
		}
		if cfg.InterpolateParams != want || cfg.MultiStatements != want {
			t.Errorf("%q: interpolateParams = %v and multiStatements = %v, want %v", params, cfg.InterpolateParams, cfg.MultiStatements, want)
		}
	}
}

// TestExecBatch: a batch's statements all run, in order, and the count is the last
// one's; on MySQL they go as one query. A statement that fails stops the batch with its
// error, and the transaction rolls back with nothing of the batch left.
func TestExecBatch(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		if want := db.Dialect == "mysql"; db.Batches() != want {
			t.Errorf("Batches() = %v on %s, want %v", db.Batches(), db.Dialect, want)
		}
		if db.Dialect == "mysql" { // an operator behind a proxy can turn it off
			for _, param := range []string{"multiStatements=false", "interpolateParams=false"} {
				one, err := database.Open(ctx, b.URL(t)+"?"+param, nil)
				if err != nil {
					t.Fatal(err)
				}
				if one.Batches() {
					t.Errorf("Batches() with %s in the URL", param)
				}
				one.Close()
			}
		}
		if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE batch_test (id INT PRIMARY KEY, v VARCHAR(10))"); err != nil {
			t.Fatal(err)
		}
		count := func() (n int) {
			if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM batch_test").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		var n int64
		err := db.WithTx(ctx, func(tx *ent.Tx) (err error) {
			n, err = db.ExecBatch(ctx, tx,
				database.Statement{Query: "INSERT INTO batch_test (id, v) VALUES (?, ?), (?, ?)", Args: []any{1, "a;b", 2, "it's"}},
				database.Statement{Query: "INSERT INTO batch_test (id, v) VALUES (?, ?)", Args: []any{3, `c\`}},
				database.Statement{Query: "UPDATE batch_test SET v = ? WHERE id < ?", Args: []any{"x", 3}},
			)
			return err
		})
		if err != nil || n != 2 || count() != 3 {
			t.Fatalf("batch: %v, %d rows affected by the last statement (want 2), %d rows (want 3)", err, n, count())
		}
		var v string
		if err := db.SQL.QueryRowContext(ctx, "SELECT v FROM batch_test WHERE id = 3").Scan(&v); err != nil || v != `c\` {
			t.Errorf("row 3 holds %q, %v; want the backslash kept", v, err)
		}

		err = db.WithTx(ctx, func(tx *ent.Tx) error {
			_, err := db.ExecBatch(ctx, tx,
				database.Statement{Query: "INSERT INTO batch_test (id, v) VALUES (?, ?)", Args: []any{4, "d"}},
				database.Statement{Query: "INSERT INTO batch_test (id, v) VALUES (?, ?)", Args: []any{1, "again"}},
				database.Statement{Query: "INSERT INTO batch_test (id, v) VALUES (?, ?)", Args: []any{5, "e"}},
			)
			return err
		})
		if !database.IsUniqueViolation(err) {
			t.Errorf("a batch with a duplicate key: %v, want a unique violation", err)
		}
		if got := count(); got != 3 {
			t.Errorf("%d rows after the failed batch, want the 3 from before", got)
		}
	})
}

// TestExecBatchQuery: the query runs after the batch and sees its rows, and the count is
// the last statement's, whether the batch goes in one round trip or, as an operator
// behind a proxy may set, statement by statement; a statement that fails, first or
// later, stops it with its error and leaves nothing of the batch.
func TestExecBatchQuery(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		ctx := context.Background()
		dbs := map[string]*database.DB{"default": b.Open(t)}
		if b.Name == "mysql" {
			for _, param := range []string{"multiStatements=false", "interpolateParams=false"} {
				one, err := database.Open(ctx, b.URL(t)+"?"+param, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { one.Close() })
				dbs[param] = one
			}
		}
		for name, db := range dbs {
			if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE query_test (id INT PRIMARY KEY, v VARCHAR(10))"); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			insert := func(id int, v string) database.Statement {
				return database.Statement{Query: "INSERT INTO query_test (id, v) VALUES (?, ?)", Args: []any{id, v}}
			}
			byValue := database.Statement{Query: "SELECT v, COUNT(*) FROM query_test WHERE id < ? GROUP BY v ORDER BY v", Args: []any{100}}
			var affected int64
			var got []string
			err := db.WithTx(ctx, func(tx *ent.Tx) error {
				got = nil
				n, rows, err := db.ExecBatchQuery(ctx, tx, byValue,
					insert(1, "x"), insert(2, "x"), insert(3, "y"),
					database.Statement{Query: "UPDATE query_test SET v = ? WHERE id <= ?", Args: []any{"z", 2}})
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var v string
					var c int
					if err := rows.Scan(&v, &c); err != nil {
						return err
					}
					got = append(got, fmt.Sprintf("%s:%d", v, c))
				}
				affected = n
				return rows.Err()
			})
			if err != nil || affected != 2 || strings.Join(got, " ") != "y:1 z:2" {
				t.Errorf("%s: %v, last statement %d rows (want 2), query %v (want [y:1 z:2])", name, err, affected, got)
			}
			for i, failing := range [][]database.Statement{
				{insert(1, "again"), insert(4, "x")},
				{insert(4, "x"), insert(5, "x"), insert(1, "again")},
			} {
				err = db.WithTx(ctx, func(tx *ent.Tx) error {
					_, rows, err := db.ExecBatchQuery(ctx, tx, byValue, failing...)
					if err == nil {
						rows.Close()
					}
					return err
				})
				if !database.IsUniqueViolation(err) {
					t.Errorf("%s: batch %d with a duplicate key: %v, want a unique violation", name, i, err)
				}
			}
			var rows int
			if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM query_test").Scan(&rows); err != nil || rows != 3 {
				t.Errorf("%s: %d rows after the failed batches (%v), want the 3 from before", name, rows, err)
			}
		}
	})
}

// TestRetry: a deadlock or a lock wait timeout is tried again, anything else is not.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := database.Retry(ctx, func() error {
		if calls++; calls < 3 {
			return &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("two deadlocks, then success: %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = database.Retry(ctx, func() error {
		calls++
		return &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}
	})
	if !database.IsUniqueViolation(err) || calls != 1 {
		t.Errorf("a duplicate key: %v after %d calls, want it at once", err, calls)
	}
}

// TestOutageIsUnavailableAndBounded: with the database cut off or stalled behind a
// proxy, a query without any deadline of its own fails within StatementTimeout, with
// an error IsUnavailable recognises; once the database is back, queries work again
// on the same pool.
func TestOutageIsUnavailableAndBounded(t *testing.T) {
	var mysqlURL func(testing.TB) string
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			mysqlURL = b.URL
		}
	}
	if mysqlURL == nil {
		t.Skip("needs MySQL")
	}
	u, err := url.Parse(mysqlURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	ctx := context.Background()
	db, err := database.Open(ctx, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	query := func() (time.Duration, error) {
		start := time.Now()
		_, err := db.User.Query().Count(ctx) // no deadline: only the statement bound ends it
		return time.Since(start), err
	}
	if _, err := query(); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []struct {
		name  string
		apply func()
	}{{"cut", proxy.Cut}, {"stall", proxy.Stall}} {
		fault.apply()
		took, err := query()
		if err == nil || !database.IsUnavailable(err) {
			t.Errorf("%s: query = %v, want an error IsUnavailable recognises", fault.name, err)
		}
		if took > database.StatementTimeout+2*time.Second {
			t.Errorf("%s: the query failed after %v, want within the %v statement bound", fault.name, took, database.StatementTimeout)
		}
		proxy.Restore()
		if _, err := query(); err != nil {
			t.Errorf("after the %s: query = %v, want the pool working again", fault.name, err)
		}
	}
	for _, err := range []error{nil, errors.New("something else"), context.Canceled} {
		if database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true", err)
		}
	}
}
