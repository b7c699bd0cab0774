package storetest

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// AuditTests is the audit-log part of the conformance suite: recording in the caller's
// transaction, sequencing without gaps or skips, append-only enforcement, and adversarial
// tampering that audit.Verify must name precisely.
var AuditTests = []Test{
	{"AuditEveryMutationRecorded", testEveryMutationAudited},
	{"AuditEventCommitsWithChange", testAuditCommitsWithChange},
	{"AuditRollbackLeavesNoEvent", testAuditRollback},
	{"AuditSequencerNoGapsUnderConcurrentWriters", testAuditConcurrent},
	{"AuditGroupCommitSequencedWithoutGaps", testAuditGroupCommitSequenced},
	{"AuditLateCommitNotSkipped", testAuditLateCommit},
	{"AuditTriggersRejectChanges", testAuditTriggers},
	{"AuditTamperOneByteNamesIndex", testAuditTamperByte},
	{"AuditTamperDeletedRowsDetected", testAuditTamperDelete},
	{"AuditTamperSwapDetectedAtFirst", testAuditTamperSwap},
	{"AuditTamperEachColumnNamed", testAuditTamperColumns},
	{"AuditPendingAndSequencerHeartbeat", testAuditPending},
	{"DeploymentSettingsAgreeUnderRace", testDeploymentSettings},
	{"AuditRewriteResignedFailsAgainstPublished", testAuditRewrite},
	{"AuditForgedCheckpointRejected", testAuditForgedCheckpoint},
	{"AuditPruneKeepsLogVerifiable", testAuditPrune},
	{"AuditEventsFilterScopeAndPaging", testAuditEventsFilter},
	{"AuditProofsFromStore", testAuditProofs},
}

const auditOrigin = "tutela.test/audit"

type auditKit struct {
	db     *sqlstore.DB
	seq    *sqlstore.Sequencer
	signer *audit.Signer
	vkey   string
	dir    string
}

func newAuditKit(t *testing.T, db *sqlstore.DB) *auditKit {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(auditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &auditKit{db: db, signer: s, vkey: vkey, dir: dir,
		seq: sqlstore.NewSequencer(db, s, auditOrigin, sqlstore.SequencerOptions{CheckpointDir: dir})}
}

func auditEvent(i int) audit.Event {
	return audit.Event{
		TenantID:   "0190f3a4-aaaa-7000-8000-000000000001",
		ActorType:  audit.ActorUser,
		ActorID:    fmt.Sprintf("0190f3a4-bbbb-7000-8000-%012d", i%3),
		Action:     "user.login",
		TargetType: "user",
		TargetID:   fmt.Sprintf("0190f3a4-cccc-7000-8000-%012d", i),
		Outcome:    audit.OutcomeSuccess,
		RequestID:  fmt.Sprintf("req-%d", i),
		Details:    map[string]any{"n": i, "password": "hunter2"},
	}
}

func (k *auditKit) record(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, auditEvent(i)) })
	}
}

func (k *auditKit) step(t *testing.T) int {
	t.Helper()
	n, err := k.seq.Step(ctx)
	if err != nil {
		t.Fatalf("Step: %v", err)
	}
	return n
}

