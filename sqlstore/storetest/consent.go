package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
)

// ConsentTests is the consent part of the conformance suite (issue 14): the register of
// purposes, the append-only consent history, objections and restrictions, and the one check
// every processing asks.
var ConsentTests = []Test{
	{"ConsentPurposeRules", testConsentPurposeRules},
	{"ConsentPurposeCap", testConsentPurposeCap},
	{"ConsentRecordValidation", testConsentRecordValidation},
	{"ConsentHistoryAppendOnly", testConsentAppendOnly},
	{"ConsentCheckMatrix", testConsentCheckMatrix},
	{"ConsentObjectionsAndRestrictions", testConsentObjectionsRestrictions},
	{"ConsentTenantIsolation", testConsentTenantIsolation},
	{"ConsentOlderRecordCommittedLate", testConsentOlderRecordCommittedLate},
	{"ConsentGrantWithdrawRace", testConsentGrantWithdrawRace},
	{"ConsentRecorderFollowsActor", testConsentRecorderFollowsActor},
	{"ConsentRequestLift", testConsentRequestLift},
}

// consentKit is a subject kit whose tenant declares outreach (on consent, notice
// outreach_notice at version 2, consents from version 1 counting), case_management (contract)
// and research (legitimate interests).
type consentKit struct{ *subjectKit }

func newConsentKit(t *testing.T, open Opener, slug string) *consentKit {
	t.Helper()
	k := &consentKit{newSubjectKit(t, open, slug)}
	k.declare(t, k.tenant.ID)
	return k
}

func (k *consentKit) declare(t *testing.T, tenantID string) {
	t.Helper()
	for _, p := range []*privacy.Purpose{
		{Name: "outreach", Description: "Newsletters about programmes", LawfulBasis: privacy.BasisConsent,
			NoticeID: "outreach_notice", NoticeVersion: 2, ConsentMinVersion: 1},
		{Name: "case_management", Description: "Running the case", LawfulBasis: privacy.BasisContract},
		{Name: "research", Description: "Programme evaluation", LawfulBasis: privacy.BasisLegitimateInterests},
	} {
		k.putPurpose(t, tenantID, p)
	}
}

func (k *consentKit) putPurpose(t *testing.T, tenantID string, p *privacy.Purpose) {
	t.Helper()
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Consent(tenantID).PutPurpose(ctx, p)
		return err
	})
}

func (k *consentKit) subject(t *testing.T, tenantID string) string {
	t.Helper()
	return k.create(t, tenantID, map[string]string{"full_name": "Ada Lovelace"})
}

func grant(subjectID, purpose string, version int) *privacy.ConsentRecord {
	return &privacy.ConsentRecord{ID: tutela.NewID(), SubjectID: subjectID, Purpose: purpose, Action: privacy.ConsentGranted,
		Basis: privacy.ConsentOrdinary, NoticeID: "outreach_notice", NoticeVersion: version, Channel: "web",
		RecordedBy: privacy.RecordedBySubject}
}

func withdrawal(subjectID, purpose string) *privacy.ConsentRecord {
	return &privacy.ConsentRecord{ID: tutela.NewID(), SubjectID: subjectID, Purpose: purpose, Action: privacy.ConsentWithdrawn,
		Basis: privacy.ConsentOrdinary, Channel: "app", RecordedBy: privacy.RecordedBySubject}
}

func (k *consentKit) record(tenantID string, rec *privacy.ConsentRecord) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(tenantID).Record(ctx, rec) })
}

func (k *consentKit) check(tenantID, subjectID, purpose string) error {
	return k.db.View(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(tenantID).Check(ctx, subjectID, purpose) })
}

func (k *consentKit) consent(t *testing.T, tenantID string, fn func(c sqlstore.Consent) error) {
	t.Helper()
	update(t, k.db, func(tx *sqlstore.Tx) error { return fn(tx.Consent(tenantID)) })
}

func mustField(t *testing.T, err error, field string) {
	t.Helper()
	mustCode(t, err, tutela.EINVALID)
	var e *tutela.Error
	if !errors.As(err, &e) || e.Field != field {
		got := ""
		if e != nil {
			got = e.Field
		}
		t.Fatalf("error %v names field %q, want %q", err, got, field)
	}
}

