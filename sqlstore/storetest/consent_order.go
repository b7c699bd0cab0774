package storetest

import (
	"testing"
	"time"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Consent records are stamped with their transaction's time, and a transaction may commit
// after one that began later (the HTTP handler seals evidence with the vault before it reaches
// the store). Issue 14's review: a grant begun before a withdrawal but committed after it
// overwrote consent_state with "granted" while the history's latest record was the withdrawal,
// so Check allowed processing the subject had refused (fail open). The state must always be
// the history's latest record by (recorded_at, id), whatever the commit order.

// consentLatest is the subject's latest record for purpose as History orders it.
func (k *consentKit) consentLatest(t *testing.T, tenantID, subjectID, purpose string) *privacy.ConsentRecord {
	t.Helper()
	var last *privacy.ConsentRecord
	for _, r := range k.history(t, tenantID, subjectID) {
		if r.Purpose == purpose {
			last = r
		}
	}
	return last
}

// agrees fails unless Check answers exactly as the history's latest record says, and returns
// that record.
func (k *consentKit) agrees(t *testing.T, step, tenantID, subjectID string) *privacy.ConsentRecord {
	t.Helper()
	last := k.consentLatest(t, tenantID, subjectID, "outreach")
	err := k.check(tenantID, subjectID, "outreach")
	switch {
	case last.Action == privacy.ConsentGranted && err != nil:
		t.Errorf("%s: history's latest record %s is a grant, yet Check refuses: %v", step, last.ID, err)
	case last.Action == privacy.ConsentWithdrawn && tutela.ErrorCode(err) != tutela.ECONSENTREQUIRED:
		t.Errorf("%s: history's latest record %s is a withdrawal, yet Check says %v", step, last.ID, err)
	}
	return last
}

// testConsentOlderRecordCommittedLate forces the interleaving with the clock, on both stores:
// each record's timestamp is set explicitly and the records are committed in the opposite
// order (the later-stamped first).
func testConsentOlderRecordCommittedLate(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	ada := k.subject(t, tn)
	at := func(d time.Duration, rec *privacy.ConsentRecord) *privacy.ConsentRecord {
		t.Helper()
		k.clock.Set(newClock().Now().Add(d))
		if err := k.record(tn, rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	at(0, grant(ada, "outreach", 2))

	// The withdrawal (stamped t+2s) commits first, the grant (stamped t+1s) after it: the
	// withdrawal stays the latest record and the state.
	w := at(2*time.Second, withdrawal(ada, "outreach"))
	at(time.Second, grant(ada, "outreach", 2))
	if last := k.agrees(t, "grant committed after a newer withdrawal", tn, ada); last.ID != w.ID {
		t.Fatalf("latest record %s (%s), want the withdrawal %s", last.ID, last.Action, w.ID)
	}
	mustCode(t, k.check(tn, ada, "outreach"), tutela.ECONSENTREQUIRED)
	if n := len(k.history(t, tn, ada)); n != 3 {
		t.Fatalf("history holds %d records, want 3: the late grant is kept, it just is not the latest", n)
	}

	// The other way round: a grant stamped t+4s, then a withdrawal stamped t+3s committed after
	// it. The grant is the latest record, and Check agrees with the history.
	g := at(4*time.Second, grant(ada, "outreach", 2))
	at(3*time.Second, withdrawal(ada, "outreach"))
	if last := k.agrees(t, "withdrawal committed after a newer grant", tn, ada); last.ID != g.ID {
		t.Fatalf("latest record %s (%s), want the grant %s", last.ID, last.Action, g.ID)
	}

	// A newer record still moves the state, either way.
	at(5*time.Second, withdrawal(ada, "outreach"))
	k.agrees(t, "newer withdrawal", tn, ada)
	mustCode(t, k.check(tn, ada, "outreach"), tutela.ECONSENTREQUIRED)
	at(6*time.Second, grant(ada, "outreach", 2))
	k.agrees(t, "newer grant", tn, ada)
	if err := k.check(tn, ada, "outreach"); err != nil {
		t.Fatalf("after a newer grant: %v", err)
	}

	// Two records with the same timestamp: the higher record ID is the latest, in History's
	// order and in the state, whichever commits first.
	low, high := "01900000-0000-7000-8000-000000000001", "01900000-0000-7000-8000-000000000002"
	bob := k.subject(t, tn)
	w, g = withdrawal(bob, "outreach"), grant(bob, "outreach", 2)
	w.ID, g.ID = high, low
	at(10*time.Second, w)
	at(10*time.Second, g)
	if last := k.agrees(t, "tie, withdrawal has the higher ID", tn, bob); last.ID != high {
		t.Fatalf("tie: latest %s, want %s", last.ID, high)
	}
	mustCode(t, k.check(tn, bob, "outreach"), tutela.ECONSENTREQUIRED)
	cy := k.subject(t, tn)
	w, g = withdrawal(cy, "outreach"), grant(cy, "outreach", 2)
	w.ID, g.ID = "01900000-0000-7000-8000-000000000003", "01900000-0000-7000-8000-000000000004"
	at(10*time.Second, w)
	at(10*time.Second, g)
	if last := k.agrees(t, "tie, grant has the higher ID", tn, cy); last.ID != g.ID {
		t.Fatalf("tie: latest %s, want %s", last.ID, g.ID)
	}
}

// testConsentGrantWithdrawRace is the review's interleaving with two open transactions: a
// grant's transaction begins (and takes its timestamp), a withdrawal begins later and commits,
// then the grant commits. PostgreSQL only: SQLite has one writer, and its transaction takes the
// timestamp after the write lock, so there commit order and timestamp order are the same (the
// clock-driven test above covers SQLite).
func testConsentGrantWithdrawRace(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "race")
	if k.db.Dialect() != sqlstore.Postgres {
		t.Skip("one writer: transactions cannot interleave")
	}
	tn := k.tenant.ID
	ada := k.subject(t, tn)
	if err := k.record(tn, grant(ada, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Second)
	started, proceed, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			close(started)
			<-proceed // the vault sealing evidence, in the real handler
			return tx.Consent(tn).Record(ctx, grant(ada, "outreach", 2))
		})
	}()
	<-started
	k.clock.Add(time.Second)
	w := withdrawal(ada, "outreach")
	err := k.record(tn, w)
	close(proceed)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if last := k.agrees(t, "race", tn, ada); last.ID != w.ID {
		t.Fatalf("latest record %s (%s), want the withdrawal %s", last.ID, last.Action, w.ID)
	}
	mustCode(t, k.check(tn, ada, "outreach"), tutela.ECONSENTREQUIRED)
}
