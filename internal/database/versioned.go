package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	atlas "ariga.io/atlas/sql/migrate"
	atlasmysql "ariga.io/atlas/sql/mysql"

	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/phonecode"
	"github.com/wxlogin/wxlogin/internal/database/migrations"
)

// revisionsTable is where the applied migrations are recorded, in Atlas's own table
// and columns, so that `atlas migrate status` reads it too.
const revisionsTable = "atlas_schema_revisions"

// ErrBehind refuses to serve a database the migration files are ahead of, with
// WXLOGIN_AUTO_MIGRATE=off.
var ErrBehind = errors.New("the database is behind this version's migrations")

// Status is where a MySQL database stands against the migration files.
type Status struct {
	Applied []string // versions, oldest first
	Pending []string // versions still to run, oldest first
}

// migrationDir is the embedded files as Atlas reads them.
func migrationDir() (atlas.Dir, error) {
	dir := &atlas.MemDir{}
	err := fs.WalkDir(migrations.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := migrations.Files.ReadFile(path)
		if err != nil {
			return err
		}
		return dir.WriteFile(path, b)
	})
	return dir, err
}

// executor is Atlas's executor of the embedded files on pool.
func executor(ctx context.Context, pool *sql.DB, opts ...atlas.ExecutorOption) (*atlas.Executor, *revisions, error) {
	dir, err := migrationDir()
	if err != nil {
		return nil, nil, err
	}
	drv, err := atlasmysql.Open(pool)
	if err != nil {
		return nil, nil, err
	}
	rev, err := openRevisions(ctx, pool)
	if err != nil {
		return nil, nil, err
	}
	ex, err := atlas.NewExecutor(drv, dir, rev, opts...)
	return ex, rev, err
}

// versionedMigrate brings a MariaDB database onto the migration files, or with auto
// off says what is pending. The caller holds the migration lock.
//
// A database without revisions but with wxlogin's tables was made by the automatic
// migration of an earlier version: ent's migration first brings it to today's schema,
// as it always did (it only adds), and the files are recorded as its baseline.
func versionedMigrate(ctx context.Context, pool *sql.DB, db *DB, auto bool) error {
	// The files are MariaDB's DDL (its uuid type). On MySQL itself and TiDB ent's
	// automatic migration goes on as before, with the types they have.
	if !isMariaDB(db.version) {
		if err := dropIntegerKeyedClaims(ctx, pool); err != nil {
			return err
		}
		return db.Schema.Create(ctx)
	}
	if err := createRevisionsTable(ctx, pool); err != nil {
		return err
	}
	ex, rev, err := executor(ctx, pool)
	if err != nil {
		return err
	}
	revs, err := rev.ReadRevisions(ctx)
	if err != nil {
		return err
	}
	if len(revs) == 0 {
		var tables int
		if err := pool.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'users'").Scan(&tables); err != nil {
			return err
		}
		if tables > 0 {
			if !auto {
				return fmt.Errorf("%w: it was made by an earlier version's automatic migration; run `wxlogin migrate up` to bring it onto the versioned files", ErrBehind)
			}
			// Those versions keyed code claims by AUTO_INCREMENT, which MariaDB cannot cast
			// to its uuid type: the ids go through text first, as the files do.
			for _, table := range []string{logincode.Table, phonecode.Table} {
				for _, q := range []string{"ALTER TABLE `%s` MODIFY COLUMN `id` char(36) NOT NULL", "UPDATE `%s` SET `id` = UUID()"} {
					if _, err := pool.ExecContext(ctx, fmt.Sprintf(q, table)); err != nil {
						return err
					}
				}
			}
			if err := db.Schema.Create(ctx); err != nil {
				return err
			}
			files, err := migrationDirFiles()
			if err != nil {
				return err
			}
			if ex, _, err = executor(ctx, pool, atlas.WithBaselineVersion(files[len(files)-1].Version())); err != nil {
				return err
			}
		}
	}
	pending, err := ex.Pending(ctx)
	switch {
	case errors.Is(err, atlas.ErrNoPendingFiles):
		return nil
	case err != nil:
		return err
	case !auto:
		return fmt.Errorf("%w (%s pending): run `wxlogin migrate up` first, or set WXLOGIN_AUTO_MIGRATE=on", ErrBehind, strings.Join(versionList(pending), ", "))
	}
	return ex.ExecuteN(ctx, 0)
}

// dropIntegerKeyedClaims drops the code-claim tables an earlier version made with
// AUTO_INCREMENT ids, for the automatic migration to make them again with UUIDs: TiDB
// cannot change a clustered key's type, and MySQL would keep ids that are not UUIDs.
// Their rows are claims of the last minutes.
func dropIntegerKeyedClaims(ctx context.Context, pool *sql.DB) error {
	for _, table := range []string{logincode.Table, phonecode.Table} {
		var typ string
		err := pool.QueryRowContext(ctx, "SELECT DATA_TYPE FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'id'", table).Scan(&typ)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return err
		case strings.Contains(strings.ToLower(typ), "int"):
			if _, err := pool.ExecContext(ctx, "DROP TABLE `"+table+"`"); err != nil {
				return err
			}
		}
	}
	return nil
}

// mariaDB says whether the server is MariaDB, and what VERSION() it gives.
func mariaDB(ctx context.Context, pool *sql.DB) (version string, ok bool, err error) {
	err = pool.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)
	return version, isMariaDB(version), err
}

