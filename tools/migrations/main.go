// Command migrations writes the next versioned migration of wxlogin's MySQL schema:
// the SQL that brings the committed files up to ent/schema, computed by ent's Atlas
// integration against a scratch database it creates and drops.
//
//	go run ./tools/migrations -name add_blocked_users     # writes internal/database/migrations/<version>_add_blocked_users.sql
//	go run ./tools/migrations -check                      # fails when ent/schema and the files disagree (CI)
//
// -mysql is the server to make the scratch database on (root@tcp(127.0.0.1:3306)/ by
// default, as the tests use).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	atlas "ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	_ "github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/ent/migrate"
)

func main() {
	name := flag.String("name", "", "the new migration's name, such as add_blocked_users")
	check := flag.Bool("check", false, "write nothing; exit 1 when ent/schema needs a migration the files lack")
	server := flag.String("mysql", "root@tcp(127.0.0.1:3306)/", "the MySQL server to make the scratch database on (a go-sql-driver DSN without a database)")
	dirPath := flag.String("dir", "internal/database/migrations", "the migration files")
	rehash := flag.Bool("hash", false, "rewrite atlas.sum after a file was edited by hand (a data step added to a written migration)")
	flag.Parse()
	if *rehash {
		dir, err := atlas.NewLocalDir(*dirPath)
		if err == nil {
			var sum atlas.HashFile
			if sum, err = dir.Checksum(); err == nil {
				err = atlas.WriteSumFile(dir, sum)
			}
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("rewrote", filepath.Join(*dirPath, atlas.HashFileName))
		return
	}
	if *name == "" && !*check {
		log.Fatal("give -name for the new migration, or -check")
	}
	ctx := context.Background()
	scratch := fmt.Sprintf("wxlogin_migrations_%d", time.Now().UnixNano())
	admin, err := sql.Open("mysql", *server)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+scratch+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		log.Fatal(err)
	}
	defer admin.ExecContext(ctx, "DROP DATABASE "+scratch)

	work := *dirPath
	if *check {
		// Diff into a copy, and compare.
		tmp, err := os.MkdirTemp("", "wxlogin-migrations-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		files, _ := filepath.Glob(filepath.Join(*dirPath, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				log.Fatal(err)
			}
			os.WriteFile(filepath.Join(tmp, filepath.Base(f)), b, 0o644)
		}
		work = tmp
		*name = "pending"
	}
	dir, err := atlas.NewLocalDir(work)
	if err != nil {
		log.Fatal(err)
	}
	before, _ := dir.Files()
	url := "mysql://" + withDatabase(*server, scratch)
	err = migrate.NamedDiff(ctx, url, *name,
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(dialect.MySQL),
		schema.WithFormatter(atlas.DefaultFormatter),
	)
	if err != nil {
		log.Fatal(err)
	}
	after, _ := dir.Files()
	switch {
	case *check && len(after) != len(before):
		b, _ := os.ReadFile(filepath.Join(work, after[len(after)-1].Name()))
		fmt.Fprintf(os.Stderr, "ent/schema and %s disagree: this migration is missing (go run ./tools/migrations -name <what_changed>):\n%s", *dirPath, b)
		os.Exit(1)
	case *check:
		fmt.Printf("%s matches ent/schema (%d files)\n", *dirPath, len(after))
	case len(after) == len(before):
		fmt.Println("ent/schema and the files agree: no migration to write")
	default:
		fmt.Println("wrote", filepath.Join(*dirPath, after[len(after)-1].Name()))
	}
}

// withDatabase turns "user@tcp(host:port)/" into ent's "user@host:port/db" form.
func withDatabase(dsn, db string) string {
	// ent's mysql URL is mysql://user:pass@host:port/db; the DSN's tcp(...) is dropped.
	out := ""
	for i := 0; i < len(dsn); i++ {
		if dsn[i:] != "" && len(dsn[i:]) >= 4 && dsn[i:i+4] == "tcp(" {
			j := i + 4
			for j < len(dsn) && dsn[j] != ')' {
				j++
			}
			out += dsn[i+4 : j]
			i = j
			continue
		}
		out += string(dsn[i])
	}
	if len(out) > 0 && out[len(out)-1] == '/' {
		out = out[:len(out)-1]
	}
	return out + "/" + db
}
