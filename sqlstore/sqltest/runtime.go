package sqltest

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// AppendOnlyTables are the tables whose rows are evidence: triggers refuse UPDATE, DELETE and
// TRUNCATE even to the owner, and the runtime role is not granted them at all, so a stolen
// runtime credential cannot even try (docs/audit.md, "Privileges"). audit_prunes is written
// only by `tutela audit prune`, which runs as the owner. audit_event_ids keeps event ids unique
// across audit_events' monthly partitions. The partitions themselves live in schema
// audit_partitions, on which the runtime role has no USAGE: it reaches their rows only through
// audit_events.
var AppendOnlyTables = []string{"audit_events", "audit_log", "audit_hashes", "audit_checkpoints", "audit_prunes",
	"audit_event_ids", "erasures", "consent_records", "dsr_steps"}

// RuntimeGrants are the statements, run as the owner after every migration, that let role
// serve Tutela from database without owning its tables: so row-level security applies to it
// (the owner, or a superuser, skips it unless FORCEd) and it cannot rewrite evidence. They are
// the ones README's "runtime role" section shows; re-running them is harmless.
func RuntimeGrants(role, database string) []string {
	appendOnly := strings.Join(AppendOnlyTables, ", ")
	return []string{
		`GRANT CONNECT ON DATABASE ` + database + ` TO ` + role,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + role,
		// Evidence: read and append only (the sequencer's heartbeat and the shipping cursors
		// are progress, not evidence, and keep UPDATE from the line above).
		`REVOKE UPDATE, DELETE, TRUNCATE ON ` + appendOnly + ` FROM ` + role,
		`REVOKE INSERT ON audit_prunes FROM ` + role,
		// Creates audit_events' partitions ahead as the owner (SECURITY DEFINER, migration 00041).
		`GRANT EXECUTE ON FUNCTION audit_ensure_partitions(integer) TO ` + role,
		// The schema version is read (readyz), never written: migrations run as the owner.
		`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON goose_db_version FROM ` + role,
	}
}

// RuntimeRoleDSN creates, for the migrated PostgreSQL database at dsn (opened as owner), a
// login role that is neither superuser nor owner nor BYPASSRLS, grants it RuntimeGrants and
// returns dsn with that role as its user. The role is dropped when the test ends, after
// everything the test registered later (its connections) has closed.
func RuntimeRoleDSN(t testing.TB, owner *sqlstore.DB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	role := "tutela_app_" + tutela.RandomToken(6) // hex: a plain identifier
	database := strings.TrimPrefix(u.Path, "/")
	if _, err := owner.SQL().ExecContext(ctx, `CREATE ROLE `+role+` LOGIN NOSUPERUSER NOBYPASSRLS`); err != nil {
		t.Fatalf("create runtime role: %v", err)
	}
	t.Cleanup(func() {
		_, _ = owner.SQL().ExecContext(context.Background(), `DROP OWNED BY `+role)
		if _, err := owner.SQL().ExecContext(context.Background(), `DROP ROLE `+role); err != nil {
			t.Errorf("drop runtime role: %v", err)
		}
	})
	for _, q := range RuntimeGrants(role, database) {
		if _, err := owner.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.User(role)
	return u.String()
}

// OpenRuntime opens a fresh, migrated store of the dialect the way production runs it: on
// PostgreSQL the migrations run as the owner and the returned store connects as a runtime role
// (RuntimeRoleDSN), so row-level security is in force for everything it does; SQLite has no
// roles and is Open. Both stores share the test vault key, so either opens the other's data.
func OpenRuntime(t testing.TB, d sqlstore.Dialect, opt sqlstore.Options) *sqlstore.DB {
	t.Helper()
	owner, dsn := OpenDSN(t, d, opt)
	if d != sqlstore.Postgres {
		return owner
	}
	rt, err := sqlstore.Open(context.Background(), RuntimeRoleDSN(t, owner, dsn), opt)
	if err != nil {
		t.Fatalf("open as runtime role: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	AttachVault(t, rt)
	return rt
}
