package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/faultproxy"
	"github.com/wxlogin/wxlogin/internal/profile"
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

// TestURLParameters: a mysql:// URL takes the parameters an operator needs (timeouts,
// TLS, one statement per query) and nothing that changes the character set, the time
// zone or how arguments reach the server; a refusal names the parameter and, for a
// parameter it does not know, the ones it takes.
func TestURLParameters(t *testing.T) {
	const base = "mysql://u:p@db:3306/wxlogin"
	for params, check := range map[string]func(*mysql.Config) bool{
		"": func(c *mysql.Config) bool {
			return c.InterpolateParams && c.MultiStatements && c.ReadTimeout == database.StatementTimeout && c.TLSConfig == "" && len(c.Params) == 0
		},
		"?multiStatements=false": func(c *mysql.Config) bool { return !c.MultiStatements && c.InterpolateParams },
		"?tls=true&timeout=5s&readTimeout=1500ms": func(c *mysql.Config) bool {
			return c.TLSConfig == "true" && c.Timeout == 5*time.Second && c.ReadTimeout == 1500*time.Millisecond
		},
		"?tls=skip-verify&allowCleartextPasswords=true": func(c *mysql.Config) bool { return c.AllowCleartextPasswords },
		"?tls=preferred&writeTimeout=2s&rejectReadOnly=true": func(c *mysql.Config) bool {
			return c.TLSConfig == "preferred" && c.WriteTimeout == 2*time.Second && c.RejectReadOnly
		},
		"?maxAllowedPacket=0&connectionAttributes=app:wxlogin": func(c *mysql.Config) bool {
			return c.MaxAllowedPacket == 0 && c.ConnectionAttributes == "app:wxlogin"
		},
	} {
		_, dsn, _, err := database.DSN(base + params)
		if err != nil {
			t.Errorf("%q: %v", params, err)
			continue
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("%q: %v", params, err)
		}
		if !check(cfg) || cfg.Collation != "utf8mb4_bin" || !cfg.ParseTime || cfg.Loc != time.UTC {
			t.Errorf("%q: the driver's configuration is %+v", params, cfg)
		}
	}
	const accepted = "accepted: allowCleartextPasswords, connectionAttributes, maxAllowedPacket, multiStatements, readTimeout, rejectReadOnly, timeout, tls, writeTimeout"
	for params, want := range map[string][]string{
		"?character_set_client=gbk":      {`"character_set_client" is not accepted`, accepted},
		"?character_set_connection=big5": {`"character_set_connection" is not accepted`, accepted},
		"?charset=gbk":                   {`"charset" is not accepted`, accepted},
		"?collation=gbk_chinese_ci":      {`"collation" is not accepted`},
		"?interpolateParams=false":       {`"interpolateParams" is not accepted`},
		"?parseTime=false&loc=Local":     {`parameters "loc", "parseTime" are not accepted`},
		"?sql_mode=NO_BACKSLASH_ESCAPES": {`"sql_mode" is not accepted`},
		"?time_zone=%27%2B08:00%27":      {`"time_zone" is not accepted`},
		"?allowAllFiles=true":            {`"allowAllFiles" is not accepted`},
		"?tls=custom":                    {"tls takes true, false, skip-verify or preferred"},
		"?readTimeout=0":                 {"readTimeout takes a duration from 1ms to 5s"},
		"?timeout=1m":                    {"timeout takes a duration from 1ms to 5s"},
		"?multiStatements=0":             {"multiStatements takes true or false"},
		"?maxAllowedPacket=-1":           {"maxAllowedPacket takes a number of bytes"},
		"?allowCleartextPasswords=true":  {"use it with tls=true"},
		"?tls=true&tls=false":            {"the parameter tls 2 times"},
		"?tls=%zz":                       {"do not parse"},
	} {
		_, _, _, err := database.DSN(base + params)
		if err == nil {
			t.Errorf("%q: accepted", params)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v, want it to say %q", params, err, w)
			}
		}
	}
}

