// Package database opens wxlogin's database from its URL (mysql:// or sqlite://),
// migrates the schema, runs transactions that retry when the database asks for it,
// and tells a database that cannot be reached from other failures.
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/XSAM/otelsql"
	"github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel/attribute"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/ids"
	"github.com/wxlogin/wxlogin/internal/tracing"
)

// StatementTimeout bounds, on MySQL, how long the server waits for the database to
// connect, to take a statement and to start answering it. A database that is down,
// unreachable or stalled then fails a request in seconds (as unavailable, see
// IsUnavailable) instead of holding it to its deadline, and a login that meets it
// twice (its transaction, then the release of its claim) still answers within the
// contract's 10 s. Every statement wxlogin runs while serving answers in
// milliseconds; migrations, which may rebuild big tables, run without the bound.
const StatementTimeout = 3 * time.Second

// DB is an open database: the ent client and the pool under it.
type DB struct {
	*ent.Client
	SQL     *sql.DB
	Dialect string
	// batches: ExecBatch sends a batch's statements in one round trip.
	batches bool
	// version is the server's VERSION() on MySQL, read once at open.
	version string
}

// Open connects to the database the URL names and migrates its schema. What the
// MySQL driver has to say about broken connections goes to log (nil: nowhere).
//
//	mysql://user:pass@host:port/dbname?params   (params: only acceptedParams)
//	sqlite://path/to/file.db
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*DB, error) {
	return OpenMigrating(ctx, rawURL, log, true)
}

// OpenMigrating is Open; with auto false (WXLOGIN_AUTO_MIGRATE=off) a MySQL database
// the migration files are ahead of is refused with ErrBehind instead of migrated.
func OpenMigrating(ctx context.Context, rawURL string, log *slog.Logger, auto bool) (*DB, error) {
	driverName, dsn, dia, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL) // DSN parsed it already
	return open(ctx, driverName, dsn, dia, u.Redacted(), log, auto)
}

