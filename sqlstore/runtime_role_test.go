package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestRuntimeRole_GrantsServeButRefuseRewrites checks the runtime role README documents
// (sqltest.RuntimeGrants): it does not skip row-level security, it can do a request's work
// (create a tenant and a user, record an audit event), and it cannot rewrite evidence or the
// schema version.
func TestRuntimeRole_GrantsServeButRefuseRewrites(t *testing.T) {
	t.Parallel()
	sqltest.RequirePostgres(t)
	ctx := context.Background()
	owner, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{})
	rtDSN := sqltest.RuntimeRoleDSN(t, owner, dsn)
	rt, err := sqlstore.Open(ctx, rtDSN, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	sqltest.AttachVault(t, rt)
	if bypass, err := rt.BypassesRLS(ctx); err != nil || bypass {
		t.Fatalf("runtime role: BypassesRLS = %v, %v; want false", bypass, err)
	}
	if ok, err := rt.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("runtime role reads the schema version: %v, %v", ok, err)
	}
	// tutela serve migrates at start: with the owner's migrations applied, that is a no-op the
	// runtime role may do.
	if err := rt.Migrate(ctx); err != nil {
		t.Fatalf("runtime role's Migrate on a current schema: %v", err)
	}
	var tn *tutela.Tenant
	if err := rt.Update(ctx, func(tx *sqlstore.Tx) error {
		tn = &tutela.Tenant{Slug: "acme", Name: "Acme", Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: "ana@example.org"})
	}); err != nil {
		t.Fatalf("runtime role cannot do a request's work: %v", err)
	}
	for _, table := range sqltest.AppendOnlyTables {
		for _, q := range []string{`DELETE FROM ` + table, `TRUNCATE ` + table} {
			if _, err := rt.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("runtime role %s: err = %v, want permission denied", q, err)
			}
		}
	}
	for _, q := range []string{`UPDATE audit_events SET leaf_hash = leaf_hash`, `DELETE FROM goose_db_version`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`, `INSERT INTO audit_prunes DEFAULT VALUES`} {
		if _, err := rt.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("runtime role %s: err = %v, want permission denied", q, err)
		}
	}
	// Row-level security is in force for it: another tenant's transaction sees no users.
	raw, err := sql.Open("pgx", rtDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if n := countAs(t, raw, "users", tn.ID); n != 1 {
		t.Fatalf("own tenant sees %d users, want 1", n)
	}
	if n := countAs(t, raw, "users", tutela.NewID()); n != 0 {
		t.Fatalf("another tenant sees %d users, want 0", n)
	}
}

// TestRuntimeRole_DocumentedGrantsAreTheTestedOnes: docs/runtime-role.md (which README points
// to) shows exactly the statements sqltest.RuntimeGrants runs, so what operators copy is what
// the tests prove.
func TestRuntimeRole_DocumentedGrantsAreTheTestedOnes(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/runtime-role.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range sqltest.RuntimeGrants("tutela_app", "tutela") {
		if !strings.Contains(string(doc), "\n"+q+";\n") {
			t.Errorf("docs/runtime-role.md lacks %q", q+";")
		}
	}
}
