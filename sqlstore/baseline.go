package sqlstore

import (
	"context"
	_ "embed"
	"fmt"
)

// A new SQLite database starts from a baseline: the schema and the rows that applying every
// migration in turn leaves, as one script run in one transaction. Applying 40 migrations one by
// one costs ~130 ms of CPU (SQLite re-parses its whole schema after each ALTER TABLE) and ~50
// fsyncs, most of a fresh data directory's start-up; the baseline costs a fraction of that.
// Databases that exist already migrate as before, and so does anything the baseline does not
// cover yet: it records the migrations it stands for in goose_db_version, and goose applies
// those after it. TestSQLiteBaseline_IsTheMigrations keeps it equal to the migrations (schema
// and rows); `go test ./sqlstore -run TestSQLiteBaseline -update` writes it again.
//
//go:embed baseline/sqlite.sql
var sqliteBaseline string

// applyBaseline starts an empty SQLite database from the baseline; it reports false, doing
// nothing, when the database is not empty (migrated before, or not Tutela's).
func (db *DB) applyBaseline(ctx context.Context) (bool, error) {
	if db.dialect != SQLite || sqliteBaseline == "" {
		return false, nil
	}
	// The usual case, a database migrated before, is found without taking the write lock.
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n > 0 {
		return false, err
	}
	// The write pool's transactions begin IMMEDIATE: a second process starting on the same
	// data directory waits here and then finds the tables.
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	// The rows go in before the triggers exist (the migrations made them so too) and before
	// the foreign keys are checked (at commit).
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, sqliteBaseline); err != nil {
		return false, fmt.Errorf("sqlite baseline: %w", err)
	}
	return true, tx.Commit()
}
