package storetest

import (
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/compliance"
	"tutela/sqlstore"
)

// ComplianceTests are the compliance report's part of the suite (issue 19): recorded operations
// and the state the report reads, which must never include a tenant outside the scope given.
var ComplianceTests = []Test{
	{"ComplianceOperationsRecordedAndAudited", testComplianceOperations},
	{"ComplianceStateScopedToGivenTenants", testComplianceScope},
	{"ComplianceStateCountsRolesFactorsAndServiceAccounts", testComplianceCounts},
}

func testComplianceOperations(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	view := func(kind string) *compliance.Operation {
		t.Helper()
		var op *compliance.Operation
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { op, err = tx.LatestOperation(ctx, kind); return }); err != nil {
			t.Fatal(err)
		}
		return op
	}
	if op := view(compliance.OpBackup); op != nil {
		t.Fatalf("a new store has a backup: %+v", op)
	}
	record := func(kind, outcome string, details map[string]any) (*compliance.Operation, error) {
		var op *compliance.Operation
		err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) { op, err = tx.RecordOperation(ctx, kind, outcome, details); return })
		return op, err
	}
	first, err := record(compliance.OpBackup, compliance.OutcomeSuccess, map[string]any{"sha256": "aa", "bytes": 10})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	second, err := record(compliance.OpBackup, compliance.OutcomeFailure, map[string]any{"error": "disk full"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record(compliance.OpAuditVerify, compliance.OutcomeSuccess, nil); err != nil {
		t.Fatal(err)
	}
	got := view(compliance.OpBackup)
	if got == nil || got.ID != second.ID || got.Outcome != compliance.OutcomeFailure || got.Details["error"] != "disk full" ||
		!got.RecordedAt.Equal(clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("latest backup = %+v, want the second (%s)", got, second.ID)
	}
	if v := view(compliance.OpAuditVerify); v == nil || v.Kind != compliance.OpAuditVerify {
		t.Fatalf("latest verification = %+v", v)
	}
	// Each is audited, with its outcome.
	for _, want := range []struct {
		id, outcome string
	}{{first.ID, "success"}, {second.ID, "failure"}} {
		recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TargetType: "compliance_evidence", TargetID: want.id, Limit: 10})
		if err != nil || len(recs) != 1 || recs[0].Event.Action != "compliance.backup_created" || recs[0].Event.Outcome != want.outcome {
			t.Fatalf("audit of %s: %+v, %v", want.id, recs, err)
		}
	}
	// Bad input changes nothing.
	before := countRows(t, db, "compliance_evidence")
	for _, bad := range []struct{ kind, outcome string }{{"coffee_break", compliance.OutcomeSuccess}, {compliance.OpBackup, "maybe"}} {
		_, err := record(bad.kind, bad.outcome, nil)
		mustCode(t, err, tutela.EINVALID)
	}
	big := map[string]any{"x": string(make([]byte, 5000))}
	_, err = record(compliance.OpRestoreTest, compliance.OutcomeSuccess, big)
	mustCode(t, err, tutela.EINVALID)
	if n := countRows(t, db, "compliance_evidence"); n != before {
		t.Fatalf("refused operations wrote rows: %d, want %d", n, before)
	}
}

func complianceState(t *testing.T, db *sqlstore.DB, tenants ...*tutela.Tenant) compliance.State {
	t.Helper()
	var st compliance.State
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { st, err = tx.ComplianceState(ctx, tenants); return }); err != nil {
		t.Fatal(err)
	}
	return st
}