func (k *auditKit) verify(t *testing.T, withPublished bool) *audit.Report {
	t.Helper()
	var pub [][]byte
	if withPublished {
		var err error
		if pub, err = audit.ReadCheckpointDir(k.dir, 0); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Verify(ctx, k.db.AuditSource(), k.vkey, auditOrigin, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func mustVerifyOK(t *testing.T, rep *audit.Report, size int64) {
	t.Helper()
	if !rep.OK || rep.Size != size {
		t.Fatalf("verify: OK=%v size=%d (want %d) failures=%+v", rep.OK, rep.Size, size, rep.Failures)
	}
}

func mustFirstFailure(t *testing.T, rep *audit.Report, index int64, kind string) {
	t.Helper()
	if rep.OK || len(rep.Failures) == 0 {
		t.Fatalf("tampering not detected: %+v", rep)
	}
	f := rep.Failures[0]
	if f.Index != index || f.Kind != kind {
		t.Fatalf("first failure = index %d kind %s (%s), want index %d kind %s; all: %+v",
			f.Index, f.Kind, f.Detail, index, kind, rep.Failures)
	}
}

// tamper runs fn as the database owner with the append-only triggers out of the way, as an
// attacker with owner or superuser rights would: PostgreSQL session_replication_role = replica
// (triggers do not fire), SQLite by dropping the triggers.
func tamper(t *testing.T, db *sqlstore.DB, fn func(tx *sql.Tx) error) {
	t.Helper()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if db.Dialect() == sqlstore.Postgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
	} else {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit%'`)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER `+n); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := fn(tx); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func canonicalAt(t *testing.T, tx *sql.Tx, idx int64) (id string, c []byte) {
	t.Helper()
	err := tx.QueryRowContext(ctx, `SELECT e.id, e.canonical FROM audit_events e
		JOIN audit_log l ON l.event_id = e.id WHERE l.idx = $1`, idx).Scan(&id, &c)
	if err != nil {
		t.Fatal(err)
	}
	return id, c
}

func testAuditCommitsWithChange(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	var tn *tutela.Tenant
	update(t, db, func(tx *sqlstore.Tx) error {
		tn = &tutela.Tenant{Slug: "acme", Name: "Acme", Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		return tx.Audit(ctx, audit.Event{TenantID: tn.ID, ActorType: audit.ActorSystem, Action: "tenant.configure",
			TargetType: "tenant", TargetID: tn.ID, Outcome: audit.OutcomeSuccess,
			Details: map[string]any{"api_key": "sk-live-1", "slug": "acme"}})
	})
	// The store records tenant.create by itself; the caller's explicit event sits beside it.
	recs, next, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID})
	if err != nil || len(recs) != 2 || next != "" {
		t.Fatalf("AuditEvents = %d records, %q, %v", len(recs), next, err)
	}
	byAction := map[string]sqlstore.AuditRecord{}
	for _, r := range recs {
		byAction[r.Event.Action] = r
	}
	created, explicit := byAction["tenant.create"], byAction["tenant.configure"]
	if created.Event.TargetID != tn.ID || created.Event.ActorType != audit.ActorSystem || created.Index != -1 {
		t.Fatalf("automatic record = %+v", created)
	}
	e := explicit.Event
	if e.TargetID != tn.ID || !tutela.ValidID(e.ID) || explicit.Index != -1 {
		t.Fatalf("record = %+v", explicit)
	}
	if want := clock.Now().Truncate(time.Microsecond); !e.Time.Equal(want) || !created.Event.Time.Equal(want) {
		t.Fatalf("event time %v, want the transaction time %v", e.Time, want)
	}
	if e.Details["api_key"] != audit.Redacted || bytes.Contains(explicit.Canonical, []byte("sk-live-1")) {
		t.Fatalf("credential in details was stored: %s", explicit.Canonical)
	}
	k := newAuditKit(t, db)
	if n := k.step(t); n != 2 {
		t.Fatalf("sequenced %d, want 2", n)
	}
	recs, _, _ = db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID})
	for _, r := range recs {
		if r.Index < 0 || r.Index > 1 {
			t.Fatalf("index after sequencing = %d", r.Index)
		}
	}
	// An invalid event fails the whole transaction: the change does not commit unaudited.
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, &tutela.Tenant{Slug: "ghost", Name: "G", Region: "eu"}); err != nil {
			return err
		}
		return tx.Audit(ctx, audit.Event{ActorType: "martian", Action: "x", Outcome: audit.OutcomeSuccess})
	})
	mustCode(t, err, tutela.EINVALID)
	assertNoTenant(t, db, "ghost")
}

func testAuditRollback(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, &tutela.Tenant{Slug: "ghost", Name: "G", Region: "eu"}); err != nil {
			return err
		}
		if err := tx.Audit(ctx, auditEvent(1)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{})
	if err != nil || len(recs) != 0 {
		t.Fatalf("rolled-back event visible: %d, %v", len(recs), err)
	}
	k := newAuditKit(t, db)
	if n := k.step(t); n != 0 {
		t.Fatalf("sequenced %d events of a rolled-back transaction", n)
	}
}