// open is Open on a data source name; where names the database in errors, with no
// password.
func open(ctx context.Context, driverName, dsn, dia, where string, log *slog.Logger, auto bool) (*DB, error) {
	pool, err := openPool(driverName, dsn, log, false)
	if err != nil {
		return nil, err
	}
	if dia == dialect.SQLite {
		// One file, one writer: a few connections keep readers going under WAL, and
		// write transactions queue on the busy timeout instead of failing.
		pool.SetMaxOpenConns(4)
	} else {
		pool.SetMaxOpenConns(32)
		pool.SetMaxIdleConns(32)
		pool.SetConnMaxLifetime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ping(pingCtx, pool); err != nil {
		pool.Close()
		return nil, firstConnError(err, dsn, where)
	}
	db := &DB{
		Client:  ent.NewClient(ent.Driver(entsql.OpenDB(dia, pool))),
		SQL:     pool,
		Dialect: dia,
	}
	if dia == dialect.MySQL {
		cfg, _ := mysql.ParseDSN(dsn) // DSN made it
		db.batches = cfg.MultiStatements
		if err := pool.QueryRowContext(pingCtx, "SELECT VERSION()").Scan(&db.version); err != nil {
			pool.Close()
			return nil, firstConnError(err, dsn, where)
		}
		// TiDB splits every table into regions by its key: random ids spread a peak's
		// inserts over them (ids.New).
		if strings.Contains(db.version, "TiDB") {
			ids.Random(true)
		}
	}
	if err := migrate(ctx, driverName, dsn, log, db, auto); err != nil {
		db.Close()
		return nil, fmt.Errorf("database: migrating the schema: %w", err)
	}
	return db, nil
}

// firstConnError says why the first connection failed, and what to do where that is
// known.
func firstConnError(err error, dsn, where string) error {
	var my *mysql.MySQLError
	switch {
	case errors.Is(err, ErrCharset):
		return err
	case errors.As(err, &my) && my.Number == 1049: // unknown database
		cfg, _ := mysql.ParseDSN(dsn) // DSN made it
		return fmt.Errorf("database: the database %s does not exist on %s: create it with CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin (wxlogin creates its tables)",
			cfg.DBName, cfg.Addr, cfg.DBName)
	}
	return fmt.Errorf("database: cannot reach %s: %w", where, err)
}

// migrating serialises migrations within the process; see migrate.
var migrating sync.Mutex

// migrate creates or updates the schema. On MySQL it runs on a pool of its own without
// StatementTimeout, since waiting for another instance's migration or rebuilding a big
// table takes longer, and instances starting together on one database take turns
// through a named lock: ent's migration is not safe to run twice at once ("table
// already exists").
func migrate(ctx context.Context, driverName, dsn string, log *slog.Logger, db *DB, auto bool) error {
	if db.Dialect != dialect.MySQL {
		return db.migrate(ctx, true)
	}
	pool, err := openPool(driverName, dsn, log, true)
	if err != nil {
		return err
	}
	mdb := &DB{Client: ent.NewClient(ent.Driver(entsql.OpenDB(db.Dialect, pool))), SQL: pool, Dialect: db.Dialect, version: db.version}
	defer mdb.Close()
	return mdb.migrate(ctx, auto)
}

// MigrateUp runs the migration files a MySQL database lacks (wxlogin migrate up),
// under the same lock as instances starting.
func MigrateUp(ctx context.Context, rawURL string, log *slog.Logger) error {
	db, err := OpenMigrating(ctx, rawURL, log, true)
	if err != nil {
		return err
	}
	return db.Close()
}

// migrate brings the schema up to date: on MySQL by the versioned files
// (versionedMigrate), on SQLite by ent's automatic migration.
func (db *DB) migrate(ctx context.Context, auto bool) error {
	// ent's migration rewrites its package-level table definitions as it runs: two
	// migrations in one process must not overlap.
	migrating.Lock()
	defer migrating.Unlock()
	if db.Dialect == dialect.MySQL {
		conn, err := db.SQL.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		var got sql.NullInt64
		// Retried: TiDB's GET_LOCK is a pessimistic lock on a row of its own, which
		// instances starting together can push past its retry limit.
		err = Retry(ctx, func() error {
			return conn.QueryRowContext(ctx, "SELECT GET_LOCK(CONCAT('wxlogin_migrate:', DATABASE()), 60)").Scan(&got)
		})
		if err != nil {
			return err
		}
		if got.Int64 != 1 {
			return errors.New("another instance held the migration lock for 60 s")
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(CONCAT('wxlogin_migrate:', DATABASE()))")
		return versionedMigrate(ctx, db.SQL, db, auto)
	}
	// SQLite has no such lock; ent inspects the file before it writes, so a process
	// that loses the race finds the tables made and runs again, when it has nothing
	// left to do.
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = db.Schema.Create(ctx); err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	return err
}

// openPool opens a pool on dsn. A MySQL pool logs through log, not on stderr as the
// driver does by default, and unbounded drops StatementTimeout.
func openPool(driverName, dsn string, log *slog.Logger, unbounded bool) (*sql.DB, error) {
	if driverName != "mysql" {
		if tracing.On() {
			return otelsql.Open(driverName, dsn, otelsql.WithAttributes(attribute.String("db.system.name", "sqlite")))
		}
		return sql.Open(driverName, dsn)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if unbounded {
		cfg.ReadTimeout, cfg.WriteTimeout = 0, 0
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = driverLog{log}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	if tracing.On() {
		// A span per statement: its text, with placeholders (the arguments are not
		// recorded).
		return otelsql.OpenDB(checkedConnector{connector}, otelsql.WithAttributes(attribute.String("db.system.name", "mysql"))), nil
	}
	return sql.OpenDB(checkedConnector{connector}), nil
}

// checkedConnector makes the driver's connections and checks that each speaks
// utf8mb4. The driver sets the character set when it connects, and arguments are
// escaped into statements on the client, which is safe only in utf8mb4: on a
// connection whose server reads statements in GBK or Big5 a quote can hide inside a
// multi-byte character. Something between the driver and the tables may set it
// otherwise (a proxy, a server's init_connect or defaults); no statement then runs on
// that connection. The check is one query per new connection, which the pool keeps
// for minutes, so every connection is checked rather than the first only: the one
// made after a failover may reach another server.
type checkedConnector struct{ driver.Connector }

func (c checkedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkCharset(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// ErrCharset is the error of a connection that does not speak utf8mb4.
var ErrCharset = errors.New("database: the connection does not speak utf8mb4")

func checkCharset(ctx context.Context, conn driver.Conn) error {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return errors.New("database: the MySQL driver's connection cannot run a query")
	}
	rows, err := q.QueryContext(ctx, "SELECT @@character_set_client, @@character_set_connection", nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	got := make([]driver.Value, 2)
	if err := rows.Next(got); err != nil {
		return err
	}
	client, connection := fmt.Sprintf("%s", got[0]), fmt.Sprintf("%s", got[1])
	if client != "utf8mb4" || connection != "utf8mb4" {
		return fmt.Errorf("%w: character_set_client is %s and character_set_connection is %s; wxlogin escapes arguments into statements, which is safe only in utf8mb4: remove what sets them otherwise (a proxy, the server's init_connect or defaults)",
			ErrCharset, client, connection)
	}
	return nil
}

// driverLog is the MySQL driver's logger: its lines (a connection reset, a read that
// timed out) become warnings of the server's structured log.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) {
	d.log.Warn("database: the MySQL driver reports a connection problem", "detail", strings.TrimSpace(fmt.Sprint(v...)))
}

// ping makes the first connection. Its setup (WAL mode on SQLite) can meet another
// process's lock and be refused as busy without waiting, so busy is tried again.
func ping(ctx context.Context, pool *sql.DB) error {
	for attempt := 0; ; attempt++ {
		err := pool.PingContext(ctx)
		if err == nil || !retryable(err) || attempt == 20 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(rand.Int64N(int64(100 * time.Millisecond)))):
		}
	}
}

// Close closes the ent client and its pool.
func (db *DB) Close() error { return db.Client.Close() }

// DSN turns a wxlogin database URL into a driver name, its data source name and ent's
// dialect.
func DSN(rawURL string) (driverName, dsn, dia string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", "", errors.New("database: the URL does not parse; use mysql://user:pass@host:port/dbname or sqlite://path")
	}
	switch u.Scheme {
	case "sqlite":
		path := u.Host + u.Path
		if path == "" {
			return "", "", "", errors.New("database: sqlite:// needs a file path")
		}
		q := url.Values{}
		// busy_timeout first: the pragmas run in order on every new connection, and
		// switching to WAL takes a lock that another process may hold for a moment.
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		// Write transactions take the write lock when they begin, so two of them never
		// deadlock upgrading from a read lock.
		q.Set("_txlock", "immediate")
		q.Set("_time_format", "sqlite")
		return "sqlite", "file:" + path + "?" + q.Encode(), dialect.SQLite, nil
	case "mysql":
		cfg := mysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.DBName = strings.Trim(u.Path, "/")
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
			return "", "", "", err
		}
		cfg.Timeout = StatementTimeout // dialling
		// Each read and write of the protocol, the handshake included: a stalled
		// database fails the statement rather than holding it to the request's end.
		cfg.ReadTimeout = StatementTimeout
		cfg.WriteTimeout = StatementTimeout
		// Arguments are escaped into the statement on the client: one round trip per
		// statement, where a server-side prepared statement takes a prepare, an execute
		// and a close for every query. It is safe because the connection speaks utf8mb4,
		// in which a quote or a backslash cannot hide inside a multi-byte character (in
		// GBK, Big5 or SJIS it can): the URL cannot change that (see mysqlParams), and
		// every new connection is checked (see checkedConnector).
		cfg.InterpolateParams = true
		// Several statements may go in one query (ExecBatch): a login's last writes
		// then take one round trip, not three. Only wxlogin's own statements are
		// sent, with every value escaped by the driver.
		cfg.MultiStatements = true
		if err := mysqlParams(cfg, u.RawQuery); err != nil {
			return "", "", "", err
		}
		if cfg.DBName == "" {
			return "", "", "", errors.New("database: mysql:// needs a database name")
		}
		return "mysql", cfg.FormatDSN(), dialect.MySQL, nil
	default:
		return "", "", "", fmt.Errorf("database: scheme %q is not supported; use mysql:// or sqlite://", u.Scheme)
	}
}

// acceptedParams are the parameters a mysql:// URL may carry. wxlogin sets the
// character set, the collation, the time zone, the SQL mode and how arguments reach
// the server itself; any other key would reach the driver, which sends a key it does
// not know to the server as a session variable (character_set_client=gbk among them).
const acceptedParams = "allowCleartextPasswords, connectionAttributes, maxAllowedPacket, multiStatements, readTimeout, rejectReadOnly, timeout, tls, writeTimeout"

// maxURLTimeout bounds the timeouts a URL may set: a login meets one at most twice
// (its transaction, then the release of its claim) and answers within 10 s.
const maxURLTimeout = 5 * time.Second

// mysqlParams sets on cfg the parameters of a mysql:// URL's query. It refuses a
// parameter that is not one of acceptedParams, one given twice and a value the
// parameter does not take, naming each.
func mysqlParams(cfg *mysql.Config, rawQuery string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return errors.New("database: the URL's parameters do not parse: write them as ?name=value&name=value, with %XX escapes only")
	}
	var unknown, bad []string
	for name, values := range q {
		switch ok, msg := setParam(cfg, name, values[0]); {
		case !ok:
			unknown = append(unknown, strconv.Quote(name))
		case len(values) > 1:
			bad = append(bad, fmt.Sprintf("the URL gives the parameter %s %d times: give it once", name, len(values)))
		case msg != "":
			bad = append(bad, msg)
		}
	}
	if cfg.AllowCleartextPasswords && cfg.TLSConfig != "true" && cfg.TLSConfig != "skip-verify" {
		bad = append(bad, "allowCleartextPasswords=true sends the password as it is: use it with tls=true (or tls=skip-verify)")
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		which := "parameter " + unknown[0] + " is"
		if len(unknown) > 1 {
			which = "parameters " + strings.Join(unknown, ", ") + " are"
		}
		bad = append(bad, fmt.Sprintf("the URL %s not accepted (wxlogin sets the character set, time zone and statement handling itself); accepted: %s", which, acceptedParams))
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad) // the same message for the same URL, whatever the map's order
	return errors.New("database: " + strings.Join(bad, "; "))
}