func testComplianceScope(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	db.SetVault(v)
	a, b := createTenant(t, db, "comp-a"), createTenant(t, db, "comp-b")
	ua, ub := createUser(t, db, a.ID, "ann@a.example"), createUser(t, db, b.ID, "bob@b.example")
	arGrantRole(t, db, a.ID, ua.ID, authz.RoleOperator, nil)
	arGrantRole(t, db, b.ID, ub.ID, authz.RoleAuditor, nil)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, b.ID, &sqlstore.Role{Key: "b_secret_role", Name: "B only", Clearance: authz.Green})
	})

	st := complianceState(t, db, a)
	if len(st.Tenants) != 1 || st.Tenants[0].Slug != "comp-a" {
		t.Fatalf("tenants = %+v, want comp-a only", st.Tenants)
	}
	for _, k := range st.Keysets {
		if k.TenantSlug != "" && k.TenantSlug != "comp-a" {
			t.Errorf("keyset of %s in comp-a's state", k.TenantSlug)
		}
	}
	if !slices.ContainsFunc(st.Keysets, func(k compliance.Keyset) bool { return k.TenantSlug == "comp-a" }) {
		t.Errorf("comp-a's own keysets are missing: %+v", st.Keysets)
	}
	for _, r := range st.Tenants[0].Roles {
		if r.Key == "b_secret_role" {
			t.Errorf("another tenant's custom role appears: %+v", r)
		}
		if r.Key == authz.RoleAuditor && r.Holders != 0 {
			t.Errorf("another tenant's auditor counted: %+v", r)
		}
	}
	both := complianceState(t, db, a, b)
	if len(both.Tenants) != 2 || !slices.ContainsFunc(both.Keysets, func(k compliance.Keyset) bool { return k.TenantSlug == "comp-b" }) {
		t.Fatalf("platform scope lacks comp-b: %d tenants", len(both.Tenants))
	}
}

func testComplianceCounts(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	a := createTenant(t, db, "comp-c")
	ann, bea, cy := createUser(t, db, a.ID, "ann@c.example"), createUser(t, db, a.ID, "bea@c.example"), createUser(t, db, a.ID, "cy@c.example")
	arGrantRole(t, db, a.ID, ann.ID, authz.RoleOperator, nil)
	arGrantRole(t, db, a.ID, bea.ID, authz.RoleOperator, nil)
	soon := clock.Now().Add(time.Hour)
	arGrantRole(t, db, a.ID, cy.ID, authz.RoleProgramAdmin, &soon)
	// bea has an active passkey-less TOTP factor; recovery codes alone (ann) do not count.
	update(t, db, func(tx *sqlstore.Tx) error {
		f := &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: bea.ID, Name: "phone"}
		if err := tx.MFA(a.ID).CreateTOTP(ctx, f, []byte("sealed")); err != nil {
			return err
		}
		if _, err := tx.MFA(a.ID).UseTOTPStep(ctx, bea.ID, f.ID, 1, true); err != nil {
			return err
		}
		_, err := tx.MFA(a.ID).ReplaceRecoveryCodes(ctx, ann.ID, [][]byte{[]byte("h1")})
		return err
	})
	sum := sha256.Sum256([]byte("secret"))
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(ctx, &sqlstore.ServiceAccount{TenantID: a.ID, Name: "etl"}, sum[:])
	})
	roles := func() map[string]compliance.RoleCoverage {
		out := map[string]compliance.RoleCoverage{}
		for _, r := range complianceState(t, db, a).Tenants[0].Roles {
			out[r.Key] = r
		}
		return out
	}
	r := roles()
	if got := r[authz.RoleOperator]; got.Holders != 2 || got.WithoutFactor != 1 {
		t.Errorf("operator = %+v, want 2 holders, 1 without a factor", got)
	}
	if got := r[authz.RoleProgramAdmin]; got.Holders != 1 || got.WithoutFactor != 1 {
		t.Errorf("program_admin = %+v, want 1 holder without a factor", got)
	}
	st := complianceState(t, db, a)
	if sas := st.Tenants[0].ServiceAccounts; len(sas) != 1 || sas[0].Name != "etl" || sas[0].ActiveSecrets != 1 || sas[0].Keys != 0 {
		t.Errorf("service accounts = %+v, want etl with one secret", sas)
	}
	// An expired grant is no longer a holder; a disabled user neither.
	clock.Add(2 * time.Hour)
	update(t, db, func(tx *sqlstore.Tx) error {
		u, err := tx.Users(a.ID).Get(ctx, ann.ID)
		if err != nil {
			return err
		}
		u.Status = tutela.StatusDisabled
		return tx.Users(a.ID).Update(ctx, u)
	})
	r = roles()
	if got := r[authz.RoleProgramAdmin]; got.Holders != 0 {
		t.Errorf("expired grant still counted: %+v", got)
	}
	if got := r[authz.RoleOperator]; got.Holders != 1 || got.WithoutFactor != 0 {
		t.Errorf("operator after disabling ann = %+v, want bea only, with her factor", got)
	}
}
