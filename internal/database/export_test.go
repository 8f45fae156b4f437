package database

import (
	"context"

	"entgo.io/ent/dialect"
)

// OpenMySQLDSN opens a MySQL data source name as Open opens a URL's, so that a test can
// give the driver what no URL can: a connection that does not speak utf8mb4.
func OpenMySQLDSN(ctx context.Context, dsn string) (*DB, error) {
	return open(ctx, "mysql", dsn, dialect.MySQL, "the test's database", nil, true)
}

// MigrateFirst runs the first n migration files on the MariaDB database at rawURL, as
// an earlier version left it.
func MigrateFirst(ctx context.Context, rawURL string, n int) error {
	driverName, dsn, _, err := DSN(rawURL)
	if err != nil {
		return err
	}
	pool, err := openPool(driverName, dsn, nil, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := createRevisionsTable(ctx, pool); err != nil {
		return err
	}
	ex, _, err := executor(ctx, pool)
	if err != nil {
		return err
	}
	return ex.ExecuteN(ctx, n)
}