func testAuditConcurrent(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	const writers, each = 20, 10
	stop := make(chan struct{})
	var seqErr error
	var seqWG sync.WaitGroup
	seqWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := k.seq.Step(ctx); err != nil {
				seqErr = err
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, auditEvent(w*each+i)) })
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	seqWG.Wait()
	if seqErr != nil {
		t.Fatal(seqErr)
	}
	k.step(t)
	entries, err := db.AuditEntries(ctx, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != writers*each {
		t.Fatalf("log has %d entries, want %d", len(entries), writers*each)
	}
	ids := map[string]bool{}
	for i, e := range entries {
		if e.Index != int64(i) || ids[e.EventID] {
			t.Fatalf("entry %d has index %d (dup id %v): gap or duplicate", i, e.Index, ids[e.EventID])
		}
		ids[e.EventID] = true
	}
	mustVerifyOK(t, k.verify(t, true), writers*each)
}

func testAuditLateCommit(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 1) // so the sequencer has a horizon past zero after its first round
	k.step(t)
	inserted, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "late", Outcome: audit.OutcomeSuccess}); err != nil {
				return err
			}
			close(inserted)
			<-release
			return nil
		})
	}()
	<-inserted
	if db.Dialect() == sqlstore.Postgres {
		// A later transaction takes a larger pos and commits first; the sequencer runs while
		// the earlier one is still open, then again after it commits.
		k.record(t, 2)
		if n := k.step(t); n != 2 {
			t.Fatalf("first round sequenced %d, want the 2 committed events", n)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	} else {
		// SQLite runs one writer at a time: the round waits for the open transaction.
		stepped := make(chan int, 1)
		go func() { n, _ := k.seq.Step(ctx); stepped <- n }()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		<-stepped
		k.record(t, 2)
	}
	k.step(t)
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "late"})
	if err != nil || len(recs) != 1 || recs[0].Index < 0 {
		t.Fatalf("late-committing event not sequenced: %+v, %v", recs, err)
	}
	mustVerifyOK(t, k.verify(t, true), 4)
}

func testAuditTriggers(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 3)
	k.step(t)
	stmts := []string{
		`UPDATE audit_events SET action = 'x'`,
		`DELETE FROM audit_events`,
		`UPDATE audit_log SET leaf_hash = leaf_hash`,
		`DELETE FROM audit_log`,
		`UPDATE audit_hashes SET hash = hash`,
		`DELETE FROM audit_hashes`,
		`UPDATE audit_checkpoints SET signed = 'x'`,
		`DELETE FROM audit_checkpoints`,
	}
	if db.Dialect() == sqlstore.Postgres {
		stmts = append(stmts, `TRUNCATE audit_events`, `TRUNCATE audit_log`, `TRUNCATE audit_hashes`,
			`TRUNCATE audit_checkpoints`, `TRUNCATE audit_prunes`,
			// The prune setting alone does not open the gate: no prune record in this transaction.
			`SELECT set_config('tutela.audit_prune', 'on', true); DELETE FROM audit_events`)
	}
	for _, q := range stmts {
		_, err := db.SQL().ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s as owner: err = %v, want append-only refusal", q, err)
		}
	}
	mustVerifyOK(t, k.verify(t, true), 3)
}

func testAuditTamperByte(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 7)
	k.step(t)
	tamper(t, db, func(tx *sql.Tx) error {
		id, c := canonicalAt(t, tx, 4)
		c[len(c)/2] ^= 0x01
		_, err := tx.ExecContext(ctx, `UPDATE audit_events SET canonical = $1 WHERE id = $2`, c, id)
		return err
	})
	rep := k.verify(t, true)
	mustFirstFailure(t, rep, 4, audit.KindContentMismatch)
	if rep.FailureCount != 1 {
		t.Fatalf("one changed byte gave %d failures: %+v", rep.FailureCount, rep.Failures)
	}
}