// isMariaDB says whether VERSION() is MariaDB's.
func isMariaDB(version string) bool { return strings.Contains(strings.ToLower(version), "mariadb") }

func migrationDirFiles() ([]atlas.File, error) {
	dir, err := migrationDir()
	if err != nil {
		return nil, err
	}
	return dir.Files()
}

func versionList(files []atlas.File) []string {
	var vs []string
	for _, f := range files {
		vs = append(vs, f.Version())
	}
	return vs
}

// MigrationStatus reads where a MariaDB database stands against the migration files.
// It changes nothing: a database without the revisions table has applied none.
func MigrationStatus(ctx context.Context, rawURL string) (*Status, error) {
	driverName, dsn, _, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	if driverName != "mysql" {
		return nil, errors.New("versioned migrations are MySQL's: SQLite is migrated automatically at start-up")
	}
	pool, err := openPool(driverName, dsn, nil, true)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if version, ok, err := mariaDB(ctx, pool); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the migration files are MariaDB's; on %s start-up migrates the schema automatically", version)
	}
	st := &Status{}
	var tables int
	if err := pool.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", revisionsTable).Scan(&tables); err != nil {
		return nil, err
	}
	if tables == 0 {
		files, err := migrationDirFiles()
		if err != nil {
			return nil, err
		}
		st.Pending = versionList(files)
		return st, nil
	}
	ex, rev, err := executor(ctx, pool)
	if err != nil {
		return nil, err
	}
	revs, err := rev.ReadRevisions(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range revs {
		st.Applied = append(st.Applied, r.Version)
	}
	pending, err := ex.Pending(ctx)
	if err != nil && !errors.Is(err, atlas.ErrNoPendingFiles) {
		if len(revs) > 0 {
			return nil, err
		}
		// No revisions, but tables: an earlier version's automatic migration made it.
		if pending, err = migrationDirFiles(); err != nil {
			return nil, err
		}
	}
	st.Pending = versionList(pending)
	return st, nil
}

// revisions is Atlas's RevisionReadWriter on the revisions table.
type revisions struct {
	pool   *sql.DB
	schema string
}

func openRevisions(ctx context.Context, pool *sql.DB) (*revisions, error) {
	r := &revisions{pool: pool}
	return r, pool.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&r.schema)
}

// createRevisionsTable makes the revisions table, in Atlas's columns, if it is not there.
func createRevisionsTable(ctx context.Context, pool *sql.DB) error {
	_, err := pool.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+revisionsTable+` (
  version varchar(255) NOT NULL PRIMARY KEY,
  description varchar(255) NOT NULL,
  type bigint unsigned NOT NULL DEFAULT 2,
  applied bigint NOT NULL DEFAULT 0,
  total bigint NOT NULL DEFAULT 0,
  executed_at timestamp(6) NOT NULL,
  execution_time bigint NOT NULL,
  error longtext NULL,
  error_stmt longtext NULL,
  hash varchar(255) NOT NULL,
  partial_hashes json NULL,
  operator_version varchar(255) NOT NULL
) CHARSET utf8mb4 COLLATE utf8mb4_bin`)
	return err
}

func (r *revisions) Ident() *atlas.TableIdent {
	return &atlas.TableIdent{Name: revisionsTable, Schema: r.schema}
}

const revisionColumns = "version, description, type, applied, total, executed_at, execution_time, error, error_stmt, hash, operator_version"

func (r *revisions) ReadRevisions(ctx context.Context) ([]*atlas.Revision, error) {
	rows, err := r.pool.QueryContext(ctx, "SELECT "+revisionColumns+" FROM "+revisionsTable+" ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*atlas.Revision
	for rows.Next() {
		rev, err := scanRevision(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rev)
	}
	return out, rows.Err()
}

func (r *revisions) ReadRevision(ctx context.Context, version string) (*atlas.Revision, error) {
	rev, err := scanRevision(r.pool.QueryRowContext(ctx, "SELECT "+revisionColumns+" FROM "+revisionsTable+" WHERE version = ?", version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atlas.ErrRevisionNotExist
	}
	return rev, err
}

func (r *revisions) WriteRevision(ctx context.Context, rev *atlas.Revision) error {
	_, err := r.pool.ExecContext(ctx, "REPLACE INTO "+revisionsTable+" ("+revisionColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		rev.Version, rev.Description, uint64(rev.Type), rev.Applied, rev.Total, rev.ExecutedAt.UTC(), int64(rev.ExecutionTime),
		rev.Error, rev.ErrorStmt, rev.Hash, rev.OperatorVersion)
	return err
}

func (r *revisions) DeleteRevision(ctx context.Context, version string) error {
	_, err := r.pool.ExecContext(ctx, "DELETE FROM "+revisionsTable+" WHERE version = ?", version)
	return err
}

type scanner interface{ Scan(...any) error }

func scanRevision(s scanner) (*atlas.Revision, error) {
	var rev atlas.Revision
	var typ uint64
	var took int64
	var errText, errStmt sql.NullString
	if err := s.Scan(&rev.Version, &rev.Description, &typ, &rev.Applied, &rev.Total, &rev.ExecutedAt, &took, &errText, &errStmt, &rev.Hash, &rev.OperatorVersion); err != nil {
		return nil, err
	}
	rev.Type, rev.ExecutionTime, rev.Error, rev.ErrorStmt = atlas.RevisionType(typ), time.Duration(took), errText.String, errStmt.String
	return &rev, nil
}