// setParam sets one of acceptedParams on cfg. It returns false for any other name,
// and what is wrong with the value, or "".
func setParam(cfg *mysql.Config, name, value string) (ok bool, msg string) {
	boolean := func(set *bool) (bool, string) {
		switch value {
		case "true":
			*set = true
		case "false":
			*set = false
		default:
			return true, "the URL parameter " + name + " takes true or false"
		}
		return true, ""
	}
	timeout := func(set *time.Duration) (bool, string) {
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 || d > maxURLTimeout {
			return true, fmt.Sprintf("the URL parameter %s takes a duration from 1ms to %s, such as %s", name, maxURLTimeout, StatementTimeout)
		}
		*set = d
		return true, ""
	}
	switch name {
	case "timeout":
		return timeout(&cfg.Timeout)
	case "readTimeout":
		return timeout(&cfg.ReadTimeout)
	case "writeTimeout":
		return timeout(&cfg.WriteTimeout)
	case "tls":
		switch value {
		case "true", "false", "skip-verify", "preferred":
			cfg.TLSConfig = value
			return true, ""
		}
		return true, "the URL parameter tls takes true, false, skip-verify or preferred"
	case "multiStatements":
		return boolean(&cfg.MultiStatements)
	case "allowCleartextPasswords":
		return boolean(&cfg.AllowCleartextPasswords)
	case "rejectReadOnly":
		return boolean(&cfg.RejectReadOnly)
	case "maxAllowedPacket":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 1<<30 {
			return true, "the URL parameter maxAllowedPacket takes a number of bytes up to 1073741824, or 0 to ask the server"
		}
		cfg.MaxAllowedPacket = n
		return true, ""
	case "connectionAttributes":
		cfg.ConnectionAttributes = value
		return true, ""
	}
	return false, ""
}