func testAuditTamperDelete(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 6)
	k.step(t)
	// A body deleted outside a prune: content missing and not covered by a prune record.
	tamper(t, db, func(tx *sql.Tx) error {
		id, _ := canonicalAt(t, tx, 1)
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id = $1`, id)
		return err
	})
	mustFirstFailure(t, k.verify(t, true), 1, audit.KindContentMismatch)
	// A log row deleted from the middle.
	tamper(t, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE idx = 0`)
		return err
	})
	mustFirstFailure(t, k.verify(t, true), 0, audit.KindMissingEntry)
	// The tail cut off: the signed checkpoint covers more than the log holds.
	tamper(t, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE idx = 5`)
		return err
	})
	rep := k.verify(t, true)
	found := false
	for _, f := range rep.Failures {
		found = found || (f.Kind == audit.KindMissingEntry && f.Index == 5)
	}
	if !found {
		t.Fatalf("truncated tail not reported: %+v", rep.Failures)
	}
}

func testAuditTamperSwap(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 6)
	k.step(t)
	tamper(t, db, func(tx *sql.Tx) error {
		id2, c2 := canonicalAt(t, tx, 2)
		id4, c4 := canonicalAt(t, tx, 4)
		if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET canonical = $1 WHERE id = $2`, c4, id2); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE audit_events SET canonical = $1 WHERE id = $2`, c2, id4)
		return err
	})
	mustFirstFailure(t, k.verify(t, true), 2, audit.KindContentMismatch)
}

// testAuditTamperColumns edits, one at a time, every column kept beside the canonical body (the
// ones the API filters and indexes on). Each edit leaves the hashes intact, so only comparing the
// column with the body catches it; verify must name the index, the event and the column.
func testAuditTamperColumns(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 12)
	k.step(t)
	mustVerifyOK(t, k.verify(t, true), 12)
	later := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		table, column string
		value         any
	}{
		{"audit_events", "tenant_id", "0190f3a4-aaaa-7000-8000-000000000002"},
		{"audit_events", "actor_type", audit.ActorSystem},
		{"audit_events", "actor_id", "0190f3a4-bbbb-7000-8000-999999999999"},
		{"audit_events", "action", "user.logout"},
		{"audit_events", "target_type", "tenant"},
		{"audit_events", "target_id", "0190f3a4-cccc-7000-8000-999999999999"},
		{"audit_events", "outcome", audit.OutcomeFailure},
		{"audit_events", "request_id", "req-forged"},
		{"audit_events", "time", later},
		{"audit_log", "time", later},
	}
	// Later cases tamper lower indexes, so each verify's first failure is the newest edit.
	for n, tc := range cases {
		idx := int64(len(cases) - 1 - n)
		var id string
		tamper(t, db, func(tx *sql.Tx) error {
			id, _ = canonicalAt(t, tx, idx)
			key := "id"
			if tc.table == "audit_log" {
				key = "event_id"
			}
			_, err := tx.ExecContext(ctx, `UPDATE `+tc.table+` SET `+tc.column+` = $1 WHERE `+key+` = $2`, tc.value, id)
			return err
		})
		rep := k.verify(t, true)
		mustFirstFailure(t, rep, idx, audit.KindColumnMismatch)
		f := rep.Failures[0]
		if f.EventID != id || !strings.Contains(f.Detail, tc.table+"."+tc.column) {
			t.Errorf("%s.%s changed: failure %+v does not name event %s and the column", tc.table, tc.column, f, id)
		}
		if rep.FailureCount != n+1 {
			t.Errorf("%s.%s changed: %d failures, want %d: %+v", tc.table, tc.column, rep.FailureCount, n+1, rep.Failures)
		}
	}
}

// testAuditPending: events outside the Merkle log are counted with the oldest one's time, and
// they count as left behind (Stale) only when they waited past the grace and no sequencer has run
// a round within it: a live sequencer's heartbeat says they will be sequenced.
func testAuditPending(t *testing.T, open Opener) {
	clk := newClock()
	db := open(t, sqlstore.Options{Clock: clk.Now})
	k := newAuditKit(t, db)
	k.seq = sqlstore.NewSequencer(db, k.signer, auditOrigin, sqlstore.SequencerOptions{CheckpointDir: k.dir, Heartbeat: true})
	pending := func() sqlstore.AuditPending {
		t.Helper()
		p, err := db.AuditPending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := pending(); p.Count != 0 || !p.SequencerSeen.IsZero() || p.Stale(clk.Now()) {
		t.Fatalf("empty log: %+v", p)
	}
	first := db.Now()
	k.record(t, 2)
	clk.Add(time.Second)
	k.record(t, 1)
	p := pending()
	if p.Count != 3 || !p.Oldest.Equal(first) {
		t.Fatalf("pending = %+v, want 3 from %v", p, first)
	}
	if p.Stale(clk.Now()) {
		t.Fatal("events a second old count as left behind")
	}
	clk.Add(10 * time.Second)
	if !pending().Stale(clk.Now()) {
		t.Fatal("events 10 s old with no sequencer ever seen are not stale")
	}
	k.step(t)
	p = pending()
	if p.Count != 0 || !p.SequencerSeen.Equal(db.Now()) || p.SequencerInterval != time.Second {
		t.Fatalf("after a round: %+v", p)
	}
	// A one-shot run (no heartbeat) does not vouch for a live sequencer.
	clk.Add(time.Minute)
	if _, err := newAuditKit(t, db).seq.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if p := pending(); p.SequencerAlive(clk.Now()) {
		t.Fatalf("a one-shot round counts as a live sequencer: %+v", p)
	}
	k.step(t)
	k.record(t, 2)
	clk.Add(3 * time.Second)
	if p := pending(); p.Count != 2 || p.Stale(clk.Now()) || !p.SequencerAlive(clk.Now()) {
		t.Fatalf("events waiting for a live sequencer: %+v", p)
	}
	clk.Add(10 * time.Second) // the node stopped without draining
	if p := pending(); !p.Stale(clk.Now()) || p.SequencerAlive(clk.Now()) {
		t.Fatalf("events left behind by a stopped sequencer: %+v", p)
	}
	// A slower sequencer's heartbeat carries its interval, which sets the grace.
	slow := sqlstore.NewSequencer(db, k.signer, auditOrigin, sqlstore.SequencerOptions{Interval: time.Minute, Heartbeat: true})
	if _, err := slow.Step(ctx); err != nil {
		t.Fatal(err)
	}
	k.record(t, 1)
	clk.Add(2 * time.Minute)
	if p := pending(); p.Count != 1 || p.Stale(clk.Now()) || p.Grace() != 5*time.Minute {
		t.Fatalf("1-minute sequencer, 2 minutes later: %+v", p)
	}
}

// testDeploymentSettings: nodes starting at once on an empty database each offer their value;
// exactly one is recorded and every node is told the same one.
func testDeploymentSettings(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	if v, err := db.Setting(ctx, sqlstore.SettingIssuer); err != nil || v != "" {
		t.Fatalf("fresh database: %q, %v", v, err)
	}
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := db.AgreeSetting(ctx, sqlstore.SettingIssuer, fmt.Sprintf("https://node%d.example", i))
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] || !strings.HasPrefix(got[0], "https://node") {
			t.Fatalf("nodes were told different values: %q", got)
		}
	}
	if v, _ := db.Setting(ctx, sqlstore.SettingIssuer); v != got[0] {
		t.Fatalf("recorded %q, nodes told %q", v, got[0])
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.ReplaceSetting(ctx, sqlstore.SettingIssuer, "https://id.example")
	})
	if v, _ := db.AgreeSetting(ctx, sqlstore.SettingIssuer, "https://node0.example"); v != "https://id.example" {
		t.Fatalf("after a deliberate change: %q", v)
	}
}

func testAuditRewrite(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 5)
	k.step(t) // checkpoint at 5, published
	k.record(t, 3)
	k.step(t) // checkpoint at 8, published
	k.rewriteResigned(t, 2, 8)
	mustVerifyOK(t, k.verify(t, false), 8) // the database alone is consistent again
	rep := k.verify(t, true)
	var got *audit.Failure
	for i, f := range rep.Failures {
		if f.Kind == audit.KindCheckpointMismatch && f.TreeSize == 5 {
			got = &rep.Failures[i]
		}
	}
	if rep.OK || got == nil {
		t.Fatalf("rewrite not caught by the published checkpoint at size 5: %+v", rep.Failures)
	}
}

// rewriteResigned is the attacker who holds the database and the real signing key: edits entry
// at of a log of size entries, recomputes every hash and re-signs, keeping the action column in
// step with the body. Only checkpoints published outside the database can tell.
func (k *auditKit) rewriteResigned(t *testing.T, at, size int64) {
	t.Helper()
	entries, err := k.db.AuditEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker holds the database and the real signing key: edits entry 2, recomputes every
	// hash and re-signs, and keeps the action column in step with the body. Only the checkpoints
	// published outside the database can tell.
	entries[at].Canonical = bytes.Replace(entries[at].Canonical, []byte("user.login"), []byte("user.logon"), 1)
	entries[at].LeafHash = audit.LeafHash(entries[at].Canonical)
	var app audit.Appender
	for _, e := range entries {
		if _, err := app.Append(e.LeafHash); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := app.Root()
	signed, err := k.signer.Sign(audit.Checkpoint{Origin: auditOrigin, Size: size, Root: root, Time: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, k.db, func(tx *sql.Tx) error {
		e := entries[at]
		for _, q := range []struct {
			s    string
			args []any
		}{
			{`UPDATE audit_events SET canonical = $1, leaf_hash = $2, action = 'user.logon' WHERE id = $3`, []any{e.Canonical, e.LeafHash[:], e.EventID}},
			{`UPDATE audit_log SET leaf_hash = $1 WHERE idx = $2`, []any{e.LeafHash[:], e.Index}},
			{`DELETE FROM audit_hashes`, nil},
			{`DELETE FROM audit_checkpoints`, nil},
			{`INSERT INTO audit_checkpoints (size, signed, created_at) VALUES ($1, $2, $3)`, []any{size, string(signed), time.Now().UTC()}},
		} {
			if _, err := tx.ExecContext(ctx, q.s, q.args...); err != nil {
				return err
			}
		}
		for i, h := range app.Hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_hashes (id, hash) VALUES ($1, $2)`, i, h[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

func testAuditForgedCheckpoint(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 3)
	k.step(t)
	k.record(t, 1)
	// A checkpoint for the same origin signed by another key, stored as if the log made it.
	forger := newAuditKit(t, db)
	entries, _ := db.AuditEntries(ctx, 0, 3)
	var app audit.Appender
	for _, e := range entries {
		_, _ = app.Append(e.LeafHash)
	}
	root, _ := app.Root()
	forged, err := forger.signer.Sign(audit.Checkpoint{Origin: auditOrigin, Size: 3, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints`)
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, signed, created_at) VALUES (3, $1, $2)`,
				string(forged), time.Now().UTC())
		}
		return err
	})
	rep := k.verify(t, false)
	if rep.OK || rep.Failures[0].Kind != audit.KindBadSignature {
		t.Fatalf("forged checkpoint accepted: %+v", rep.Failures)
	}
	// A forged file in the checkpoint directory is rejected the same way.
	if err := audit.WriteCheckpointFile(k.dir, 99, forged); err != nil {
		t.Fatal(err)
	}
	tamperFree := newAuditKit(t, open(t, sqlstore.Options{}))
	tamperFree.dir = k.dir
	rep = tamperFree.verify(t, true)
	if rep.OK {
		t.Fatal("forged published checkpoint accepted")
	}
}