func testConsentPurposeRules(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	put := func(p privacy.Purpose) (bool, error) {
		var created bool
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
			created, err = tx.Consent(tn).PutPurpose(ctx, &p)
			return err
		})
		return created, err
	}
	outreach := privacy.Purpose{Name: "outreach", Description: "Newsletters v3", LawfulBasis: privacy.BasisConsent,
		NoticeID: "outreach_notice", NoticeVersion: 3, ConsentMinVersion: 1}

	// Declared once, then updated: created says which.
	if created, err := put(privacy.Purpose{Name: "helpline", Description: "Helpline calls", LawfulBasis: privacy.BasisVitalInterests}); err != nil || !created {
		t.Fatalf("declare: created=%v err=%v", created, err)
	}
	if created, err := put(outreach); err != nil || created {
		t.Fatalf("new notice version: created=%v err=%v", created, err)
	}
	// The lawful basis is fixed, and so is the notice.
	changed := outreach
	changed.LawfulBasis, changed.NoticeID, changed.NoticeVersion, changed.ConsentMinVersion = privacy.BasisLegitimateInterests, "", 0, 0
	_, err := put(changed)
	mustCode(t, err, tutela.ECONFLICT)
	changed = outreach
	changed.NoticeID = "other_notice"
	_, err = put(changed)
	mustField(t, err, "notice_id")
	// Versions only grow.
	changed = outreach
	changed.NoticeVersion = 2
	_, err = put(changed)
	mustField(t, err, "notice_version")
	changed = outreach
	changed.ConsentMinVersion = 3
	if _, err := put(changed); err != nil {
		t.Fatalf("require re-consent: %v", err)
	}
	changed.ConsentMinVersion = 2
	_, err = put(changed)
	mustField(t, err, "consent_min_version")

	// Validation: each problem named.
	for name, c := range map[string]struct {
		p     privacy.Purpose
		field string
	}{
		"bad name":               {privacy.Purpose{Name: "Bad Name", Description: "x", LawfulBasis: privacy.BasisContract}, "name"},
		"no description":         {privacy.Purpose{Name: "p1", LawfulBasis: privacy.BasisContract}, "description"},
		"control characters":     {privacy.Purpose{Name: "p1", Description: "a\x00b", LawfulBasis: privacy.BasisContract}, "description"},
		"unknown basis":          {privacy.Purpose{Name: "p1", Description: "x", LawfulBasis: "because"}, "lawful_basis"},
		"consent without notice": {privacy.Purpose{Name: "p1", Description: "x", LawfulBasis: privacy.BasisConsent}, "notice_id"},
		"min above version": {privacy.Purpose{Name: "p1", Description: "x", LawfulBasis: privacy.BasisConsent, NoticeID: "n",
			NoticeVersion: 1, ConsentMinVersion: 2}, "consent_min_version"},
		"notice on contract": {privacy.Purpose{Name: "p1", Description: "x", LawfulBasis: privacy.BasisContract, NoticeID: "n",
			NoticeVersion: 1, ConsentMinVersion: 1}, "notice_id"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := put(c.p)
			mustField(t, err, c.field)
		})
	}

	var list []*privacy.Purpose
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		list, err = tx.Consent(tn).Purposes(ctx)
		return err
	})
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "case_management,helpline,outreach,research" {
		t.Fatalf("register = %v", names)
	}
	if o := list[2]; o.NoticeVersion != 3 || o.ConsentMinVersion != 3 || o.LawfulBasis != privacy.BasisConsent || !o.UpdatedAt.After(o.CreatedAt) && !o.UpdatedAt.Equal(o.CreatedAt) {
		t.Fatalf("outreach = %+v", o)
	}
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Action: "purpose.update", TargetID: "outreach"})
	if err != nil || len(recs) != 2 || recs[0].Event.Details["previous_notice_version"] == nil {
		t.Fatalf("purpose.update events = %d (%v)", len(recs), err)
	}
}

