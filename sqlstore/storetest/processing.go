package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// ProcessingTests is the records-of-processing part of the conformance suite (issue 14): the
// record generated from the live register and schema, its gaps, the declarations' validation,
// the sub-processor register's history, tenant isolation and audit events.
var ProcessingTests = []Test{
	{"ProcessingRecordFollowsLiveSchemaAndShowsGaps", testProcessingLive},
	{"ProcessingDeclarationsValidatedNothingStored", testProcessingValidation},
	{"SubprocessorRegisterKeepsRemovedAsHistory", testSubprocessorRegister},
	{"ProcessingTenantIsolation", testProcessingIsolation},
}

// processingKit is a store with one tenant whose register declares aid (consent) and
// case_management (contract), and whose schema also uses marketing, which the register lacks.
func processingKit(t *testing.T, open Opener, slug string) (*sqlstore.DB, *tutela.Tenant, *fakeClock) {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := seedProcessingTenant(t, db, slug)
	return db, tn, clock
}

func seedProcessingTenant(t *testing.T, db *sqlstore.DB, slug string) *tutela.Tenant {
	t.Helper()
	tn := createTenant(t, db, slug)
	update(t, db, func(tx *sqlstore.Tx) error {
		for _, p := range []*privacy.Purpose{
			{Name: "aid", Description: "Cash assistance", LawfulBasis: privacy.BasisConsent, NoticeID: "aid_notice", NoticeVersion: 2, ConsentMinVersion: 1},
			{Name: "case_management", Description: "Case files", LawfulBasis: privacy.BasisContract},
		} {
			if _, err := tx.Consent(tn.ID).PutPurpose(ctx, p); err != nil {
				return err
			}
		}
		return tx.SubjectSchema(tn.ID).Put(ctx, processingSchema([]string{"aid", "marketing"}))
	})
	return tn
}

// processingSchema is the test schema with phone processed for phonePurposes.
func processingSchema(phonePurposes []string) privacy.Schema {
	return privacy.Schema{
		{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"case_management", "aid"},
			RetentionDays: 365, Mask: authz.MaskPartial},
		{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red, Purposes: []string{"case_management"},
			RetentionDays: 3650, Mask: authz.MaskHashed},
		{Name: "phone", Type: privacy.FieldPhone, Classification: authz.Yellow, Purposes: phonePurposes,
			RetentionDays: 4000, Mask: authz.MaskPartial},
	}
}

func generate(t *testing.T, db *sqlstore.DB, tenantID string) *privacy.RecordsOfProcessing {
	t.Helper()
	var rop *privacy.RecordsOfProcessing
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rop, err = tx.Processing(tenantID).Generate(ctx); return }); err != nil {
		t.Fatal(err)
	}
	return rop
}

func purposeOf(t *testing.T, rop *privacy.RecordsOfProcessing, name string) privacy.PurposeRecord {
	t.Helper()
	for _, p := range rop.Purposes {
		if p.Purpose == name {
			return p
		}
	}
	t.Fatalf("purpose %s not in the record: %+v", name, rop.Purposes)
	return privacy.PurposeRecord{}
}

func categoryFields(p privacy.PurposeRecord) []string {
	var out []string
	for _, c := range p.DataCategories {
		out = append(out, c.Field)
	}
	return out
}

// gapKeys are rop's gaps as "kind/purpose".
func gapKeys(rop *privacy.RecordsOfProcessing) []string {
	out := []string{}
	for _, g := range rop.Gaps {
		out = append(out, g.Kind+"/"+g.Purpose)
	}
	slices.Sort(out)
	return out
}