// TestGBKConnectionInjects is what the URL parameters are refused for: on a connection
// whose server reads statements in GBK, with arguments escaped on the client and
// several statements a query, as a URL with character_set_client=gbk used to give,
// the profile update's own statement runs a second statement hidden in an avatar URL.
// The same update through Open's connection stores the URL as it was sent.
func TestGBKConnectionInjects(t *testing.T) {
	rawURL := mysqlURL(t)
	ctx := context.Background()
	db, err := database.Open(ctx, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, _, err := database.DSN(rawURL + "?character_set_client=gbk"); err == nil {
		t.Fatal("DSN accepts character_set_client=gbk")
	}
	attacker := db.User.Create().SaveX(ctx)
	victim := db.User.Create().SetNickname("victim").SaveX(ctx)
	// 中 ends in 0xAD: in GBK, 0xAD and the escaping backslash make one character, and
	// the quote after them ends the string. Spaces are not allowed in an avatar URL;
	// comments do instead.
	crafted := "https://x/中';UPDATE/**/users/**/SET/**/nickname=0x6f776e6564;#"
	update := func(client *ent.Client) error {
		_, err := profile.New(client).Apply(ctx, attacker.ID, profile.Update{AvatarURL: &crafted})
		return err
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.Trim(u.Path, "/")
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.ParseTime, cfg.InterpolateParams, cfg.MultiStatements = true, true, true
	cfg.Params = map[string]string{"character_set_client": "gbk"}
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
		t.Fatal(err)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gbk := sql.OpenDB(connector)
	defer gbk.Close()
	update(ent.NewClient(ent.Driver(entsql.OpenDB(dialect.MySQL, gbk)))) // its own answer may be an error: what matters is what ran
	if got := db.User.GetX(ctx, victim.ID); got.Nickname == nil || *got.Nickname != "owned" {
		t.Fatalf("through the GBK connection the victim's nickname is %v: the injection did not run, so this test proves nothing", strOrNil(got.Nickname))
	}

	db.User.UpdateOneID(victim.ID).SetNickname("victim").ExecX(ctx)
	if err := update(db.Client); err != nil {
		t.Fatal(err)
	}
	if got := db.User.GetX(ctx, attacker.ID); got.AvatarURL == nil || *got.AvatarURL != crafted {
		t.Errorf("through Open's connection the avatar URL is %q, want it stored as sent", strOrNil(got.AvatarURL))
	}
	if got := db.User.GetX(ctx, victim.ID); *got.Nickname != "victim" {
		t.Errorf("through Open's connection the victim's nickname became %q", *got.Nickname)
	}
}

// TestConnectionOutsideUTF8mb4IsRefused: a connection that does not speak utf8mb4 (here
// the driver is told to switch it to GBK, as no URL can; in production a proxy or the
// server's settings might) stops start-up with a message saying what it speaks. GBK is
// the character set whose multi-byte characters can hide a quote, and one that MariaDB,
// MySQL and TiDB all speak.
func TestConnectionOutsideUTF8mb4IsRefused(t *testing.T) {
	_, dsn, _, err := database.DSN(mysqlURL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"character_set_client", "character_set_connection"} {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Params = map[string]string{set: "gbk"}
		db, err := database.OpenMySQLDSN(context.Background(), cfg.FormatDSN())
		if err == nil {
			db.Close()
			t.Errorf("%s=gbk: started", set)
			continue
		}
		if !errors.Is(err, database.ErrCharset) || !strings.Contains(err.Error(), set+" is gbk") {
			t.Errorf("%s=gbk: %v, want a refusal naming it", set, err)
		}
	}
}

// TestMissingDatabaseSaysHowToCreateIt: a MySQL database that does not exist stops
// start-up with one line that gives the statement to create it.
func TestMissingDatabaseSaysHowToCreateIt(t *testing.T) {
	u, err := url.Parse(mysqlURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/wxlogin_missing_" + fmt.Sprint(time.Now().UnixNano())
	db, err := database.Open(context.Background(), u.String(), nil)
	if err == nil {
		db.Close()
		t.Fatal("opened a database that does not exist")
	}
	want := "CREATE DATABASE `" + strings.Trim(u.Path, "/") + "` CHARACTER SET utf8mb4"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error = %q, want one line with %q", err, want)
	}
}

// mysqlURL is a fresh MySQL database's URL, for tests of what only MySQL does.
func mysqlURL(t *testing.T) string {
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			return b.URL(t)
		}
	}
	t.Skip("needs MySQL")
	return ""
}

func strOrNil(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
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
			one, err := database.Open(ctx, b.URL(t)+"?multiStatements=false", nil)
			if err != nil {
				t.Fatal(err)
			}
			if one.Batches() {
				t.Error("Batches() with multiStatements=false in the URL")
			}
			one.Close()
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
			one, err := database.Open(ctx, b.URL(t)+"?multiStatements=false", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { one.Close() })
			dbs["multiStatements=false"] = one
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
