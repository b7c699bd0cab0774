package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateBaseline = flag.Bool("update", false, "write sqlstore/baseline/sqlite.sql from the migrations")

// migratedOneByOne is a new SQLite database migrated by goose alone, as before the baseline.
func migratedOneByOne(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := openSQLite(ctx, filepath.Join(t.TempDir(), "m.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := db.provider()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestSQLiteBaseline_IsTheMigrations: the baseline is what the migrations leave, schema and
// rows, for the latest migration; a new database that Migrate starts from it holds exactly that
// (its goose_db_version too); and a value a migration sets to the time it ran is in
// baselineNowColumns (the baseline is applied in a later second than the migrations ran).
func TestSQLiteBaseline_IsTheMigrations(t *testing.T) {
	ctx := context.Background()
	latest, err := LatestMigration(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dumpSQLite(ctx, migratedOneByOne(t).write, latest)
	if err != nil {
		t.Fatal(err)
	}
	if *updateBaseline {
		if err := os.WriteFile(filepath.Join("baseline", "sqlite.sql"), []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Skip("baseline/sqlite.sql written: rebuild and run the test again")
	}
	if sqliteBaseline != want {
		t.Fatalf("baseline/sqlite.sql is not what migrations 1 to %d leave: run "+
			"`go test ./sqlstore -run TestSQLiteBaseline -update`\n%s", latest, firstDifference(sqliteBaseline, want))
	}
	if v := sqliteBaselineVersion(); v != latest {
		t.Fatalf("baseline version %d, want %d", v, latest)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	db, err := openSQLite(ctx, filepath.Join(t.TempDir(), "b.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := dumpSQLite(ctx, db.write, latest)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("a database started from the baseline differs from a migrated one "+
			"(a column set to the time may be missing from baselineNowColumns):\n%s", firstDifference(got, want))
	}
	var applied int
	if err := db.write.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version
		WHERE is_applied AND tstamp >= datetime('now', '-1 minute')`).Scan(&applied); err != nil || applied != int(latest)+1 {
		t.Fatalf("goose_db_version: %d versions applied within the minute, %v; want %d (0 to %d)", applied, err, latest+1, latest)
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("MigrationsCurrent = %v, %v", ok, err)
	}
}

// TestSQLiteBaseline_OnlyForAnEmptyDatabase: the baseline is applied to an empty database only;
// a database migrated before (or holding anything) migrates as it did, and migrations past the
// baseline's version are applied after it.
func TestSQLiteBaseline_OnlyForAnEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	db := migratedOneByOne(t)
	if ok, err := db.applyBaseline(ctx); ok || err != nil {
		t.Fatalf("baseline on a migrated database: %v, %v; want not applied", ok, err)
	}
	other, err := openSQLite(ctx, filepath.Join(t.TempDir(), "o.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.write.ExecContext(ctx, `CREATE TABLE notes (body TEXT)`); err != nil {
		t.Fatal(err)
	}
	if ok, err := other.applyBaseline(ctx); ok || err != nil {
		t.Fatalf("baseline on a database holding a table: %v, %v; want not applied", ok, err)
	}
	// A baseline one migration behind: Migrate applies the last migration after it.
	latest, err := LatestMigration(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	behind, err := openSQLite(ctx, filepath.Join(t.TempDir(), "behind.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer behind.Close()
	p, err := behind.provider()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, latest-1); err != nil {
		t.Fatal(err)
	}
	old, err := dumpSQLite(ctx, behind.write, latest-1)
	if err != nil {
		t.Fatal(err)
	}
	saved := sqliteBaseline
	t.Cleanup(func() { sqliteBaseline = saved })
	sqliteBaseline = old
	fresh, err := openSQLite(ctx, filepath.Join(t.TempDir(), "f.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := fresh.write.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&v); err != nil || v != latest {
		t.Fatalf("version after a baseline of %d: %d, %v; want %d", latest-1, v, err, latest)
	}
	got, err := dumpSQLite(ctx, fresh.write, latest)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dumpSQLite(ctx, db.write, latest)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("baseline behind + the last migration differs from every migration:\n%s", firstDifference(got, want))
	}
}

// firstDifference shows the first line where two dumps differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return "line " + itoa(i+1) + ":\n  got  " + a + "\n  want " + b
		}
	}
	return "(no line differs)"
}

// baselineNowColumns are the columns (table.column) the migrations fill with the time they
// ran, as strftime('%Y-%m-%d %H:%M:%S+00:00', 'now') (baselineNow): the baseline sets them the
// same way, not to the time it was written. A migration that adds another must add it here:
// TestSQLiteBaseline_IsTheMigrations applies the two in different seconds and names it.
var baselineNowColumns = map[string]bool{"roles.created_at": true}

const (
	baselineNow     = `strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')`
	baselineVersion = "-- version "
)

// sqliteObjectOrder is the order dumpSQLite writes schema objects in: tables, then their rows,
// then indexes, views and triggers (a view or trigger may name tables made after it).
var sqliteObjectOrder = []string{"table", "index", "view", "trigger"}

// dumpSQLite writes the baseline of a migrated SQLite database: every schema object and every
// row (goose_db_version's as the versions applied), version being the latest migration. Values
// of baselineNowColumns are written as baselineNow.
func dumpSQLite(ctx context.Context, q *sql.DB, version int64) (string, error) {
	var b strings.Builder
	b.WriteString("-- Generated by `go test ./sqlstore -run TestSQLiteBaseline -update`: do not edit.\n")
	b.WriteString("-- The SQLite schema and rows that applying migrations 1 to N leaves (sqlstore/baseline.go).\n")
	fmt.Fprintf(&b, "%s%d\n", baselineVersion, version)
	for _, typ := range sqliteObjectOrder {
		rows, err := q.QueryContext(ctx, `SELECT name, sql FROM sqlite_master
			WHERE type = $1 AND sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`, typ)
		if err != nil {
			return "", err
		}
		var names, stmts []string
		for rows.Next() {
			var name, stmt string
			if err := rows.Scan(&name, &stmt); err != nil {
				rows.Close()
				return "", err
			}
			names, stmts = append(names, name), append(stmts, stmt)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", err
		}
		for _, s := range stmts {
			b.WriteString(s)
			b.WriteString(";\n")
		}
		if typ != "table" {
			continue
		}
		for _, t := range names {
			if err := dumpRows(ctx, q, &b, t); err != nil {
				return "", err
			}
		}
	}
	return b.String(), nil
}

// dumpRows writes table's rows as INSERT statements, in rowid order where the table has one.
func dumpRows(ctx context.Context, q *sql.DB, b *strings.Builder, table string) error {
	if table == "goose_db_version" {
		// As goose records an applied migration: the time is when it is applied.
		rows, err := q.QueryContext(ctx, `SELECT version_id, is_applied FROM goose_db_version ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v, applied int64
			if err := rows.Scan(&v, &applied); err != nil {
				return err
			}
			fmt.Fprintf(b, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (%d, %d);\n", v, applied)
		}
		return rows.Err()
	}
	cols, err := tableColumns(ctx, q, table)
	if err != nil {
		return err
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "quote(" + quoteIdent(c) + ")"
	}
	order := "1"
	for i := 2; i <= len(cols); i++ {
		order += ", " + strconv.Itoa(i)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+strings.Join(sel, ", ")+` FROM `+quoteIdent(table)+` ORDER BY `+order) // #nosec G202 -- names from sqlite_master
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteIdent(c)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = v
			if baselineNowColumns[table+"."+cols[i]] {
				out[i] = baselineNow
			}
		}
		fmt.Fprintf(b, "INSERT INTO %s (%s) VALUES (%s);\n", quoteIdent(table), strings.Join(quoted, ", "), strings.Join(out, ", "))
	}
	return rows.Err()
}

// tableColumns lists a SQLite table's columns in order.
func tableColumns(ctx context.Context, q *sql.DB, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info($1) ORDER BY cid`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 && rows.Err() == nil {
		return nil, errors.New("sqlite baseline: table " + table + " has no columns")
	}
	return cols, rows.Err()
}

var baselineVersionRE = regexp.MustCompile(`(?m)^` + baselineVersion + `(\d+)$`)

// sqliteBaselineVersion is the latest migration the baseline stands for (0: none).
func sqliteBaselineVersion() int64 {
	m := baselineVersionRE.FindStringSubmatch(sqliteBaseline)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}