func processingEvents(t *testing.T, db *sqlstore.DB, action, targetID string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE action = $1 AND target_id = $2`,
		action, targetID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testProcessingLive(t *testing.T, open Opener) {
	db, tn, clock := processingKit(t, open, "acme")
	rop := generate(t, db, tn.ID)
	if rop.TenantID != tn.ID || rop.TenantSlug != "acme" || rop.Controller != nil || !rop.GeneratedAt.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("record header = %+v", rop)
	}
	if got, want := gapKeys(rop), []string{"controller_missing/", "purpose_not_in_register/marketing", "purpose_without_record/aid",
		"purpose_without_record/case_management", "red_without_security_measures/case_management"}; !slices.Equal(got, want) {
		t.Fatalf("gaps = %v, want %v", got, want)
	}
	aid := purposeOf(t, rop, "aid")
	if !aid.InRegister || aid.LawfulBasis != privacy.BasisConsent || aid.NoticeID != "aid_notice" || aid.NoticeVersion != 2 ||
		!slices.Equal(categoryFields(aid), []string{"full_name", "phone"}) || aid.RetentionDays != 4000 || aid.Declared {
		t.Fatalf("aid = %+v", aid)
	}
	cm := purposeOf(t, rop, "case_management")
	if !slices.Equal(categoryFields(cm), []string{"full_name", "national_id"}) || cm.RetentionDays != 3650 ||
		cm.DataCategories[1].Classification != authz.Red || cm.DataCategories[1].Type != privacy.FieldNationalID {
		t.Fatalf("case_management = %+v", cm)
	}
	if m := purposeOf(t, rop, "marketing"); m.InRegister || m.LawfulBasis != "" || !slices.Equal(categoryFields(m), []string{"phone"}) {
		t.Fatalf("marketing = %+v", m)
	}

	// Declarations close their gaps; a transfer on no safeguard opens one.
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.Processing(tn.ID).PutController(ctx, &privacy.Controller{Name: "Acme Relief", Contact: "privacy@acme.example",
			DPOContact: "dpo@acme.example"}); err != nil {
			return err
		}
		_, err := tx.Processing(tn.ID).PutRecord(ctx, &privacy.Record{Purpose: "case_management",
			SubjectCategories: []string{"beneficiaries"}, Recipients: []string{"Partner NGOs"},
			Transfers:        []privacy.Transfer{{Country: "US", Recipient: "Cloud host"}, {Country: "CH", Recipient: "HQ", Safeguard: privacy.SafeguardAdequacy}},
			SecurityMeasures: "Encryption per subject; access by role and clearance"})
		return err
	})
	rop = generate(t, db, tn.ID)
	if got, want := gapKeys(rop), []string{"purpose_not_in_register/marketing", "purpose_without_record/aid",
		"transfer_without_safeguard/case_management"}; !slices.Equal(got, want) {
		t.Fatalf("gaps after declaring = %v, want %v", got, want)
	}
	cm = purposeOf(t, rop, "case_management")
	if !cm.Declared || cm.DeclaredAt == nil || !slices.Equal(cm.Recipients, []string{"Partner NGOs"}) || len(cm.Transfers) != 2 ||
		rop.Controller == nil || rop.Controller.DPOContact != "dpo@acme.example" {
		t.Fatalf("declared record = %+v, controller %+v", cm, rop.Controller)
	}

	// Giving phone the purpose case_management changes the record without touching it: phone
	// is now a data category there and its 4000 days the purpose's retention.
	clock.Add(time.Second)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.SubjectSchema(tn.ID).Put(ctx, processingSchema([]string{"aid", "case_management"}))
	})
	rop = generate(t, db, tn.ID)
	cm = purposeOf(t, rop, "case_management")
	if !slices.Equal(categoryFields(cm), []string{"full_name", "national_id", "phone"}) || cm.RetentionDays != 4000 {
		t.Fatalf("after the schema change case_management = %+v", cm)
	}
	for _, p := range rop.Purposes {
		if p.Purpose == "marketing" {
			t.Fatal("marketing still in the record after no field uses it")
		}
	}
	if slices.Contains(gapKeys(rop), "purpose_not_in_register/marketing") {
		t.Fatalf("gap for marketing kept: %v", gapKeys(rop))
	}

	// Events: the controller once, the record's creation and then an update naming the fields.
	if processingEvents(t, db, "processing.controller_update", tn.ID) != 1 || processingEvents(t, db, "processing.record_create", "case_management") != 1 {
		t.Fatal("declarations not audited")
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.Processing(tn.ID).PutRecord(ctx, &privacy.Record{Purpose: "case_management", Recipients: []string{"Partner NGOs"},
			SecurityMeasures: "Encryption per subject"})
		return err
	})
	var details string
	if err := db.SQL().QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE action = 'processing.record_update'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, `"changed":["security_measures","subject_categories","transfers"]`) || strings.Contains(details, "Encryption") {
		t.Fatalf("record_update event = %s", details)
	}
}

func testProcessingValidation(t *testing.T, open Opener) {
	db, tn, _ := processingKit(t, open, "acme")
	events := countRows(t, db, "audit_events")
	long := strings.Repeat("x", 201)
	ok := func() privacy.Subprocessor {
		return privacy.Subprocessor{Name: "Mailer Ltd", Service: "E-mail delivery", Locations: []string{"IE"}, ContractRef: "DPA-7"}
	}
	sub := func(f func(*privacy.Subprocessor)) func(*sqlstore.Tx) error {
		s := ok()
		f(&s)
		return func(tx *sqlstore.Tx) error { return tx.Processing(tn.ID).AddSubprocessor(ctx, &s) }
	}
	rec := func(r privacy.Record) func(*sqlstore.Tx) error {
		return func(tx *sqlstore.Tx) error { _, err := tx.Processing(tn.ID).PutRecord(ctx, &r); return err }
	}
	ctl := func(c privacy.Controller) func(*sqlstore.Tx) error {
		return func(tx *sqlstore.Tx) error { return tx.Processing(tn.ID).PutController(ctx, &c) }
	}
	tooMany := make([]string, privacy.MaxListItems+1)
	for i := range tooMany {
		tooMany[i] = "c" + strings.Repeat("x", i)
	}
	cases := []struct {
		name, field string
		fn          func(*sqlstore.Tx) error
	}{
		{"controller without name", "name", ctl(privacy.Controller{Contact: "x"})},
		{"controller name on two lines", "name", ctl(privacy.Controller{Name: "A\nB", Contact: "x"})},
		{"controller without contact", "contact", ctl(privacy.Controller{Name: "Acme"})},
		{"DPO contact with bidi override", "dpo_contact", ctl(privacy.Controller{Name: "Acme", Contact: "x", DPOContact: "a\u202eb"})},
		{"record for a bad purpose name", "purpose", rec(privacy.Record{Purpose: "Aid!"})},
		{"recipient too long", "recipients", rec(privacy.Record{Purpose: "aid", Recipients: []string{long}})},
		{"too many subject categories", "subject_categories", rec(privacy.Record{Purpose: "aid", SubjectCategories: tooMany})},
		{"duplicate recipient", "recipients", rec(privacy.Record{Purpose: "aid", Recipients: []string{"A", "A"}})},
		{"transfer to UK (GB is the code)", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "UK", Recipient: "R"}}})},
		{"transfer to a lower-case code", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "us", Recipient: "R"}}})},
		{"transfer to the EU", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "EU", Recipient: "R"}}})},
		{"transfer without recipient", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "US"}}})},
		{"unknown safeguard", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "US", Recipient: "R", Safeguard: "trust_me"}}})},
		{"other safeguard without details", "transfers", rec(privacy.Record{Purpose: "aid", Transfers: []privacy.Transfer{{Country: "US", Recipient: "R", Safeguard: privacy.SafeguardOther}}})},
		{"security note too long", "security_measures", rec(privacy.Record{Purpose: "aid", SecurityMeasures: strings.Repeat("x", 4001)})},
		{"subprocessor without name", "name", sub(func(s *privacy.Subprocessor) { s.Name = " " })},
		{"subprocessor without service", "service", sub(func(s *privacy.Subprocessor) { s.Service = "" })},
		{"subprocessor without locations", "locations", sub(func(s *privacy.Subprocessor) { s.Locations = nil })},
		{"subprocessor in a made-up country", "locations", sub(func(s *privacy.Subprocessor) { s.Locations = []string{"XX"} })},
		{"subprocessor location twice", "locations", sub(func(s *privacy.Subprocessor) { s.Locations = []string{"IE", "IE"} })},
		{"subprocessor without contract", "contract_ref", sub(func(s *privacy.Subprocessor) { s.ContractRef = "" })},
		{"subprocessor derogation undescribed", "safeguard_details", sub(func(s *privacy.Subprocessor) { s.TransferSafeguard = privacy.SafeguardDerogation })},
		{"subprocessor category with a control character", "data_categories", sub(func(s *privacy.Subprocessor) { s.DataCategories = []string{"a\x00"} })},
	}
	for _, c := range cases {
		err := db.Update(ctx, c.fn)
		var e *tutela.Error
		if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != c.field {
			t.Errorf("%s: %v, want invalid on %s", c.name, err, c.field)
		}
	}
	// A purpose the register lacks has no record.
	mustCode(t, db.Update(ctx, rec(privacy.Record{Purpose: "marketing"})), tutela.ENOTFOUND)
	if n := countRows(t, db, "audit_events"); n != events {
		t.Fatalf("refused declarations wrote %d audit events", n-events)
	}
	for _, table := range []string{"processing_controllers", "processing_records", "subprocessors"} {
		if n := countRows(t, db, table); n != 0 {
			t.Fatalf("refused declarations stored %d rows in %s", n, table)
		}
	}
	// Valid edge cases pass: GB, the maximum list size, an SCC transfer without details.
	update(t, db, rec(privacy.Record{Purpose: "aid", SubjectCategories: tooMany[:privacy.MaxListItems],
		Transfers: []privacy.Transfer{{Country: "GB", Recipient: "R", Safeguard: privacy.SafeguardSCC}}}))
}

func testSubprocessorRegister(t *testing.T, open Opener) {
	db, tn, clock := processingKit(t, open, "acme")
	add := func(name string) *privacy.Subprocessor {
		s := &privacy.Subprocessor{Name: name, Service: "Hosting", Locations: []string{"DE", "US"}, DataCategories: []string{"contact"},
			TransferSafeguard: privacy.SafeguardSCC, ContractRef: "DPA-" + name}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.Processing(tn.ID).AddSubprocessor(ctx, s) })
		return s
	}
	a := add("Hoster")
	clock.Add(time.Second)
	b := add("Mailer")
	if !tutela.ValidID(a.ID) || a.Status != privacy.SubprocessorActive || a.RemovedAt != nil {
		t.Fatalf("added = %+v", a)
	}
	list := func(all bool) []*privacy.Subprocessor {
		var out []*privacy.Subprocessor
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { out, err = tx.Processing(tn.ID).Subprocessors(ctx, all); return }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if l := list(false); len(l) != 2 || l[0].ID != a.ID || l[1].ID != b.ID || !slices.Equal(l[0].Locations, []string{"DE", "US"}) {
		t.Fatalf("list = %+v", l)
	}

	// Update, then remove: the row stays, dated, and no longer changes.
	a.Service, a.Locations = "Hosting and backups", []string{"DE"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Processing(tn.ID).UpdateSubprocessor(ctx, a) })
	clock.Add(time.Second)
	var removed *privacy.Subprocessor
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		removed, err = tx.Processing(tn.ID).RemoveSubprocessor(ctx, a.ID)
		return
	})
	if removed.Status != privacy.SubprocessorRemoved || removed.RemovedAt == nil || !removed.RemovedAt.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("removed = %+v (now %v)", removed, clock.Now())
	}
	if l := list(false); len(l) != 1 || l[0].ID != b.ID {
		t.Fatalf("active list = %+v", l)
	}
	all := list(true)
	if len(all) != 2 || all[0].ID != a.ID || all[0].Status != privacy.SubprocessorRemoved || all[0].Service != "Hosting and backups" ||
		all[0].RemovedAt == nil || !all[0].RemovedAt.Equal(*removed.RemovedAt) {
		t.Fatalf("full register = %+v", all)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Processing(tn.ID).RemoveSubprocessor(ctx, a.ID); return err }), tutela.ECONFLICT)
	a.Service = "changed after removal"
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Processing(tn.ID).UpdateSubprocessor(ctx, a) }), tutela.ECONFLICT)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Processing(tn.ID).RemoveSubprocessor(ctx, tutela.NewID())
		return err
	}), tutela.ENOTFOUND)

	// The generated record lists active sub-processors only.
	if rop := generate(t, db, tn.ID); len(rop.Subprocessors) != 1 || rop.Subprocessors[0].ID != b.ID {
		t.Fatalf("record's sub-processors = %+v", rop.Subprocessors)
	}
	for action, n := range map[string]int{"subprocessor.add": 1, "subprocessor.update": 1, "subprocessor.remove": 1} {
		if got := processingEvents(t, db, action, a.ID); got != n {
			t.Errorf("%s events for %s = %d, want %d", action, a.ID, got, n)
		}
	}
	var details string
	if err := db.SQL().QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE action = 'subprocessor.update'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, `"changed":["locations","service"]`) || strings.Contains(details, "backups") {
		t.Fatalf("subprocessor.update event = %s", details)
	}

	// The register is capped, removed entries included: they are history, never deleted.
	update(t, db, func(tx *sqlstore.Tx) error {
		for range privacy.MaxSubprocessors - 2 {
			if err := tx.Processing(tn.ID).AddSubprocessor(ctx, &privacy.Subprocessor{Name: "N", Service: "s",
				Locations: []string{"FR"}, ContractRef: "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Processing(tn.ID).AddSubprocessor(ctx, &privacy.Subprocessor{Name: "One more", Service: "s",
			Locations: []string{"FR"}, ContractRef: "x"})
	}), tutela.ECONFLICT)
}

func testProcessingIsolation(t *testing.T, open Opener) {
	db, a, _ := processingKit(t, open, "tenant-a")
	b := seedProcessingTenant(t, db, "tenant-b")
	s := &privacy.Subprocessor{Name: "A's host", Service: "Hosting", Locations: []string{"DE"}, ContractRef: "DPA-1"}
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.Processing(a.ID).PutController(ctx, &privacy.Controller{Name: "A", Contact: "a@example.org"}); err != nil {
			return err
		}
		if _, err := tx.Processing(a.ID).PutRecord(ctx, &privacy.Record{Purpose: "aid", Recipients: []string{"A's partner"}}); err != nil {
			return err
		}
		return tx.Processing(a.ID).AddSubprocessor(ctx, s)
	})
	// B sees nothing of A's and cannot touch A's sub-processor, exactly as if it did not exist.
	rop := generate(t, db, b.ID)
	if rop.Controller != nil || len(rop.Subprocessors) != 0 || purposeOf(t, rop, "aid").Declared {
		t.Fatalf("tenant B's record shows A's declarations: %+v", rop)
	}
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Processing(b.ID).Subprocessor(ctx, s.ID); return err }), tutela.ENOTFOUND)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Processing(b.ID).RemoveSubprocessor(ctx, s.ID); return err }), tutela.ENOTFOUND)
	hijack := *s
	hijack.Name = "hijacked"
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Processing(b.ID).UpdateSubprocessor(ctx, &hijack) }), tutela.ENOTFOUND)
	var got *privacy.Subprocessor
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Processing(a.ID).Subprocessor(ctx, s.ID); return }); err != nil ||
		got.Name != "A's host" || got.Status != privacy.SubprocessorActive {
		t.Fatalf("A's sub-processor after B's attempts: %+v, %v", got, err)
	}
	// An unknown tenant has no record.
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Processing(tutela.NewID()).Generate(ctx); return err }), tutela.ENOTFOUND)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Processing(tutela.NewID()).PutController(ctx, &privacy.Controller{Name: "X", Contact: "x"})
	}), tutela.ENOTFOUND)
}
