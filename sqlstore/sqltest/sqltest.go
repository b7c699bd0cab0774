// Package sqltest opens fresh, throwaway stores for tests: a SQLite file in t.TempDir, or a
// new PostgreSQL database created for the test and dropped after it.
package sqltest

import (
	"bytes"
	"context"
	"database/sql"

	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"tutela"
	"tutela/sqlstore"
	"tutela/vault"
)

// DefaultPostgresURL is used when TUTELA_TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Dialects lists the dialects every store test runs on.
var Dialects = []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres}

// AdminURL returns the PostgreSQL URL tests connect to for creating databases.
func AdminURL() string {
	if u := os.Getenv("TUTELA_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var (
	pgOnce sync.Once
	pgErr  error
)

// RequirePostgres skips the test when PostgreSQL is unreachable, except under CI=true, where an
// unreachable PostgreSQL fails the test: CI must never pass by skipping the production store.
func RequirePostgres(t testing.TB) {
	t.Helper()
	pgOnce.Do(func() {
		db, err := sql.Open("pgx", AdminURL())
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pgErr = db.PingContext(ctx)
	})
	if pgErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable at TUTELA_TEST_DATABASE_URL (CI=true forbids skipping): %v", pgErr)
		}
		t.Skipf("PostgreSQL unreachable, skipping (set CI=true to fail instead): %v", pgErr)
	}
}

// PostgresURL creates a fresh database for the test and returns its URL; the database is
// dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return postgresURLFrom(t, "")
}

// postgresURLFrom is PostgresURL with the new database copied from template ("": empty).
func postgresURLFrom(t testing.TB, template string) string {
	t.Helper()
	RequirePostgres(t)
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	name := "tutela_test_" + strings.ReplaceAll(tutela.RandomToken(8), "-", "")
	ctx := context.Background()
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + template
	}
	if _, err := admin.ExecContext(ctx, create); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// DSN returns a fresh, empty database for the dialect.
func DSN(t testing.TB, d sqlstore.Dialect) string {
	t.Helper()
	if d == sqlstore.Postgres {
		return PostgresURL(t)
	}
	return filepath.Join(t.TempDir(), "tutela.db")
}

// Open opens a fresh, migrated store of the dialect, closed when the test ends.
func Open(t testing.TB, d sqlstore.Dialect, opt sqlstore.Options) *sqlstore.DB {
	t.Helper()
	db, _ := OpenDSN(t, d, opt)
	return db
}

// OpenDSN is Open that also returns the DSN, for tests that look at the database from outside
// the store (the SQLite file, a pg_dump).
func OpenDSN(t testing.TB, d sqlstore.Dialect, opt sqlstore.Options) (*sqlstore.DB, string) {
	t.Helper()
	var dsn string
	if d == sqlstore.Postgres {
		dsn = postgresURLFrom(t, migratedTemplate(t))
	} else {
		dsn = migratedSQLite(t)
	}
	if opt.SQLiteSynchronous == "" {
		// TUTELA_TEST_SQLITE_SYNCHRONOUS=normal runs a test or benchmark under the other
		// durability setting, to compare the two (docs/durability.md).
		opt.SQLiteSynchronous = os.Getenv("TUTELA_TEST_SQLITE_SYNCHRONOUS")
	}
	db, err := sqlstore.Open(context.Background(), dsn, opt)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	// The database is a copy of a migrated template (template.go): this finds nothing to do.
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	AttachVault(t, db)
	WatchAuthEpochs(t, db)
	return db, dsn
}

// WatchAuthEpochs polls db's authentication-state epochs once, then in the background until the
// test ends, as serve does: the authentication caches are in use in every test that opens its
// store here, so a change to authentication state that the caches miss fails the test that
// makes it and then expects it to hold.
func WatchAuthEpochs(t testing.TB, db *sqlstore.DB) {
	t.Helper()
	if err := db.AuthEpochs().Poll(context.Background()); err != nil {
		t.Fatalf("poll auth epochs: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.AuthEpochs().Run(ctx, sqlstore.AuthEpochPollInterval) }()
	t.Cleanup(func() { cancel(); <-done })
}

// AttachVault opens a vault over db's keysets under the fixed test master key and gives it to
// db (users' personal data is sealed with it), so two stores over one test database (owner and
// runtime role) open each other's data. It returns the vault.
func AttachVault(t testing.TB, db *sqlstore.DB) *vault.Vault {
	t.Helper()
	return AttachVaultAt(t, db, nil)
}

// AttachVaultAt is AttachVault with a vault reading clock (nil: the system clock), for tests
// that rewrap or retire after a rotation: they move the clock past the vault's cache TTL plus
// vault.RotationSettleMargin first.
func AttachVaultAt(t testing.TB, db *sqlstore.DB, clock tutela.Clock) *vault.Vault {
	t.Helper()
	return AttachVaultWith(t, db, vault.Options{Clock: clock})
}

// AttachVaultWith is AttachVault with the vault's options (a clock, a tracer).
func AttachVaultWith(t testing.TB, db *sqlstore.DB, opt vault.Options) *vault.Vault {
	t.Helper()
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{0x5e}, vault.MasterKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(context.Background(), kek, sqlstore.KeysetStore{DB: db}, opt)
	if err != nil {
		t.Fatal(err)
	}
	db.SetVault(v)
	return v
}

// Each runs fn as a subtest on a fresh store of every dialect.
func Each(t *testing.T, fn func(t *testing.T, db *sqlstore.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d, sqlstore.Options{}))
		})
	}
}
