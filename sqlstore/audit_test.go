package sqlstore_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestAudit_RuntimeRoleCannotRewrite connects as a real non-owner role with only INSERT and
// SELECT on the audit tables (the grants docs/audit.md prescribes): it can record and sequence,
// and PostgreSQL itself refuses its UPDATE, DELETE and TRUNCATE before any trigger runs.
func TestAudit_RuntimeRoleCannotRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	owner, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, owner)
	role := "tutela_rt_" + tutela.RandomToken(6)
	u, _ := url.Parse(dsn)
	dbName := strings.TrimPrefix(u.Path, "/")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT CONNECT ON DATABASE ` + dbName + ` TO ` + role,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT ON audit_events, audit_log, audit_hashes, audit_checkpoints TO ` + role,
		`GRANT SELECT ON audit_prunes TO ` + role,
		// The sequencer's queue: AuditMany adds, a round removes; not evidence.
		`GRANT SELECT, INSERT, DELETE ON audit_pending TO ` + role,
		// The sequencer's heartbeat (one row, rewritten each round) is not part of the log.
		`GRANT SELECT, INSERT, UPDATE ON audit_sequencer TO ` + role,
		`GRANT USAGE ON SEQUENCE audit_events_pos_seq TO ` + role,
		// Event ids, unique across the monthly partitions (migration 00041), and the function
		// that creates partitions ahead as the owner.
		`GRANT SELECT, INSERT ON audit_event_ids TO ` + role,
		`GRANT EXECUTE ON FUNCTION audit_ensure_partitions(integer) TO ` + role,
	} {
		if _, err := owner.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.User(role)
	rt, err := sqlstore.Open(ctx, u.String(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Close()
		_, _ = owner.SQL().ExecContext(ctx, `DROP OWNED BY `+role)
		if _, err := owner.SQL().ExecContext(ctx, `DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	if err := rt.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "runtime.ok", Outcome: audit.OutcomeSuccess})
	}); err != nil {
		t.Fatalf("runtime role cannot record: %v", err)
	}
	skey, _, _ := audit.GenerateKey("tutela.test/audit")
	signer, _ := audit.NewSigner(skey)
	if n, err := sqlstore.NewSequencer(rt, signer, "tutela.test/audit", sqlstore.SequencerOptions{}).Step(ctx); err != nil || n != 1 {
		t.Fatalf("runtime role cannot sequence: %d, %v", n, err)
	}
	for _, table := range []string{"audit_events", "audit_log", "audit_hashes", "audit_checkpoints", "audit_prunes", "audit_event_ids"} {
		for _, q := range []string{
			`UPDATE ` + table + ` SET created_at = created_at`,
			`DELETE FROM ` + table,
			`TRUNCATE ` + table,
		} {
			if table == "audit_events" || table == "audit_log" || table == "audit_hashes" {
				q = strings.Replace(q, "created_at = created_at", "leaf_hash = leaf_hash", 1)
				if table == "audit_hashes" {
					q = strings.Replace(q, "leaf_hash = leaf_hash", "hash = hash", 1)
				}
			}
			if table == "audit_event_ids" {
				q = strings.Replace(q, "created_at = created_at", "id = id", 1)
			}
			_, err := rt.SQL().ExecContext(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("runtime role %s: err = %v, want permission denied", q, err)
			}
		}
	}
	if _, err := rt.AuditPrune(ctx, time.Now(), audit.Event{}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("runtime role could prune: %v", err)
	}
}