func testConsentPurposeCap(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	update(t, k.db, func(tx *sqlstore.Tx) error {
		for i := 3; i < privacy.MaxRegisteredPurposes; i++ {
			if _, err := tx.Consent(k.tenant.ID).PutPurpose(ctx, &privacy.Purpose{Name: fmt.Sprintf("p%d", i),
				Description: "x", LawfulBasis: privacy.BasisContract}); err != nil {
				return err
			}
		}
		return nil
	})
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Consent(k.tenant.ID).PutPurpose(ctx, &privacy.Purpose{Name: "one_more", Description: "x",
			LawfulBasis: privacy.BasisContract})
		return err
	})
	mustCode(t, err, tutela.ECONFLICT)
	// Changing a declared purpose is not adding one.
	k.putPurpose(t, k.tenant.ID, &privacy.Purpose{Name: "p3", Description: "changed", LawfulBasis: privacy.BasisContract})
}

func testConsentRecordValidation(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	ada := k.subject(t, tn)

	cases := map[string]struct {
		rec   func() *privacy.ConsentRecord
		field string
	}{
		"caseworker without evidence": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.RecordedBy = privacy.RecordedByCaseworker
			return r
		}, "evidence"},
		"evidence not sealed": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.Evidence = "form 17"
			return r
		}, "evidence"},
		"another notice": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.NoticeID = "other_notice"
			return r
		}, "notice_id"},
		"version not published": {func() *privacy.ConsentRecord { return grant(ada, "outreach", 3) }, "notice_version"},
		"version zero":          {func() *privacy.ConsentRecord { return grant(ada, "outreach", 0) }, "notice_version"},
		"purpose on contract": {func() *privacy.ConsentRecord {
			return grant(ada, "case_management", 1)
		}, "purpose"},
		"undeclared purpose": {func() *privacy.ConsentRecord { return grant(ada, "marketing", 1) }, "purpose"},
		"unknown channel": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.Channel = "carrier pigeon"
			return r
		}, "channel"},
		"unknown form": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.Basis = "implied"
			return r
		}, "lawful_basis"},
		"no ID": {func() *privacy.ConsentRecord {
			r := grant(ada, "outreach", 2)
			r.ID = ""
			return r
		}, "id"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { mustField(t, k.record(tn, c.rec()), c.field) })
	}
	// Nothing was stored by any refusal.
	var history []*privacy.ConsentRecord
	history = k.history(t, tn, ada)
	if len(history) != 0 {
		t.Fatalf("refused records stored: %d", len(history))
	}

	// A grant to an older version that still counts, then a caseworker's withdrawal with evidence
	// (sealed by the caller) that names no notice: it takes the current one.
	if err := k.record(tn, grant(ada, "outreach", 1)); err != nil {
		t.Fatal(err)
	}
	w := withdrawal(ada, "outreach")
	w.RecordedBy, w.Evidence, w.EvidenceSealed = privacy.RecordedByCaseworker, "call 2026-114", []byte("sealed-bytes")
	if err := k.record(tn, w); err != nil {
		t.Fatal(err)
	}
	history = k.history(t, tn, ada)
	if len(history) != 2 || history[0].Action != privacy.ConsentGranted || history[1].Action != privacy.ConsentWithdrawn ||
		history[1].NoticeID != "outreach_notice" || history[1].NoticeVersion != 2 || !bytes.Equal(history[1].EvidenceSealed, []byte("sealed-bytes")) ||
		history[1].Evidence != "" || history[1].ActorType == "" || history[0].EvidenceSealed != nil {
		t.Fatalf("history = %+v, %+v", history[0], history[1])
	}
	// Once re-consent is required, a grant to an old version is refused.
	k.putPurpose(t, tn, &privacy.Purpose{Name: "outreach", Description: "v2 required", LawfulBasis: privacy.BasisConsent,
		NoticeID: "outreach_notice", NoticeVersion: 2, ConsentMinVersion: 2})
	mustField(t, k.record(tn, grant(ada, "outreach", 1)), "notice_version")

	// An erased subject takes no new records; their history stays.
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, ada, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	mustCode(t, k.record(tn, grant(ada, "outreach", 2)), tutela.ENOTFOUND)
	if len(k.history(t, tn, ada)) != 2 {
		t.Fatal("erasure changed the consent history")
	}
	// Another tenant's subject, or none: not found.
	other := k.addTenant(t, "globex")
	k.declare(t, other.ID)
	bob := k.subject(t, other.ID)
	mustCode(t, k.record(tn, grant(bob, "outreach", 2)), tutela.ENOTFOUND)
	mustCode(t, k.record(tn, grant(tutela.NewID(), "outreach", 2)), tutela.ENOTFOUND)

	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Action: "consent.withdrawn", TargetID: ada})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["evidence"] != true || strings.Contains(string(recs[0].Canonical), "2026-114") {
		t.Fatalf("consent.withdrawn events = %d (%v)", len(recs), err)
	}
}

