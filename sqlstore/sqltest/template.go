package sqltest

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"tutela/sqlstore"
)

// Migrated PostgreSQL databases are copies of a template.
//
// Migrating a new database takes about a second and a half on the CI machine (40 migrations,
// each in its own transaction, each commit flushed), more than most tests it serves; copying a
// migrated one (CREATE DATABASE … TEMPLATE) takes a fraction of that. Every test still gets a
// database of its own, dropped when it ends. The template is named by the migration set's
// digest (sqlstore.MigrationsDigest), so test processes running at once share one and an edited
// migration gets a new one; it stays in the cluster between runs (one database per migration
// set; building a new one drops the templates of other sets that nobody is using and that were
// built more than templateKeep ago, so two checkouts' test runs at once keep theirs).

// templatePrefix starts the name of every template database this package makes.
const templatePrefix = "tutela_tmpl_"

// pgTemplate builds (or finds) the template once per process.
var pgTemplate = sync.OnceValues(buildTemplate)

// migratedTemplate returns the name of a migrated template database for the current migration
// set, building it if the cluster has none.
func migratedTemplate(t testing.TB) string {
	t.Helper()
	RequirePostgres(t)
	name, err := pgTemplate()
	if err != nil {
		t.Fatalf("migrated template database: %v", err)
	}
	return name
}

// templateLockKey is the advisory lock that serializes building templates across processes.
const templateLockKey = 0x7475_7465_6c61_0001

func buildTemplate() (string, error) {
	digest, err := sqlstore.MigrationsDigest(sqlstore.Postgres)
	if err != nil {
		return "", err
	}
	name := templatePrefix + digest[:16]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		return "", err
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx) // the session that holds the lock
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(templateLockKey)); err != nil {
		return "", err
	}
	defer func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", int64(templateLockKey))
	}()
	var ready bool
	err = conn.QueryRowContext(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&ready)
	if err == nil && ready {
		return name, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	// Nothing usable: a half-built one (a process that died building it, never marked a
	// template) is dropped; so are other migration sets' old templates (sweepTemplates).
	if err := sweepTemplates(ctx, conn, templatePrefix, name, time.Now()); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(AdminURL())
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	if err := migrateClosed(ctx, u.String()); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "COMMENT ON DATABASE "+name+" IS '"+time.Now().UTC().Format(templateBuilt)+"'"); err != nil {
		return "", err
	}
	// Marked only once complete: a template that is not marked is rebuilt, never copied.
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", err
	}
	return name, nil
}

// sweepTemplates drops the template databases (named prefix…) other than name that no session
// is using and that were built more than templateKeep before now (or whose build time is
// unknown), and name itself when it exists half-built. A younger one may belong to a test run of another checkout
// going on now: between two of its copies nobody is using it, and dropping it then would fail
// that run's next test.
func sweepTemplates(ctx context.Context, conn *sql.Conn, prefix, name string, now time.Time) error {
	rows, err := conn.QueryContext(ctx, `SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '')
		FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		return err
	}
	var stale []string
	for rows.Next() {
		var n, comment string
		if err := rows.Scan(&n, &comment); err != nil {
			rows.Close()
			return err
		}
		if built, err := time.Parse(templateBuilt, comment); n != name && err == nil && now.Sub(built) < templateKeep {
			continue
		}
		stale = append(stale, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range stale {
		if n != name {
			// Another set's: dropped only when unused (a run of other code may be copying it).
			if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+n+" WITH IS_TEMPLATE false"); err != nil {
				continue
			}
			if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+n); err != nil {
				_, _ = conn.ExecContext(ctx, "ALTER DATABASE "+n+" WITH IS_TEMPLATE true") // in use: leave it
			}
			continue
		}
		if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop half-built template %s: %w", n, err)
		}
	}
	return nil
}

// A template's build time is its database comment, in this layout. Other migration sets'
// templates are kept for templateKeep after they were built.
const (
	templateBuilt = "tutela test template built 2006-01-02T15:04:05Z"
	templateKeep  = 6 * time.Hour
)

// The SQLite counterpart: a migrated database file, kept in the user's cache directory (one per
// migration set, under its digest) and copied into each test's temporary directory. Migrating a
// SQLite file parses every migration's SQL, which under the race detector (checkptr in the
// transpiled SQLite) cost most of the CPU of the packages that open many stores.

// sqliteTemplate builds (or finds) the template file once per process.
var sqliteTemplate = sync.OnceValues(buildSQLiteTemplate)

// migratedSQLite returns the path of a fresh copy of a migrated SQLite database in the test's
// temporary directory.
func migratedSQLite(t testing.TB) string {
	t.Helper()
	path, err := sqliteTemplate()
	if err != nil {
		t.Fatalf("migrated SQLite template: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "tutela.db")
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func buildSQLiteTemplate() (string, error) {
	digest, err := sqlstore.MigrationsDigest(sqlstore.SQLite)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tutela-sqltest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	final := filepath.Join(dir, "sqlite-"+digest[:16]+".db")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	// Built in a directory of its own and renamed into place once complete and closed (its
	// write-ahead log checkpointed into the file), so a process never copies a half-built one.
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	path := filepath.Join(work, "tutela.db")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrateClosed(ctx, path); err != nil {
		return "", err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return "", fmt.Errorf("template %s: its write-ahead log was not checkpointed on close", path)
	}
	if err := os.Rename(path, final); err != nil {
		return "", err
	}
	// Other migration sets' files, once an hour old (a run of another checkout may still be
	// copying a newer one).
	old, _ := filepath.Glob(filepath.Join(dir, "sqlite-*.db"))
	for _, f := range old {
		if fi, err := os.Stat(f); err == nil && f != final && time.Since(fi.ModTime()) > time.Hour {
			_ = os.Remove(f)
		}
	}
	return final, nil
}

// migrateClosed migrates the database at dsn and closes it.
func migrateClosed(ctx context.Context, dsn string) error {
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		return err
	}
	err = db.Migrate(ctx)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

// Main runs m's tests with up to parallel of the package's parallel tests at once, unless
// -test.parallel was given: a test package whose tests mostly wait on the database (creating
// and dropping theirs, committing) finishes sooner with more of them waiting at once than the
// default of one per core. Use it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(sqltest.Main(m, 6)) }
func Main(m *testing.M, parallel int) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && parallel > 0 {
		if err := flag.Set("test.parallel", strconv.Itoa(parallel)); err != nil {
			fmt.Fprintln(os.Stderr, "sqltest:", err)
			return 2
		}
	}
	return m.Run()
}