func testAuditPrune(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	k := newAuditKit(t, db)
	k.record(t, 5)
	k.step(t)
	clock.Add(48 * time.Hour)
	k.record(t, 3)
	k.step(t)
	clock.Add(-47 * time.Hour)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, auditEvent(99)) }) // old but unsequenced
	clock.Add(47 * time.Hour)
	n, err := db.AuditPrune(ctx, clock.Now().Add(-24*time.Hour), audit.Event{})
	if err != nil || n != 5 {
		t.Fatalf("AuditPrune = %d, %v; want 5 (sequenced and old only)", n, err)
	}
	if _, err := db.AuditPrune(ctx, clock.Now().Add(time.Hour), audit.Event{}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("prune into the future: %v", err)
	}
	k.step(t) // sequences the unsequenced old event and the prune's own event
	rep := k.verify(t, true)
	mustVerifyOK(t, rep, 10)
	if rep.Pruned != 5 {
		t.Fatalf("Pruned = %d, want 5", rep.Pruned)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: sqlstore.ActionAuditPrune})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["pruned"] == nil {
		t.Fatalf("prune not recorded as an audit event: %+v, %v", recs, err)
	}
	// Proofs for pruned entries still work: the leaf hashes stayed.
	cp, _ := db.AuditCheckpoint(ctx)
	c, err := audit.OpenCheckpoint(cp, k.vkey, auditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := db.AuditEntries(ctx, 0, 1)
	p, err := db.AuditInclusionProof(ctx, 0, c.Size)
	if err != nil || !entries[0].Pruned || audit.CheckInclusion(p, c.Size, c.Root, 0, entries[0].LeafHash) != nil {
		t.Fatalf("pruned entry proof: pruned=%v err=%v", entries[0].Pruned, err)
	}
}