func (k *consentKit) history(t *testing.T, tenantID, subjectID string) []*privacy.ConsentRecord {
	t.Helper()
	var out []*privacy.ConsentRecord
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		out, err = tx.Consent(tenantID).History(ctx, subjectID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// testConsentAppendOnly: the database itself refuses to change or remove history, even for
// its owner, so a compromised application cannot rewrite what a subject agreed to.
func testConsentAppendOnly(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	ada := k.subject(t, k.tenant.ID)
	if err := k.record(k.tenant.ID, grant(ada, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		`UPDATE consent_records SET action = 'withdrawn'`,
		`UPDATE consent_records SET notice_version = 1`,
		`DELETE FROM consent_records`,
	}
	if k.db.Dialect() == sqlstore.Postgres {
		stmts = append(stmts, `TRUNCATE consent_records CASCADE`)
	}
	for _, q := range stmts {
		_, err := k.db.SQL().ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
	if h := k.history(t, k.tenant.ID, ada); len(h) != 1 || h[0].Action != privacy.ConsentGranted {
		t.Fatalf("history after tampering = %+v", h)
	}
}

func testConsentCheckMatrix(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	subject := func(setup func(id string)) string {
		id := k.subject(t, tn)
		if setup != nil {
			setup(id)
		}
		return id
	}
	rec := func(r *privacy.ConsentRecord) {
		if err := k.record(tn, r); err != nil {
			t.Fatal(err)
		}
	}
	// Consents given before the notice changes: v1 is still counted, v2 too.
	onV1 := subject(func(id string) { rec(grant(id, "outreach", 1)) })
	onV2 := subject(func(id string) { rec(grant(id, "outreach", 2)) })
	withdrawn := subject(func(id string) { rec(grant(id, "outreach", 2)); rec(withdrawal(id, "outreach")) })
	regranted := subject(func(id string) {
		rec(grant(id, "outreach", 2))
		rec(withdrawal(id, "outreach"))
		rec(grant(id, "outreach", 2))
	})
	none := subject(nil)
	objected := subject(func(id string) {
		rec(grant(id, "outreach", 2))
		k.consent(t, tn, func(c sqlstore.Consent) error { return c.Object(ctx, id, "research", "") })
	})
	restricted := subject(func(id string) {
		rec(grant(id, "outreach", 2))
		k.consent(t, tn, func(c sqlstore.Consent) error { return c.Restrict(ctx, id, "") })
	})
	erased := subject(func(id string) {
		rec(grant(id, "outreach", 2))
		update(t, k.db, func(tx *sqlstore.Tx) error {
			_, err := tx.Subjects(tn).Erase(ctx, id, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
			return err
		})
	})

	type want map[string]string // purpose → error code ("" allowed)
	matrix := []struct {
		name, id string
		want     want
	}{
		{"granted to v1", onV1, want{"outreach": "", "case_management": "", "research": ""}},
		{"granted to v2", onV2, want{"outreach": "", "case_management": "", "research": ""}},
		{"withdrawn", withdrawn, want{"outreach": tutela.ECONSENTREQUIRED, "case_management": "", "research": ""}},
		{"granted again", regranted, want{"outreach": ""}},
		{"never asked", none, want{"outreach": tutela.ECONSENTREQUIRED, "case_management": "", "research": ""}},
		{"objected to research", objected, want{"outreach": "", "case_management": "", "research": tutela.ECONSENTREQUIRED}},
		{"restricted", restricted, want{"outreach": tutela.ERESTRICTED, "case_management": tutela.ERESTRICTED, "research": tutela.ERESTRICTED}},
		{"erased", erased, want{"outreach": tutela.ENOTFOUND, "case_management": tutela.ENOTFOUND}},
		{"no such subject", tutela.NewID(), want{"outreach": tutela.ENOTFOUND, "case_management": tutela.ENOTFOUND}},
		{"undeclared purpose", onV2, want{"marketing": tutela.EINVALID, "Not A Name": tutela.EINVALID, "": tutela.EINVALID}},
		{"not an ID", "nope", want{"outreach": tutela.ENOTFOUND}},
	}
	run := func(step string) {
		for _, m := range matrix {
			for purpose, code := range m.want {
				if got := tutela.ErrorCode(k.check(tn, m.id, purpose)); got != code {
					t.Errorf("%s: %s/%s = %q, want %q", step, m.name, purpose, got, code)
				}
			}
		}
	}
	run("before")

	// A new notice version that requires re-consent: consents to v1 and v2 stop counting until
	// a grant to v3; the other purposes are untouched.
	k.putPurpose(t, tn, &privacy.Purpose{Name: "outreach", Description: "v3", LawfulBasis: privacy.BasisConsent,
		NoticeID: "outreach_notice", NoticeVersion: 3, ConsentMinVersion: 3})
	for _, m := range matrix {
		if m.want["outreach"] == "" && m.want["case_management"] == "" {
			if _, ok := m.want["outreach"]; ok {
				m.want["outreach"] = tutela.ECONSENTREQUIRED
			}
		}
	}
	run("after re-consent required")
	rec(grant(onV1, "outreach", 3))
	matrix[0].want["outreach"] = ""
	run("after re-consent")
	// A new version that does not require re-consent keeps the v3 grant counting.
	k.putPurpose(t, tn, &privacy.Purpose{Name: "outreach", Description: "v4", LawfulBasis: privacy.BasisConsent,
		NoticeID: "outreach_notice", NoticeVersion: 4, ConsentMinVersion: 3})
	run("after a minor version")
}

func testConsentObjectionsRestrictions(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	ada := k.subject(t, tn)
	do := func(fn func(c sqlstore.Consent) error) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.Consent(tn)) })
	}
	// Only a purpose on public task or legitimate interests can be objected to.
	mustField(t, do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "outreach", "") }), "purpose")
	mustField(t, do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "case_management", "") }), "purpose")
	mustField(t, do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "marketing", "") }), "purpose")
	mustField(t, do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "research", "not-an-id") }), "reference")
	mustCode(t, do(func(c sqlstore.Consent) error { return c.Object(ctx, tutela.NewID(), "research", "") }), tutela.ENOTFOUND)
	ref := tutela.NewID()
	for range 2 { // twice: no change the second time
		if err := do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "research", ref) }); err != nil {
			t.Fatal(err)
		}
	}
	var objs []*sqlstore.Objection
	k.consent(t, tn, func(c sqlstore.Consent) (err error) { objs, err = c.Objections(ctx, ada); return err })
	if len(objs) != 1 || objs[0].Purpose != "research" || objs[0].Reference != ref {
		t.Fatalf("objections = %+v", objs)
	}
	mustCode(t, k.check(tn, ada, "research"), tutela.ECONSENTREQUIRED)
	mustField(t, do(func(c sqlstore.Consent) error { return c.WithdrawObjection(ctx, ada, "research", sqlstore.Lift{}) }), "reason")
	if err := do(func(c sqlstore.Consent) error {
		return c.WithdrawObjection(ctx, ada, "research", sqlstore.Lift{Reason: "compelling grounds", SubjectInformed: true, MayLiftRequest: allowLift})
	}); err != nil {
		t.Fatal(err)
	}
	mustCode(t, do(func(c sqlstore.Consent) error {
		return c.WithdrawObjection(ctx, ada, "research", sqlstore.Lift{Reason: "again"})
	}), tutela.ENOTFOUND)
	if err := k.check(tn, ada, "research"); err != nil {
		t.Fatalf("after the objection was withdrawn: %v", err)
	}

	// A restriction refuses every purpose until lifted with a reason.
	for range 2 {
		if err := do(func(c sqlstore.Consent) error { return c.Restrict(ctx, ada, "") }); err != nil {
			t.Fatal(err)
		}
	}
	var r *sqlstore.Restriction
	k.consent(t, tn, func(c sqlstore.Consent) (err error) { r, err = c.Restriction(ctx, ada); return err })
	if r == nil || r.ActorType == "" {
		t.Fatalf("restriction = %+v", r)
	}
	mustCode(t, k.check(tn, ada, "case_management"), tutela.ERESTRICTED)
	mustField(t, do(func(c sqlstore.Consent) error { return c.LiftRestriction(ctx, ada, sqlstore.Lift{}) }), "reason")
	if err := do(func(c sqlstore.Consent) error {
		return c.LiftRestriction(ctx, ada, sqlstore.Lift{Reason: "accuracy verified"})
	}); err != nil {
		t.Fatal(err)
	}
	mustCode(t, do(func(c sqlstore.Consent) error { return c.LiftRestriction(ctx, ada, sqlstore.Lift{Reason: "again"}) }), tutela.ENOTFOUND)
	if err := k.check(tn, ada, "case_management"); err != nil {
		t.Fatalf("after the restriction was lifted: %v", err)
	}
	for action, n := range map[string]int{"subject.objection.record": 1, "subject.objection.withdraw": 1,
		"subject.restriction.place": 1, "subject.restriction.lift": 1} {
		recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Action: action, TargetID: ada})
		if err != nil || len(recs) != n {
			t.Errorf("%s events = %d (%v), want %d", action, len(recs), err, n)
		}
	}
}