// Statement is one SQL statement and its arguments, as ent's SQL builder makes them.
type Statement struct {
	Query string
	Args  []any
}

// Execer runs a statement; an *ent.Tx is one.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Batches says whether ExecBatch sends a batch's statements in one round trip.
func (db *DB) Batches() bool { return db.batches }

// ExecBatch runs statements in order on tx and returns the rows the last one affected.
// On MySQL they go in one query, one round trip, where each would take its own; on
// SQLite, in process, they run one at a time. The first statement that fails stops the
// batch, and its error is returned: the caller's transaction is then rolled back.
func (db *DB) ExecBatch(ctx context.Context, tx Execer, stmts ...Statement) (int64, error) {
	if db.batches && len(stmts) > 1 {
		stmts = []Statement{joined(stmts)}
	}
	var affected int64
	for _, st := range stmts {
		res, err := tx.ExecContext(ctx, st.Query, st.Args...)
		if err != nil {
			return 0, err
		}
		// The driver counts, for a query of several statements, the last one's rows.
		if affected, err = res.RowsAffected(); err != nil {
			return 0, err
		}
	}
	return affected, nil
}

// joined is stmts as one query of several statements, for MySQL.
func joined(stmts []Statement) Statement {
	var query strings.Builder
	var args []any
	for i, st := range stmts {
		if i > 0 {
			query.WriteString(";\n")
		}
		query.WriteString(st.Query)
		args = append(args, st.Args...)
	}
	return Statement{Query: query.String(), Args: args}
}