func testAuditEventsFilter(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tA, tB := tutela.NewID(), tutela.NewID()
	for i := range 7 {
		update(t, db, func(tx *sqlstore.Tx) error {
			e := auditEvent(i)
			e.TenantID = tA
			if i%2 == 1 {
				e.TenantID = tB
			}
			return tx.Audit(ctx, e)
		})
		clock.Add(time.Minute)
	}
	var all []sqlstore.AuditRecord
	cursor := ""
	for range 10 {
		page, next, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tA, Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if cursor = next; cursor == "" {
			break
		}
	}
	if len(all) != 4 {
		t.Fatalf("tenant A has %d events over pages, want 4", len(all))
	}
	for i, r := range all {
		if r.Event.TenantID != tA {
			t.Fatalf("tenant B event in tenant A read: %+v", r.Event)
		}
		if i > 0 && !r.Event.Time.Before(all[i-1].Event.Time) {
			t.Fatal("not newest first")
		}
	}
	recs, _, _ := db.AuditEvents(ctx, sqlstore.AuditFilter{TargetType: "user", TargetID: auditEvent(3).TargetID})
	if len(recs) != 1 || recs[0].Event.TenantID != tB {
		t.Fatalf("target filter: %+v", recs)
	}
	start := newClock().Now()
	recs, _, _ = db.AuditEvents(ctx, sqlstore.AuditFilter{From: start.Add(2 * time.Minute), To: start.Add(4 * time.Minute)})
	if len(recs) != 2 {
		t.Fatalf("time window gave %d events, want 2", len(recs))
	}
	recs, _, _ = db.AuditEvents(ctx, sqlstore.AuditFilter{ActorID: auditEvent(0).ActorID, Action: "user.login"})
	if len(recs) != 3 {
		t.Fatalf("actor filter gave %d, want 3", len(recs))
	}
	if _, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Cursor: "1 OR 1=1"}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testAuditProofs(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	if _, err := db.AuditCheckpoint(ctx); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("checkpoint of empty log: %v", err)
	}
	k.record(t, 5)
	k.step(t)
	old, _ := db.AuditCheckpoint(ctx)
	k.record(t, 8)
	k.step(t)
	cur, _ := db.AuditCheckpoint(ctx)
	c1, err1 := audit.OpenCheckpoint(old, k.vkey, auditOrigin)
	c2, err2 := audit.OpenCheckpoint(cur, k.vkey, auditOrigin)
	if err1 != nil || err2 != nil || c1.Size != 5 || c2.Size != 13 {
		t.Fatalf("checkpoints %+v %v / %+v %v", c1, err1, c2, err2)
	}
	entries, _ := db.AuditEntries(ctx, 0, 13)
	for _, e := range entries {
		p, err := db.AuditInclusionProof(ctx, e.Index, c2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.CheckInclusion(p, c2.Size, c2.Root, e.Index, e.LeafHash); err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		var other tlog.Hash
		if audit.CheckInclusion(p, c2.Size, c2.Root, e.Index, other) == nil {
			t.Fatal("proof verifies a different leaf")
		}
	}
	tp, err := db.AuditConsistencyProof(ctx, 5, 13)
	if err != nil || audit.CheckConsistency(tp, 5, c1.Root, 13, c2.Root) != nil {
		t.Fatalf("consistency proof: %v", err)
	}
	if _, err := db.AuditInclusionProof(ctx, 0, 14); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("proof beyond the log: %v", err)
	}
}