// testConsentTenantIsolation: one tenant's register, history, objections and restrictions
// say nothing about, and change nothing in, another's.
func testConsentTenantIsolation(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	a := k.tenant.ID
	other := k.addTenant(t, "globex")
	b := other.ID
	ada := k.subject(t, a)
	if err := k.record(a, grant(ada, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	k.consent(t, a, func(c sqlstore.Consent) error { return c.Object(ctx, ada, "research", "") })
	k.consent(t, a, func(c sqlstore.Consent) error { return c.Restrict(ctx, ada, "") })

	// globex has declared nothing: its register is empty and every purpose undeclared.
	var list []*privacy.Purpose
	k.consent(t, b, func(c sqlstore.Consent) (err error) { list, err = c.Purposes(ctx); return err })
	if len(list) != 0 {
		t.Fatalf("globex sees %d purposes", len(list))
	}
	mustCode(t, k.check(b, ada, "outreach"), tutela.EINVALID)
	declared := func(tenantID string) error {
		return k.db.View(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(tenantID).Declared(ctx, "outreach") })
	}
	mustField(t, declared(b), "purpose")
	if err := declared(a); err != nil {
		t.Fatalf("acme's outreach: %v", err)
	}
	k.declare(t, b)
	// With the same purposes declared, acme's subject is still not globex's.
	mustCode(t, k.check(b, ada, "case_management"), tutela.ENOTFOUND)
	mustCode(t, k.record(b, grant(ada, "outreach", 2)), tutela.ENOTFOUND)
	if h := k.history(t, b, ada); len(h) != 0 {
		t.Fatalf("globex reads acme's history: %d records", len(h))
	}
	var objs []*sqlstore.Objection
	var r *sqlstore.Restriction
	k.consent(t, b, func(c sqlstore.Consent) (err error) {
		if objs, err = c.Objections(ctx, ada); err != nil {
			return err
		}
		r, err = c.Restriction(ctx, ada)
		return err
	})
	if len(objs) != 0 || r != nil {
		t.Fatalf("globex sees acme's objections %v or restriction %v", objs, r)
	}
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Consent(b).LiftRestriction(ctx, ada, sqlstore.Lift{Reason: "not mine"})
	})
	mustCode(t, err, tutela.ENOTFOUND)
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Consent(b).WithdrawObjection(ctx, ada, "research", sqlstore.Lift{Reason: "not mine"})
	})
	mustCode(t, err, tutela.ENOTFOUND)
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(b).Restrict(ctx, ada, "") })
	mustCode(t, err, tutela.ENOTFOUND)
	// acme's state is unchanged.
	mustCode(t, k.check(a, ada, "outreach"), tutela.ERESTRICTED)
	// Changing globex's outreach notice leaves acme's alone.
	k.putPurpose(t, b, &privacy.Purpose{Name: "outreach", Description: "v5", LawfulBasis: privacy.BasisConsent,
		NoticeID: "outreach_notice", NoticeVersion: 5, ConsentMinVersion: 5})
	var p *privacy.Purpose
	k.consent(t, a, func(c sqlstore.Consent) (err error) { p, err = c.Purpose(ctx, "outreach"); return err })
	if p.NoticeVersion != 2 || p.ConsentMinVersion != 1 {
		t.Fatalf("acme's outreach changed with globex's: %+v", p)
	}
}
