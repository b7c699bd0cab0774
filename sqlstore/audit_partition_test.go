package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// audit_events is partitioned by month on PostgreSQL (migration 00041, docs/audit.md
// "Retention"). These tests are PostgreSQL's own: SQLite keeps one table.

const partOrigin = "tutela.test/audit"

type partKit struct {
	db   *sqlstore.DB
	seq  *sqlstore.Sequencer
	vkey string
}

func newPartKit(t *testing.T, db *sqlstore.DB) *partKit {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(partOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &partKit{db: db, vkey: vkey, seq: sqlstore.NewSequencer(db, s, partOrigin, sqlstore.SequencerOptions{})}
}

// marchPartKit is a PostgreSQL store whose clock stands at 10 March 2026, with its kit.
func marchPartKit(t *testing.T) (context.Context, *clocktest.Clock, *sqlstore.DB, *partKit) {
	t.Helper()
	sqltest.RequirePostgres(t)
	clock := clocktest.New(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{Clock: clock.Now})
	return context.Background(), clock, db, newPartKit(t, db)
}

func (k *partKit) record(t *testing.T, tenant string, i int) {
	t.Helper()
	e := auditEventN(i)
	e.TenantID = tenant
	if err := k.db.Update(context.Background(), func(tx *sqlstore.Tx) error { return tx.Audit(context.Background(), e) }); err != nil {
		t.Fatal(err)
	}
}

func (k *partKit) sequenceAll(t *testing.T) {
	t.Helper()
	for {
		n, err := k.seq.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (k *partKit) verify(t *testing.T) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), k.db.AuditSource(), k.vkey, partOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func partitionNames(t *testing.T, db *sqlstore.DB) []string {
	t.Helper()
	// pg_inherits itself, not AuditPartitions: the test checks what the catalog says.
	rows, err := db.SQL().QueryContext(context.Background(), `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func countIn(t *testing.T, db *sqlstore.DB, table string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventRows is every audit_events row, in pos order, as text: what a move must keep unchanged.
func eventRows(t *testing.T, db *sqlstore.DB) string {
	t.Helper()
	var s sql.NullString
	if err := db.SQL().QueryRowContext(context.Background(), `SELECT string_agg(concat_ws('|', pos, id, time, tenant_id,
		actor_type, actor_id, action, target_type, target_id, outcome, request_id, encode(canonical, 'hex'),
		encode(leaf_hash, 'hex')), E'\n' ORDER BY pos) FROM audit_events`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s.String
}

// TestAuditPartitions_PruneDropsWholeMonths records events over five months (the store's clock
// set to each), lets audit_ensure_partitions move them from the default partition into their
// months, sequences them and prunes with a cutoff in the fourth month: the months before it go
// whole (detached and dropped), except one holding an unsequenced event, whose sequenced rows go
// row by row; the cutoff's month loses its rows before the cutoff. The log still verifies with
// every pruned entry counted, proofs of pruned and kept entries check, and search by tenant and
// time reads what is left.
func TestAuditPartitions_PruneDropsWholeMonths(t *testing.T) {
	t.Parallel()
	ctx, clock, db, k := marchPartKit(t)
	tA, tB := tutela.NewID(), tutela.NewID()
	months := []time.Time{}
	for m := range 5 { // March to July 2026, four events each, tenants alternating
		at := time.Date(2026, time.March+time.Month(m), 10, 12, 0, 0, 0, time.UTC)
		months = append(months, at)
		clock.Set(at)
		for i := range 4 {
			tenant := tA
			if i%2 == 1 {
				tenant = tB
			}
			k.record(t, tenant, m*4+i)
		}
	}
	// The months are before the database's own clock, so no partition existed for them: the rows
	// are in the default partition until audit_ensure_partitions moves them, unchanged.
	if n := countIn(t, db, "audit_partitions.audit_events_default"); n != 20 {
		t.Fatalf("default partition holds %d, want the 20 events of past months", n)
	}
	before := eventRows(t, db)
	created, err := db.AuditEnsurePartitions(ctx)
	if err != nil || created < 5 {
		t.Fatalf("AuditEnsurePartitions = %d, %v; want the 5 past months at least", created, err)
	}
	if n := countIn(t, db, "audit_partitions.audit_events_default"); n != 0 {
		t.Fatalf("default partition still holds %d after the months were created", n)
	}
	if after := eventRows(t, db); after != before {
		t.Fatalf("moving rows out of the default partition changed them:\n%s\n---\n%s", before, after)
	}
	for _, m := range months {
		name := "audit_partitions.audit_events_" + m.Format("2006_01")
		if n := countIn(t, db, name); n != 4 {
			t.Fatalf("%s holds %d events, want 4", name, n)
		}
	}
	if again, err := db.AuditEnsurePartitions(ctx); err != nil || again != 0 {
		t.Fatalf("a second AuditEnsurePartitions = %d, %v; want nothing to do", again, err)
	}
	k.sequenceAll(t)
	// An April event recorded late (a clock behind) and not sequenced: April cannot go whole.
	clock.Set(time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC))
	k.record(t, tA, 99)
	clock.Set(time.Date(2026, 7, 20, 0, 0, 0, 0, time.UTC))
	cutoff := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	pruned, err := db.AuditPrune(ctx, cutoff, audit.Event{})
	// March and May whole (8), April's 4 sequenced rows one by one, June's 4 (all before the 15th).
	if err != nil || pruned != 16 {
		t.Fatalf("AuditPrune = %d, %v; want 16", pruned, err)
	}
	parts := partitionNames(t, db)
	for _, gone := range []string{"audit_events_2026_03", "audit_events_2026_05"} {
		if slices.Contains(parts, gone) {
			t.Errorf("%s still attached after the prune: %v", gone, parts)
		}
		var exists bool
		if err := db.SQL().QueryRowContext(ctx, `SELECT to_regclass('audit_partitions.' || $1) IS NOT NULL`, gone).Scan(&exists); err != nil || exists {
			t.Errorf("%s not dropped: %v, %v", gone, exists, err)
		}
	}
	for _, kept := range []string{"audit_events_2026_04", "audit_events_2026_06", "audit_events_2026_07", "audit_events_default"} {
		if !slices.Contains(parts, kept) {
			t.Errorf("%s dropped: %v", kept, parts)
		}
	}
	if n := countIn(t, db, "audit_partitions.audit_events_2026_04"); n != 1 {
		t.Errorf("April holds %d, want only its unsequenced event", n)
	}
	if n := countIn(t, db, "audit_partitions.audit_events_2026_07"); n != 5 {
		t.Errorf("July holds %d, want its 4 events untouched and the prune's record", n)
	}
	k.sequenceAll(t) // the late April event and the prune's own record
	rep := k.verify(t)
	if !rep.OK || rep.Size != 22 || rep.Pruned != 16 {
		t.Fatalf("verify after the prune: OK=%v size=%d pruned=%d failures=%+v", rep.OK, rep.Size, rep.Pruned, rep.Failures)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: sqlstore.ActionAuditPrune})
	if err != nil || len(recs) != 1 || fmt.Sprint(recs[0].Event.Details["pruned"]) != "16" {
		t.Fatalf("the prune's record: %+v, %v", recs, err)
	}
	cp, err := db.AuditCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.OpenCheckpoint(cp, k.vkey, partOrigin)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := db.AuditEntries(ctx, 0, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int64{0, 8, 19} { // March (dropped), May (dropped), July (kept)
		p, err := db.AuditInclusionProof(ctx, idx, c.Size)
		if err != nil || audit.CheckInclusion(p, c.Size, c.Root, idx, entries[idx].LeafHash) != nil {
			t.Fatalf("inclusion proof of entry %d: %v", idx, err)
		}
		if wantPruned := idx < 19; entries[idx].Pruned != wantPruned {
			t.Fatalf("entry %d pruned = %v, want %v", idx, entries[idx].Pruned, wantPruned)
		}
	}
	july, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tA, From: months[4].AddDate(0, 0, -9), To: months[4].AddDate(0, 0, 21)})
	if err != nil || len(july) != 2 {
		t.Fatalf("tenant A in July: %d events, %v; want 2", len(july), err)
	}
	for _, r := range july {
		if r.Event.TenantID != tA || r.Index < 0 {
			t.Fatalf("tenant A's July read: %+v", r)
		}
	}
	if june, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tB, From: months[3].AddDate(0, 0, -9), To: cutoff}); err != nil || len(june) != 0 {
		t.Fatalf("tenant B before the cutoff in June: %d events, %v; want none (pruned)", len(june), err)
	}
	if april, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tA, To: months[2]}); err != nil || len(april) != 1 {
		t.Fatalf("tenant A before May: %d events, %v; want the late April one", len(april), err)
	}
}

// TestAuditPartitions_DroppedOutsidePruneIsTampering drops a month's partition as the owner can
// (DETACH, DROP: no trigger fires on either) after a prune whose cutoff is before that month: the
// bodies are missing after the cutoff, which verify names as tampering at the month's first
// entry, not as pruned.
func TestAuditPartitions_DroppedOutsidePruneIsTampering(t *testing.T) {
	t.Parallel()
	ctx, clock, db, k := marchPartKit(t)
	for m := range 2 {
		clock.Set(time.Date(2026, time.March+time.Month(m), 10, 12, 0, 0, 0, time.UTC))
		for i := range 3 {
			k.record(t, "", m*3+i)
		}
	}
	if _, err := db.AuditEnsurePartitions(ctx); err != nil {
		t.Fatal(err)
	}
	k.sequenceAll(t)
	if n, err := db.AuditPrune(ctx, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), audit.Event{}); err != nil || n != 0 {
		t.Fatalf("AuditPrune before every event = %d, %v", n, err)
	}
	k.sequenceAll(t)
	if rep := k.verify(t); !rep.OK {
		t.Fatalf("before tampering: %+v", rep.Failures)
	}
	for _, q := range []string{
		`ALTER TABLE audit_events DETACH PARTITION audit_partitions.audit_events_2026_04`,
		`DROP TABLE audit_partitions.audit_events_2026_04`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rep := k.verify(t)
	if rep.OK || len(rep.Failures) == 0 || rep.Failures[0].Index != 3 || rep.Failures[0].Kind != audit.KindContentMismatch {
		t.Fatalf("a dropped month after the cutoff: OK=%v failures=%+v; want content_mismatch at 3", rep.OK, rep.Failures)
	}
	if rep.Pruned != 0 {
		t.Fatalf("dropped bodies reported as pruned: %d", rep.Pruned)
	}
}

// TestAuditPartitions_PrivilegesOnPartitions checks the trap partitions set: each is a table of
// its own. The runtime role (sqltest.RuntimeGrants, as documented) records and reads through
// audit_events and may create partitions ahead through the owner's function, but cannot touch a
// partition (no USAGE on schema audit_partitions, not the owner): UPDATE, DELETE, TRUNCATE, DROP
// and DETACH are refused, and so is the internal partition-creating function. The owner is
// refused UPDATE, DELETE and TRUNCATE on a partition by triggers, as on audit_events: every
// partition carries the cloned row trigger and a TRUNCATE trigger of its own.
func TestAuditPartitions_PrivilegesOnPartitions(t *testing.T) {
	t.Parallel()
	sqltest.RequirePostgres(t)
	ctx := context.Background()
	owner, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{})
	rt, err := sqlstore.Open(ctx, sqltest.RuntimeRoleDSN(t, owner, dsn), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	sqltest.AttachVault(t, rt)
	k := newPartKit(t, rt)
	k.record(t, "", 1) // now: the current month's partition
	if _, err := rt.AuditEnsurePartitions(ctx); err != nil {
		t.Fatalf("runtime role cannot create partitions ahead: %v", err)
	}
	// A far-future event goes to the default partition: an insert never fails for want of one.
	if err := rt.Update(ctx, func(tx *sqlstore.Tx) error {
		e := auditEventN(2)
		e.Time = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
		return tx.Audit(ctx, e)
	}); err != nil {
		t.Fatalf("runtime role, event beyond every partition: %v", err)
	}
	k.sequenceAll(t)
	current := "audit_partitions.audit_events_" + time.Now().UTC().Format("2006_01")
	if countIn(t, owner, current) != 1 || countIn(t, owner, "audit_partitions.audit_events_default") != 1 {
		t.Fatalf("events not where they belong: %v", partitionNames(t, owner))
	}
	for _, part := range []string{current, "audit_partitions.audit_events_default"} {
		for _, q := range []string{
			`UPDATE ` + part + ` SET action = 'x'`,
			`DELETE FROM ` + part,
			`TRUNCATE ` + part,
			`DROP TABLE ` + part,
			`ALTER TABLE audit_events DETACH PARTITION ` + part,
			`SELECT count(*) FROM ` + part,
		} {
			_, err := rt.SQL().ExecContext(ctx, q)
			if err == nil || !(strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "must be owner")) {
				t.Errorf("runtime role %s: err = %v, want a refusal", q, err)
			}
		}
		for _, q := range []string{
			`UPDATE ` + part + ` SET action = 'x'`,
			`DELETE FROM ` + part,
			`TRUNCATE ` + part,
			// The prune setting alone opens nothing: no prune record in this transaction.
			`SELECT set_config('tutela.audit_prune', 'on', true); DELETE FROM ` + part,
		} {
			_, err := owner.SQL().ExecContext(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("owner %s: err = %v, want the append-only refusal", q, err)
			}
		}
	}
	if _, err := rt.SQL().ExecContext(ctx, `SELECT audit_partition_create('2030-01-01 00:00+00')`); err == nil ||
		!strings.Contains(err.Error(), "permission denied") {
		t.Errorf("runtime role called the internal partition function: %v", err)
	}
	for _, n := range []int{-1, 25} {
		if _, err := rt.SQL().ExecContext(ctx, `SELECT audit_ensure_partitions($1)`, n); err == nil {
			t.Errorf("audit_ensure_partitions(%d) accepted", n)
		}
	}
	var missing []string
	rows, err := owner.SQL().QueryContext(ctx, `SELECT c.relname,
		(SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'audit_events_guard' AND g.tgparentid <> 0 AND g.tgenabled = 'O'),
		(SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'audit_partition_no_truncate' AND g.tgenabled = 'O')
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for rows.Next() {
		var name string
		var guard, trunc int
		if err := rows.Scan(&name, &guard, &trunc); err != nil {
			t.Fatal(err)
		}
		parts++
		if guard != 1 || trunc != 1 {
			missing = append(missing, fmt.Sprintf("%s (guard %d, truncate %d)", name, guard, trunc))
		}
	}
	rows.Close()
	if parts < 1+1+sqlstore.AuditPartitionsAhead || len(missing) > 0 {
		t.Fatalf("%d partitions; without their triggers: %v", parts, missing)
	}
	if rep := k.verify(t); !rep.OK || rep.Size != 2 {
		t.Fatalf("after the refused attempts: %+v", rep)
	}
}

// TestAuditPartitions_MigrationMovesRows upgrades a database holding events (recorded as 00040
// did, by a role with the grants of that version) to 00041: every row is in the partitioned table
// unchanged and in its month's partition (a month beyond the horizon in the default one), the
// sequence continues, the indexes and triggers are there, and the old role, whose grants the
// migration carried over, records, sequences and is refused rewrites; the log then verifies.
func TestAuditPartitions_MigrationMovesRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	owner, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	if err := owner.MigrateTo(ctx, 40); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, owner)
	role := "tutela_m41_" + tutela.RandomToken(6)
	u, _ := url.Parse(dsn)
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT CONNECT ON DATABASE ` + strings.TrimPrefix(u.Path, "/") + ` TO ` + role,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT ON audit_events, audit_log, audit_hashes, audit_checkpoints TO ` + role,
		`GRANT SELECT ON audit_prunes TO ` + role,
		`GRANT SELECT, INSERT, DELETE ON audit_pending TO ` + role,
		`GRANT SELECT, INSERT, UPDATE ON audit_sequencer TO ` + role,
		`GRANT USAGE ON SEQUENCE audit_events_pos_seq TO ` + role,
	} {
		if _, err := owner.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = owner.SQL().ExecContext(context.Background(), `DROP OWNED BY `+role)
		_, _ = owner.SQL().ExecContext(context.Background(), `DROP ROLE `+role)
	})
	// Events as 00040's AuditMany wrote them: the event and its queue entry in one statement.
	times := []time.Time{
		time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), time.Date(2025, 11, 30, 23, 59, 59, 999999000, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 14, 8, 0, 0, 0, time.UTC),
		time.Now().UTC().Truncate(time.Microsecond),
		time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC), // beyond the months the migration creates
	}
	for i, at := range times {
		e := auditEventN(i)
		e.ID, e.Time = tutela.NewID(), at
		e = e.Normalized()
		c, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		leaf := audit.LeafHash(c)
		if _, err := owner.SQL().ExecContext(ctx, `WITH e AS (INSERT INTO audit_events (id, time, tenant_id, actor_type,
			actor_id, action, target_type, target_id, outcome, request_id, canonical, leaf_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING pos) INSERT INTO audit_pending (pos) SELECT pos FROM e`,
			e.ID, e.Time, e.TenantID, e.ActorType, e.ActorID, e.Action, e.TargetType, e.TargetID, e.Outcome, e.RequestID, c, leaf[:]); err != nil {
			t.Fatal(err)
		}
	}
	before := eventRows(t, owner)
	var maxPos int64
	if err := owner.SQL().QueryRowContext(ctx, `SELECT max(pos) FROM audit_events`).Scan(&maxPos); err != nil {
		t.Fatal(err)
	}

	if err := owner.Migrate(ctx); err != nil {
		t.Fatalf("migrate to 00041 with events: %v", err)
	}
	if after := eventRows(t, owner); after != before {
		t.Fatalf("rows changed by the migration:\n%s\n---\n%s", before, after)
	}
	var kind string
	if err := owner.SQL().QueryRowContext(ctx, `SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass`).Scan(&kind); err != nil || kind != "p" {
		t.Fatalf("audit_events relkind %q, %v; want p (partitioned)", kind, err)
	}
	for _, c := range []struct {
		table string
		n     int
	}{
		{"audit_partitions.audit_events_2025_11", 2}, {"audit_partitions.audit_events_2026_01", 1},
		{"audit_partitions.audit_events_2026_02", 1}, {"audit_partitions.audit_events_" + times[4].Format("2006_01"), 1},
		{"audit_partitions.audit_events_default", 1}, {"audit_event_ids", 6},
	} {
		if n := countIn(t, owner, c.table); n != c.n {
			t.Errorf("%s holds %d, want %d", c.table, n, c.n)
		}
	}
	var untimed int
	if err := owner.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_pending q
		WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.pos = q.pos AND e.time = q.time)`).Scan(&untimed); err != nil || untimed != 0 {
		t.Fatalf("%d queue entries without their event's time, %v", untimed, err)
	}
	var indexes string
	if err := owner.SQL().QueryRowContext(ctx, `SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
		WHERE schemaname = 'public' AND tablename = 'audit_events'`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if want := "audit_events_action,audit_events_actor,audit_events_id,audit_events_pkey,audit_events_target,audit_events_tenant_time"; indexes != want {
		t.Fatalf("indexes %s, want %s", indexes, want)
	}
	for _, q := range []string{`UPDATE audit_events SET action = 'x'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`,
		`TRUNCATE audit_partitions.audit_events_2025_11`, `DELETE FROM audit_partitions.audit_events_default`, `DELETE FROM audit_event_ids`} {
		if _, err := owner.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("owner %s after the migration: %v, want the append-only refusal", q, err)
		}
	}

	// The role of 00040 keeps serving: its grants were carried over (and extended to the id
	// table and the partition function); its rewrites stay refused.
	u.User = url.User(role)
	rt, err := sqlstore.Open(ctx, u.String(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	k := newPartKit(t, rt)
	k.record(t, "", 7)
	var newPos int64
	if err := owner.SQL().QueryRowContext(ctx, `SELECT max(pos) FROM audit_events`).Scan(&newPos); err != nil || newPos != maxPos+1 {
		t.Fatalf("a new event's pos %d, want %d (the sequence continues), %v", newPos, maxPos+1, err)
	}
	if _, err := rt.AuditEnsurePartitions(ctx); err != nil {
		t.Fatalf("the old role cannot create partitions ahead: %v", err)
	}
	for _, q := range []string{`UPDATE audit_events SET action = 'x'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`,
		`DELETE FROM audit_partitions.audit_events_2025_11`, `DELETE FROM audit_event_ids`} {
		if _, err := rt.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("old role %s after the migration: %v, want permission denied", q, err)
		}
	}
	k.sequenceAll(t)
	if rep := k.verify(t); !rep.OK || rep.Size != int64(len(times))+1 {
		t.Fatalf("verify after the migration: OK=%v size=%d failures=%+v", rep.OK, rep.Size, rep.Failures)
	}
}

// TestAuditPartitions_RangeReadsOneMonthPerEntry checks by the plans PostgreSQL makes, with
// statistics, 24 past months of 1,000 sequenced events each and the migration's partitions, that
// reading a range of the log with its bodies (export and shipping through AuditEntries, the
// monitor) looks each body up in an index, never scanning or hashing audit_events' partitions;
// and that the bodies are found.
func TestAuditPartitions_RangeReadsOneMonthPerEntry(t *testing.T) {
	t.Parallel()
	sqltest.RequirePostgres(t)
	ctx := context.Background()
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{})
	for _, q := range []string{
		`SELECT audit_partition_create(date_trunc('month', now(), 'UTC') - make_interval(months => g)) FROM generate_series(1, 24) g`,
		`INSERT INTO audit_events (id, time, tenant_id, actor_type, actor_id, action, target_type, target_id, outcome,
			request_id, canonical, leaf_hash)
		SELECT 'fill-' || g, date_trunc('month', now(), 'UTC') - make_interval(months => 24 - (g - 1) / 1000) + make_interval(secs => g),
			'', 'system', '', 'fill', '', '', 'success', '', '\x7b7d'::bytea, sha256(g::text::bytea)
		FROM generate_series(1, 24000) g`,
		`INSERT INTO audit_log (idx, event_id, time, leaf_hash) SELECT row_number() OVER (ORDER BY pos) - 1, id, time, leaf_hash FROM audit_events`,
		`ANALYZE audit_events`, `ANALYZE audit_log`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if parts := partitionNames(t, db); len(parts) < 29 {
		t.Fatalf("%d partitions, want 24 past months and the migration's", len(parts))
	}
	for q, args := range sqlstore.AuditRangeQueries(sqlstore.Postgres, 11_500, 1000) { // across two months
		plan, err := db.Explain(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		text := strings.Join(plan, "\n")
		if strings.Contains(text, "Hash") || !strings.Contains(text, "Nested Loop") {
			t.Errorf("%s\nreads audit_events other than entry by entry:\n%s", q, text)
		}
		// A partition analyzed while empty (the months ahead here) may get a sequential scan: the
		// planner costs it at nothing, run-time pruning skips it, and its first autoanalyze (after
		// 50 rows) replans. A month holding events never does.
		for _, line := range plan {
			if _, rest, ok := strings.Cut(line, "Seq Scan on audit_events_"); ok {
				name, _, _ := strings.Cut(rest, " ")
				if countIn(t, db, "audit_partitions.audit_events_"+name) > 0 {
					t.Errorf("%s\nscans a month that holds events:\n%s", q, text)
				}
			}
		}
	}
	entries, err := db.AuditEntries(ctx, 11_500, 12_500)
	if err != nil || len(entries) != 1000 {
		t.Fatalf("AuditEntries: %d, %v", len(entries), err)
	}
	for _, e := range entries {
		if string(e.Canonical) != "{}" || e.Pruned {
			t.Fatalf("entry %d: body %q, pruned %v", e.Index, e.Canonical, e.Pruned)
		}
	}
}

// TestAuditPartitions_PruneMovesPastMonthsFirst: a prune first gives the past months found in
// the default partition their own partitions (audit_ensure_partitions), so they can go whole.
// With a cutoff before them nothing is pruned, and they are in their month afterwards.
func TestAuditPartitions_PruneMovesPastMonthsFirst(t *testing.T) {
	t.Parallel()
	ctx, _, db, k := marchPartKit(t)
	for i := range 3 {
		k.record(t, "", i)
	}
	if n := countIn(t, db, "audit_partitions.audit_events_default"); n != 3 {
		t.Fatalf("default partition holds %d, want the 3 events of March", n)
	}
	if n, err := db.AuditPrune(ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), audit.Event{}); err != nil || n != 0 {
		t.Fatalf("AuditPrune = %d, %v", n, err)
	}
	// The prune's own record is March too (the store's clock).
	if n := countIn(t, db, "audit_partitions.audit_events_2026_03"); n != 4 {
		t.Fatalf("March partition holds %d, want its 3 events and the prune's record", n)
	}
	if n := countIn(t, db, "audit_partitions.audit_events_default"); n != 0 {
		t.Fatalf("default partition still holds %d", n)
	}
}

// TestAuditPartitions_PruneGivesUpOnABusyTable: detaching a month needs an exclusive lock on
// audit_events, which an open audited transaction holds off. The prune waits pruneLockTimeout,
// fails, and changes nothing: no prune record, the month still attached with its rows.
func TestAuditPartitions_PruneGivesUpOnABusyTable(t *testing.T) {
	t.Parallel()
	ctx, clock, db, k := marchPartKit(t)
	for i := range 3 {
		k.record(t, "", i)
	}
	if _, err := db.AuditEnsurePartitions(ctx); err != nil {
		t.Fatal(err)
	}
	k.sequenceAll(t)
	clock.Set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	busy, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Rollback()
	if _, err := busy.ExecContext(ctx, `SELECT count(*) FROM audit_events`); err != nil { // holds a lock on it
		t.Fatal(err)
	}
	start := time.Now()
	_, err = db.AuditPrune(ctx, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), audit.Event{})
	if err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("prune against a busy table: %v, want a lock timeout", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("the prune waited %v", waited)
	}
	if err := busy.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := countIn(t, db, "audit_prunes"); n != 0 {
		t.Fatalf("%d prune records after a failed prune", n)
	}
	if n := countIn(t, db, "audit_partitions.audit_events_2026_03"); n != 3 {
		t.Fatalf("March holds %d after a failed prune, want 3", n)
	}
	if rep := k.verify(t); !rep.OK || rep.Pruned != 0 {
		t.Fatalf("after a failed prune: %+v", rep)
	}
}