func testEveryMutationAudited(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	admin := createUser(t, db, tn.ID, "admin@example.org")
	meta := &tutela.RequestMeta{RequestID: "req-42", IP: "192.0.2.7", UserAgent: "ua/1",
		Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tn.ID, UserID: admin.ID}}
	rctx := tutela.WithRequestMeta(ctx, meta)
	var u *tutela.User
	err := db.Update(rctx, func(tx *sqlstore.Tx) error {
		users := tx.Users(tn.ID)
		u = &tutela.User{Email: "ana@example.org"}
		if err := users.Create(rctx, u); err != nil {
			return err
		}
		u.DisplayName = "Ana"
		if err := users.Update(rctx, u); err != nil {
			return err
		}
		if err := users.Grant(rctx, u.ID, "operator", admin.ID, nil); err != nil {
			return err
		}
		if err := users.SetPasswordHash(rctx, u.ID, "$argon2id$x"); err != nil {
			return err
		}
		s := &sqlstore.Session{TenantID: tn.ID, UserID: u.ID, TokenVersion: 2, AMR: []string{"pwd"}, IP: "192.0.2.7",
			IdleTimeout: time.Minute, AbsoluteExpiry: tx.Now().Add(time.Hour)}
		if err := tx.CreateSession(rctx, s, sqlstore.HashToken("s")); err != nil {
			return err
		}
		if _, err := users.RevokeSessions(rctx, u.ID, "", "", "test"); err != nil {
			return err
		}
		tok, _, err := users.CreateToken(rctx, u.ID, sqlstore.TokenReset, time.Hour)
		if err != nil {
			return err
		}
		if _, err := tx.ConsumeToken(rctx, tok, sqlstore.TokenReset); err != nil {
			return err
		}
		if err := tx.RecordSecurityEvent(rctx, &sqlstore.SecurityEvent{TenantID: tn.ID, UserID: u.ID, Kind: "account_locked", IP: "192.0.2.7"}); err != nil {
			return err
		}
		if err := tx.RecordLogin(rctx, &sqlstore.LoginRecord{TenantID: tn.ID, UserID: u.ID, IP: "192.0.2.7", Result: "failure", Reason: "wrong_password"}); err != nil {
			return err
		}
		return users.Delete(rctx, u.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, ActorID: admin.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]audit.Event{}
	for _, r := range recs {
		got[r.Event.Action] = r.Event
	}
	for _, want := range []string{"user.create", "user.update", "user.role_grant", "user.password_set", "session.create",
		"session.revoke", "user.token_issue", "user.token_redeem", "security.account_locked", "auth.login", "user.delete"} {
		e, ok := got[want]
		if !ok {
			t.Errorf("no %s event among %d", want, len(recs))
			continue
		}
		if e.ActorType != audit.ActorUser || e.SourceIP != "192.0.2.7" || e.RequestID != "req-42" || e.UserAgent != "ua/1" {
			t.Errorf("%s not attributed to the request: %+v", want, e)
		}
	}
	if got["auth.login"].Outcome != audit.OutcomeFailure {
		t.Errorf("failed login recorded as %q", got["auth.login"].Outcome)
	}
	// Without request metadata (CLI, background work) the system is the actor.
	sys, _, _ := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Action: "tenant.create"})
	if len(sys) != 1 || sys[0].Event.ActorType != audit.ActorSystem {
		t.Fatalf("tenant.create by the system: %+v", sys)
	}
}
