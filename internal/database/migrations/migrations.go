// Package migrations holds the SQL wxlogin runs on MySQL, one file per change of
// ent/schema, written by `go run ./tools/migrations -name <change>` (ent's Atlas
// integration) and checked in CI (`make check-migrations`) to agree with the schema.
// The files and their atlas.sum are embedded in the binary.
//
// The DDL is MariaDB's as of 10.7 (ent gives UUID fields MariaDB's own uuid type); on
// MySQL itself start-up keeps to ent's automatic migration. A DBA can read each file
// before `wxlogin migrate up` runs it.
package migrations

import "embed"

// Files are the migrations and atlas.sum.
//
//go:embed *.sql atlas.sum
var Files embed.FS
