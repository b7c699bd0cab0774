package storetest

import (
	"bytes"
	"strings"
	"testing"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// ErasureTests assert the privacy vault's foundation: person keys scoped by tenant, and
// ErasePerson as the one crypto-shredding routine with its append-only ledger.
var ErasureTests = []Test{
	{"PersonKeysTenantIsolation", testPersonKeysIsolation},
	{"ErasePersonShredsLedgersAndAuditsOnce", testErasePerson},
	{"ErasePersonTwiceConflictsAndNoKeyAgain", testEraseTwice},
	{"ErasuresTableIsAppendOnly", testErasuresAppendOnly},
	{"ErasePersonInvalidInputChangesNothing", testEraseInvalid},
	{"AuditVerifiesAfterErasure", testAuditAfterErasure},
}

func newPerson(t *testing.T, db *sqlstore.DB, tenantID string) string {
	t.Helper()
	id := tutela.NewID()
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(tenantID).Create(ctx, id, sqlstore.PersonSubject, []byte("wrapped:"+id))
	})
	return id
}

func personKey(t *testing.T, db *sqlstore.DB, tenantID, personID string) []byte {
	t.Helper()
	var w []byte
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		w, err = tx.PersonKeys(tenantID).Get(ctx, personID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

func erasure(tenantID, personID string) *sqlstore.Erasure {
	return &sqlstore.Erasure{TenantID: tenantID, PersonID: personID, Kind: sqlstore.PersonSubject,
		Trigger: sqlstore.ErasureRequest, Reason: "the data subject asked", LegalBasis: "GDPR Art. 17(1)(a)"}
}

func count(t *testing.T, db *sqlstore.DB, query string, args ...any) int {
	t.Helper()
	var n int
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if db.Dialect() == sqlstore.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testPersonKeysIsolation(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "keys-a"), createTenant(t, db, "keys-b")
	p := newPerson(t, db, a.ID)
	if w := personKey(t, db, a.ID, p); !bytes.Equal(w, []byte("wrapped:"+p)) {
		t.Fatalf("own tenant reads %q", w)
	}
	if w := personKey(t, db, b.ID, p); w != nil {
		t.Fatal("another tenant reads the person's key")
	}
	// The same person ID in another tenant is another person: its own key, not a conflict.
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(b.ID).Create(ctx, p, sqlstore.PersonSubject, []byte("b"))
	})
	if w := personKey(t, db, a.ID, p); !bytes.Equal(w, []byte("wrapped:"+p)) {
		t.Fatal("tenant b's key replaced tenant a's")
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(a.ID).Create(ctx, p, sqlstore.PersonSubject, []byte("x"))
	})
	mustCode(t, err, tutela.ECONFLICT)
}

func testErasePerson(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "erase")
	gone, kept := newPerson(t, db, tn.ID), newPerson(t, db, tn.ID)
	e := erasure(tn.ID, gone)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, e) })
	if personKey(t, db, tn.ID, gone) != nil {
		t.Fatal("the erased person's key survived")
	}
	if personKey(t, db, tn.ID, kept) == nil {
		t.Fatal("another person's key was deleted")
	}
	for _, tbl := range []string{"subject_values", "subject_index", "subject_exports"} {
		if n := count(t, db, `SELECT count(*) FROM `+tbl+` WHERE subject_id = $1`, gone); n != 0 {
			t.Errorf("%s keeps %d rows of the erased person", tbl, n)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM erasures WHERE tenant_id = $1 AND person_id = $2`, tn.ID, gone); n != 1 {
		t.Fatalf("ledger rows = %d, want 1", n)
	}
	var list []*sqlstore.Erasure
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { list, err = tx.Erasures(ctx, tn.ID, "", 10); return err }); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != e.ID || list[0].Reason != e.Reason || list[0].ActorType != audit.ActorSystem {
		t.Fatalf("ledger = %+v", list)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Action: "privacy.erase"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("privacy.erase events = %d, want 1", len(recs))
	}
	ev := recs[0].Event
	d := ev.Details
	if ev.TargetID != gone || d["trigger"] != "request" || d["reason"] != e.Reason || d["legal_basis"] != e.LegalBasis || d["erasure_id"] != e.ID {
		t.Fatalf("event = %+v", ev)
	}
	if strings.Contains(string(recs[0].Canonical), "wrapped:") {
		t.Fatal("the audit event holds the erased key")
	}
}

func testEraseTwice(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "twice")
	p := newPerson(t, db, tn.ID)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, erasure(tn.ID, p)) })
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, erasure(tn.ID, p)) })
	mustCode(t, err, tutela.ECONFLICT)
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(tn.ID).Create(ctx, p, sqlstore.PersonSubject, []byte("new key"))
	})
	mustCode(t, err, tutela.ECONFLICT)
	if personKey(t, db, tn.ID, p) != nil {
		t.Fatal("an erased person got a key again")
	}
	if n := count(t, db, `SELECT count(*) FROM erasures WHERE person_id = $1`, p); n != 1 {
		t.Fatalf("ledger rows after a second erasure = %d", n)
	}
}

func testErasuresAppendOnly(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "append")
	p := newPerson(t, db, tn.ID)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, erasure(tn.ID, p)) })
	stmts := []string{`UPDATE erasures SET reason = 'rewritten'`, `DELETE FROM erasures`}
	if db.Dialect() == sqlstore.Postgres {
		stmts = append(stmts, `TRUNCATE erasures`)
	}
	for _, q := range stmts {
		tx, err := db.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if db.Dialect() == sqlstore.Postgres {
			tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`)
		}
		_, err = tx.ExecContext(ctx, q)
		tx.Rollback()
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only trigger", q, err)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM erasures WHERE reason = 'the data subject asked'`); n != 1 {
		t.Fatal("the ledger row changed")
	}
}

func testEraseInvalid(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "invalid")
	p := newPerson(t, db, tn.ID)
	cases := map[string]func(e *sqlstore.Erasure){
		"empty reason":      func(e *sqlstore.Erasure) { e.Reason = "" },
		"control in reason": func(e *sqlstore.Erasure) { e.Reason = "a\x00b" },
		"no legal basis":    func(e *sqlstore.Erasure) { e.LegalBasis = "" },
		"bad person ID":     func(e *sqlstore.Erasure) { e.PersonID = "not-an-id" },
		"bad tenant ID":     func(e *sqlstore.Erasure) { e.TenantID = "x" },
		"bad kind":          func(e *sqlstore.Erasure) { e.Kind = "robot" },
		"bad trigger":       func(e *sqlstore.Erasure) { e.Trigger = "whim" },
	}
	for name, mutate := range cases {
		e := erasure(tn.ID, p)
		mutate(e)
		err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, e) })
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	if personKey(t, db, tn.ID, p) == nil {
		t.Fatal("a refused erasure deleted the key")
	}
	if n := count(t, db, `SELECT count(*) FROM erasures`); n != 0 {
		t.Fatalf("a refused erasure wrote %d ledger rows", n)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events WHERE action = 'privacy.erase'`); n != 0 {
		t.Fatal("a refused erasure was audited as done")
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(tn.ID).Create(ctx, tutela.NewID(), "robot", []byte("w"))
	})
	mustCode(t, err, tutela.EINVALID)
}

func testAuditAfterErasure(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	tn := createTenant(t, db, "verify")
	p := newPerson(t, db, tn.ID)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ErasePerson(ctx, erasure(tn.ID, p)) })
	for k.step(t) > 0 {
	}
	rep := k.verify(t, true)
	if !rep.OK || rep.Size == 0 {
		t.Fatalf("audit verify after an erasure: %+v", rep)
	}
}
