package sqlstore_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestRLS_UnscopedQueryAsRuntimeRoleSeesOnlyItsTenant connects as a real non-superuser role
// (superusers bypass row-level security) and runs a deliberately unscoped query.
func TestRLS_UnscopedQueryAsRuntimeRoleSeesOnlyItsTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	var a, b *tutela.Tenant
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		a, b = &tutela.Tenant{Slug: "a", Name: "A", Region: "eu"}, &tutela.Tenant{Slug: "b", Name: "B", Region: "eu"}
		for _, tn := range []*tutela.Tenant{a, b} {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).Create(ctx, &tutela.User{Email: "x@example.org"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rt, roleDSN := runtimeRole(t, db, dsn, "users")
	count := func(setting string) int { return countAs(t, rt, "users", setting) }
	if n := count(a.ID); n != 1 {
		t.Fatalf("tenant A sees %d users, want only its own 1", n)
	}
	if n := count(""); n != 0 {
		t.Fatalf("a transaction that never set its tenant sees %d users, want 0 (fail closed)", n)
	}
	if n := count("*"); n != 2 {
		t.Fatalf("platform scope sees %d users, want 2", n)
	}
	if n := count(tutela.NewID()); n != 0 {
		t.Fatalf("unknown tenant sees %d users", n)
	}
	// The store can tell which kind of role it runs as (serve warns about the superuser).
	if bypass, err := db.BypassesRLS(ctx); err != nil || !bypass {
		t.Fatalf("superuser connection: BypassesRLS = %v, %v", bypass, err)
	}
	rtStore, err := sqlstore.Open(ctx, roleDSN, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rtStore.Close()
	if bypass, err := rtStore.BypassesRLS(ctx); err != nil || bypass {
		t.Fatalf("runtime role: BypassesRLS = %v, %v", bypass, err)
	}
}

// runtimeRole creates a PostgreSQL login role that is not a superuser (superusers bypass
// row-level security), granted SELECT on tables, and returns a connection as it and its DSN.
// The role goes when the test ends.
func runtimeRole(t *testing.T, db *sqlstore.DB, dsn string, tables ...string) (*sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	role := "tutela_rt_" + tutela.RandomToken(4)
	owner := db.SQL()
	if _, err := owner.ExecContext(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if _, err := owner.ExecContext(ctx, `GRANT SELECT ON `+table+` TO `+role); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, table := range tables {
			_, _ = owner.ExecContext(context.Background(), `REVOKE ALL ON `+table+` FROM `+role)
		}
		_, _ = owner.ExecContext(context.Background(), `DROP ROLE IF EXISTS `+role)
	})
	u, _ := url.Parse(dsn)
	u.User = url.User(role)
	rt, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, u.String()
}

// countAs counts table's rows with a deliberately unscoped query, in a transaction of rt whose
// tutela.tenant is setting ("" leaves it unset).
func countAs(t *testing.T, rt *sql.DB, table, setting string) int {
	t.Helper()
	ctx := context.Background()
	tx, err := rt.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if setting != "" {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', $1, true)`, setting); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil { // no tenant filter on purpose
		t.Fatal(err)
	}
	return n
}

// wantOneRowPerTenant checks, as the runtime role (row-level security in force), that with one
// row of each table in each of two tenants, tenant a's transaction sees its own one, an
// unscoped transaction none, and the platform scope both.
func wantOneRowPerTenant(t *testing.T, db *sqlstore.DB, dsn, a string, tables ...string) {
	t.Helper()
	rt, _ := runtimeRole(t, db, dsn, tables...)
	for _, table := range tables {
		if n := countAs(t, rt, table, a); n != 1 {
			t.Errorf("%s: tenant A sees %d rows, want its own 1", table, n)
		}
		if n := countAs(t, rt, table, ""); n != 0 {
			t.Errorf("%s: an unscoped transaction sees %d rows, want 0", table, n)
		}
		if n := countAs(t, rt, table, "*"); n != 2 {
			t.Errorf("%s: platform scope sees %d rows, want 2", table, n)
		}
	}
}