// Querier runs a statement and reads its rows; an *ent.Tx is one.
type Querier interface {
	Execer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ExecBatchQuery runs stmts as ExecBatch does, then query, and returns the rows the last
// statement affected and query's rows, for the caller to read and close. On MySQL they
// go in one round trip, the last statement's count read by a SELECT ROW_COUNT() of its
// own before the query; elsewhere, and when the URL turns batches off, the query is a
// round trip of its own.
func (db *DB) ExecBatchQuery(ctx context.Context, tx Querier, query Statement, stmts ...Statement) (int64, *sql.Rows, error) {
	if !db.batches || len(stmts) == 0 {
		affected, err := db.ExecBatch(ctx, tx, stmts...)
		if err != nil {
			return 0, nil, err
		}
		rows, err := tx.QueryContext(ctx, query.Query, query.Args...)
		return affected, rows, err
	}
	q := joined(append(stmts[:len(stmts):len(stmts)], Statement{Query: "SELECT ROW_COUNT()"}, query))
	rows, err := tx.QueryContext(ctx, q.Query, q.Args...)
	if err != nil {
		return 0, nil, err
	}
	var affected int64
	err = scanFirst(rows, &affected)
	if err == nil && !rows.NextResultSet() {
		if err = rows.Err(); err == nil {
			err = errors.New("database: a batch's query returned nothing")
		}
	}
	if err != nil {
		rows.Close()
		return 0, nil, err
	}
	return affected, rows, nil
}

// scanFirst scans the first row of rows into dest, reading past results without rows,
// and leaves rows open.
func scanFirst(rows *sql.Rows, dest ...any) error {
	for !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		if !rows.NextResultSet() {
			if err := rows.Err(); err != nil {
				return err
			}
			return errors.New("database: a query returned no row")
		}
	}
	return rows.Scan(dest...)
}

// WithTx runs fn in a transaction and commits it. When the database reports a deadlock,
// a lock wait timeout or a busy file, the whole transaction is retried, after a
// jittered, growing pause so that the transactions that collided spread out: fn must be
// safe to run again. ctx bounds the retries.
func (db *DB) WithTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	return Retry(ctx, func() error { return db.tryTx(ctx, fn) })
}

// Retry runs fn, a transaction or one statement on its own, and runs it again when the
// database reports a deadlock, a lock wait timeout or a busy file, as WithTx does. An
// autocommitted statement can be a deadlock's victim too: InnoDB picks the transaction
// with the least to undo.
func Retry(ctx context.Context, fn func() error) error {
	const attempts = 10
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(min(5*time.Millisecond<<i, 200*time.Millisecond))))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	tx, err := db.Tx(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, rollback(tx))
	}
	return tx.Commit()
}

func rollback(tx *ent.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// retryable reports whether err is a conflict that running the transaction again can
// resolve.
func retryable(err error) bool {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch {
		case my.Number == 1213, my.Number == 1205: // deadlock; lock wait timeout
			return true
		case my.Number == 9007: // TiDB: a write conflict (optimistic transactions)
			return true
		case my.Number == 1105 && strings.Contains(my.Message, "pessimistic lock retry limit reached"):
			// TiDB: a pessimistic lock it retried internally past its limit, as many
			// first logins racing for one unionid do; the transaction itself is
			// retried from the start, as after a deadlock.
			return true
		}
		return false
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		code := lite.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}

// IsUniqueViolation reports whether err is a duplicate key on a unique index.
func IsUniqueViolation(err error) bool {
	if ent.IsConstraintError(err) {
		return true
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1062
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable reports whether err says the database could not be reached, or did
// not answer in time: refused or dropped connections, a server out of connections
// (for everyone or for wxlogin's user), a stalled connection that hit
// StatementTimeout, a pool that could not hand out a connection. Such a failure is
// the database's, not the request's, and goes away when the database comes back. A
// connection or a statement cut short because the request ended is not one.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1040, // too many connections
			1203, // the user has more than max_user_connections
			1226, // the user has used up a resource: MAX_USER_CONNECTIONS among them
			1053: // the server is shutting down
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &netErr)
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.SQL.PingContext(ctx) }
