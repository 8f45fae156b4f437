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
