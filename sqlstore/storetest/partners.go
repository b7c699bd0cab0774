package storetest

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"tutela/approvals"

	"tutela"
	"tutela/authz"
	"tutela/partners"
	"tutela/sqlstore"
)

// PartnerTests is the partner part of the suite (issue 18): partner organisations, their users
// and service accounts held to what the partner role gives, the shares that disclose subjects to
// a partner, and the partner scope every subject loader honours (isolation, purpose, expiry,
// revocation, the partner's status).
var PartnerTests = []Test{
	{"PartnerCRUDAndTenantIsolation", testPartnerCRUD},
	{"PartnerScopeSeesOnlyActiveSharesOfItsPartner", testPartnerScope},
	{"PartnerScopeSharesExpireOnTheTransactionClock", testPartnerScopeExpiry},
	{"PartnerShareCreateChecksEverythingAndStoresNothingOnRefusal", testShareCreateChecks},
	{"PartnerShareRevokeAndListsScopedToTenant", testShareRevoke},
	{"PartnerShareConcurrentRevocationsOneWins", testShareRevokeRace},
	{"PartnerSharesPerSubjectCapped", testShareCap},
	{"PartnerUserHoldsOnlyThePartnerRole", testPartnerUserRoles},
	{"PartnerServiceAccountHoldsOnlyReferrals", testPartnerServiceAccount},
	{"SubjectErasureClearsShareAndApprovalTexts", testPartnerSubjectErasureClearsTexts},
}

// partnerKit is a consent kit (purposes outreach on consent, case_management on contract,
// research on legitimate interests) with a second tenant and a partner in each.
type partnerKit struct {
	*consentKit
	other          *tutela.Tenant
	partner, rival string // partners of k.tenant
	foreign        string // a partner of other
}

func newPartnerKit(t *testing.T, open Opener, slug string) *partnerKit {
	t.Helper()
	k := &partnerKit{consentKit: newConsentKit(t, open, slug)}
	k.other = k.addTenant(t, slug+"-other")
	k.declare(t, k.other.ID)
	k.partner = k.newPartner(t, k.tenant.ID, "Shelter")
	k.rival = k.newPartner(t, k.tenant.ID, "Clinic")
	k.foreign = k.newPartner(t, k.other.ID, "Shelter")
	return k
}

func (k *partnerKit) newPartner(t *testing.T, tenantID, name string) string {
	t.Helper()
	p := &partners.Partner{Name: name, RedirectURLs: []string{"https://partner.example/in"}}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Partners(tenantID).Create(ctx, p) })
	return p.ID
}

func (k *partnerKit) share(t *testing.T, tenantID, partnerID, subjectID, purpose string, ttl time.Duration) *partners.Share {
	t.Helper()
	sh := &partners.Share{PartnerID: partnerID, SubjectID: subjectID, Purpose: purpose, ExpiresAt: k.clock.Now().Add(ttl),
		Justification: "Referred for housing", CreatedBy: "tester"}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Shares(tenantID).Create(ctx, sh) })
	return sh
}

// as runs fn in a transaction acting for partnerIDs (none: the tenant's own people).
func (k *partnerKit) as(partnerIDs []string, fn func(tx *sqlstore.Tx) error) error {
	return k.db.View(ctx, func(tx *sqlstore.Tx) error {
		for _, p := range partnerIDs {
			tx.ActForPartner(p)
		}
		return fn(tx)
	})
}

// sees reports what a transaction acting for partnerIDs sees of subjectID: through Get, the
// by-ID loader (holds), List, and Consent.Check for purpose. Each must agree.
func (k *partnerKit) sees(t *testing.T, subjectID, purpose string, partnerIDs ...string) bool {
	t.Helper()
	var get, held, listed, checked bool
	err := k.as(partnerIDs, func(tx *sqlstore.Tx) error {
		s := tx.Subjects(k.tenant.ID)
		_, err := s.Get(ctx, subjectID)
		get = err == nil
		if err != nil {
			mustCode(t, err, tutela.ENOTFOUND)
		}
		_, err = s.ActiveHolds(ctx, subjectID)
		held = err == nil
		list, err := s.List(ctx, "", 100)
		if err != nil {
			return err
		}
		listed = slices.ContainsFunc(list, func(x *sqlstore.Subject) bool { return x.ID == subjectID })
		err = tx.Consent(k.tenant.ID).Check(ctx, subjectID, purpose)
		checked = err == nil
		if err != nil && len(partnerIDs) > 0 {
			mustCode(t, err, tutela.ENOTFOUND)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if get != held || get != listed {
		t.Fatalf("loaders disagree on %s: get %v, holds %v, list %v", subjectID, get, held, listed)
	}
	return get && checked
}

func testPartnerCRUD(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-crud")
	var p *partners.Partner
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { p, err = tx.Partners(k.tenant.ID).Get(ctx, k.partner); return err })
	if p.Name != "Shelter" || p.Status != partners.StatusActive || len(p.RedirectURLs) != 1 || p.TenantID != k.tenant.ID {
		t.Fatalf("partner: %+v", p)
	}
	// Names are unique per tenant, not across tenants (k.foreign is another "Shelter").
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Partners(k.tenant.ID).Create(ctx, &partners.Partner{Name: "Shelter"})
	})
	mustCode(t, err, tutela.ECONFLICT)
	for _, bad := range []string{"http://partner.example/", "https://user@partner.example/", "https://Partner.example/", "https://p.example/#f"} {
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Partners(k.tenant.ID).Create(ctx, &partners.Partner{Name: "Bad", RedirectURLs: []string{bad}})
		})
		mustCode(t, err, tutela.EINVALID)
	}
	// Another tenant's partner is not found, to read or to change.
	err = k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Partners(k.other.ID).Get(ctx, k.partner); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	off := partners.StatusDisabled
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(k.other.ID).Update(ctx, k.partner, sqlstore.PartnerUpdate{Status: &off})
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
	urls := []string{"https://partner.example/in", "https://partner.example/out"}
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		p, err = tx.Partners(k.tenant.ID).Update(ctx, k.partner, sqlstore.PartnerUpdate{Status: &off, RedirectURLs: &urls})
		return err
	})
	if p.Status != off || len(p.RedirectURLs) != 2 {
		t.Fatalf("updated: %+v", p)
	}
	var list []partners.Partner
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Partners(k.tenant.ID).List(ctx); return err })
	if len(list) != 2 || list[0].Name != "Clinic" || list[1].Status != off {
		t.Fatalf("list: %+v", list)
	}
}

func testPartnerScope(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-scope")
	s1, s2 := k.subject(t, k.tenant.ID), k.subject(t, k.tenant.ID)
	if !k.sees(t, s1, "case_management") {
		t.Fatal("the tenant's own transaction must see its subject")
	}
	if k.sees(t, s1, "case_management", k.partner) {
		t.Fatal("a partner sees an unshared subject")
	}
	sh := k.share(t, k.tenant.ID, k.partner, s1, "case_management", time.Hour)
	switch {
	case !k.sees(t, s1, "case_management", k.partner):
		t.Fatal("the partner does not see its shared subject")
	case k.sees(t, s1, "research", k.partner):
		t.Fatal("the partner processes the subject for another purpose than the share's")
	case k.sees(t, s2, "case_management", k.partner):
		t.Fatal("the partner sees an unshared subject")
	case k.sees(t, s1, "case_management", k.rival):
		t.Fatal("another partner sees the share")
	case k.sees(t, s1, "case_management", k.partner, k.rival):
		t.Fatal("a transaction acting for two partners must see nothing")
	case k.sees(t, s1, "case_management", "not-an-id"):
		t.Fatal("a malformed partner scope must see nothing")
	}
	// A partner never sees another tenant's subjects, whatever the share's partner ID.
	if err := k.as([]string{k.partner}, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.other.ID).Get(ctx, s1)
		return err
	}); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("other tenant: %v", err)
	}
	// Holds and the consent history are not disclosed by a share, files neither.
	for name, fn := range map[string]func(tx *sqlstore.Tx) error{
		"holds":   func(tx *sqlstore.Tx) error { _, err := tx.Subjects(k.tenant.ID).Holds(ctx, s1); return err },
		"consent": func(tx *sqlstore.Tx) error { _, err := tx.Consent(k.tenant.ID).History(ctx, s1); return err },
		"file":    func(tx *sqlstore.Tx) error { _, err := tx.Files(k.tenant.ID).Get(ctx, tutela.NewID()); return err },
	} {
		if err := k.as([]string{k.partner}, fn); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := k.as([]string{k.partner}, func(tx *sqlstore.Tx) error {
		list, _, err := tx.Files(k.tenant.ID).List(ctx, sqlstore.FileQuery{SubjectID: s1})
		if err == nil && len(list) != 0 {
			t.Fatalf("partner lists files %v", list)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A disabled partner sees nothing; enabled again, its share is back.
	setStatus := func(st partners.Status) {
		update(t, k.db, func(tx *sqlstore.Tx) error {
			_, err := tx.Partners(k.tenant.ID).Update(ctx, k.partner, sqlstore.PartnerUpdate{Status: &st})
			return err
		})
	}
	setStatus(partners.StatusDisabled)
	if k.sees(t, s1, "case_management", k.partner) {
		t.Fatal("a disabled partner sees its share")
	}
	setStatus(partners.StatusActive)
	if !k.sees(t, s1, "case_management", k.partner) {
		t.Fatal("re-enabled partner")
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Shares(k.tenant.ID).Revoke(ctx, s1, sh.ID, "tester", "Case closed")
		return err
	})
	if k.sees(t, s1, "case_management", k.partner) {
		t.Fatal("a revoked share still discloses")
	}
}

func testPartnerScopeExpiry(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-exp")
	s := k.subject(t, k.tenant.ID)
	k.share(t, k.tenant.ID, k.partner, s, "case_management", time.Hour)
	k.clock.Add(time.Hour - time.Microsecond)
	if !k.sees(t, s, "case_management", k.partner) {
		t.Fatal("a share hides before its expiry")
	}
	k.clock.Add(time.Microsecond)
	if k.sees(t, s, "case_management", k.partner) {
		t.Fatal("a share discloses at its expiry")
	}
	var list []partners.Share
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Shares(k.tenant.ID).ForSubject(ctx, s); return err })
	if len(list) != 1 || list[0].Active(k.clock.Now()) {
		t.Fatalf("an expired share stays on record, inactive: %+v", list)
	}
}

func (k *partnerKit) countShares(t *testing.T) int {
	t.Helper()
	var n int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM partner_shares`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testShareCreateChecks(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-create")
	s := k.subject(t, k.tenant.ID)
	erased := k.subject(t, k.tenant.ID)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).Erase(ctx, erased, "request", "gdpr_art_17", sqlstore.ErasureRequest)
		return err
	})
	foreignSubject := k.subject(t, k.other.ID)
	off := k.newPartner(t, k.tenant.ID, "Closed")
	update(t, k.db, func(tx *sqlstore.Tx) error {
		st := partners.StatusDisabled
		_, err := tx.Partners(k.tenant.ID).Update(ctx, off, sqlstore.PartnerUpdate{Status: &st})
		return err
	})
	now := k.clock.Now()
	ok := func() partners.Share {
		return partners.Share{PartnerID: k.partner, SubjectID: s, Purpose: "case_management", ExpiresAt: now.Add(time.Hour), Justification: "why"}
	}
	for _, c := range []struct {
		name   string
		change func(*partners.Share)
		code   string
	}{
		{"past expiry", func(sh *partners.Share) { sh.ExpiresAt = now.Add(-time.Second) }, tutela.EINVALID},
		{"expiry now", func(sh *partners.Share) { sh.ExpiresAt = now }, tutela.EINVALID},
		{"beyond a year", func(sh *partners.Share) { sh.ExpiresAt = now.AddDate(1, 0, 0).Add(time.Second) }, tutela.EINVALID},
		{"blank justification", func(sh *partners.Share) { sh.Justification = "  " }, tutela.EINVALID},
		{"NUL in justification", func(sh *partners.Share) { sh.Justification = "a\x00b" }, tutela.EINVALID},
		{"undeclared purpose", func(sh *partners.Share) { sh.Purpose = "marketing" }, tutela.EINVALID},
		{"no consent", func(sh *partners.Share) { sh.Purpose = "outreach" }, tutela.ECONSENTREQUIRED},
		{"disabled partner", func(sh *partners.Share) { sh.PartnerID = off }, tutela.ECONFLICT},
		{"another tenant's partner", func(sh *partners.Share) { sh.PartnerID = k.foreign }, tutela.ENOTFOUND},
		{"another tenant's subject", func(sh *partners.Share) { sh.SubjectID = foreignSubject }, tutela.ENOTFOUND},
		{"erased subject", func(sh *partners.Share) { sh.SubjectID = erased }, tutela.ENOTFOUND},
		{"missing subject", func(sh *partners.Share) { sh.SubjectID = tutela.NewID() }, tutela.ENOTFOUND},
	} {
		sh := ok()
		c.change(&sh)
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Shares(k.tenant.ID).Create(ctx, &sh) })
		if tutela.ErrorCode(err) != c.code {
			t.Fatalf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	if n := k.countShares(t); n != 0 {
		t.Fatalf("refusals stored %d shares", n)
	}
	// With consent, the consent purpose may be shared; a year exactly is allowed.
	if err := k.record(k.tenant.ID, grant(s, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	sh := ok()
	sh.Purpose, sh.ExpiresAt = "outreach", now.AddDate(1, 0, 0)
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Shares(k.tenant.ID).Create(ctx, &sh) })
	if sh.ID == "" || sh.TenantID != k.tenant.ID || sh.CreatedAt.IsZero() {
		t.Fatalf("share: %+v", sh)
	}
	// A tenant in simulation shares nothing.
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, k.tenant.ID); err != nil {
		t.Fatal(err)
	}
	again := ok()
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Shares(k.tenant.ID).Create(ctx, &again) })
	if tutela.ErrorCode(err) != tutela.ECONFLICT || tutela.ErrorMessage(err) != "a tenant in simulation shares nothing with partners" {
		t.Fatalf("simulation: %v", err)
	}
	if n := k.countShares(t); n != 1 {
		t.Fatalf("%d shares, want 1", n)
	}
}

func testShareRevoke(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-revoke")
	s1, s2 := k.subject(t, k.tenant.ID), k.subject(t, k.tenant.ID)
	a := k.share(t, k.tenant.ID, k.partner, s1, "case_management", time.Hour)
	k.share(t, k.tenant.ID, k.rival, s1, "research", time.Hour)
	k.share(t, k.tenant.ID, k.partner, s2, "case_management", time.Hour)
	revoke := func(tenantID, subjectID, id, why string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Shares(tenantID).Revoke(ctx, subjectID, id, "tester", why)
			return err
		})
	}
	mustCode(t, revoke(k.other.ID, s1, a.ID, "why"), tutela.ENOTFOUND)
	mustCode(t, revoke(k.tenant.ID, s2, a.ID, "why"), tutela.ENOTFOUND) // the share is s1's
	mustCode(t, revoke(k.tenant.ID, s1, a.ID, ""), tutela.EINVALID)
	mustCode(t, revoke(k.tenant.ID, s1, "not-an-id", "why"), tutela.ENOTFOUND)
	if err := revoke(k.tenant.ID, s1, a.ID, "Case closed"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, revoke(k.tenant.ID, s1, a.ID, "again"), tutela.ECONFLICT)

	var bySubject, byPartner, foreign []partners.Share
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if bySubject, err = tx.Shares(k.tenant.ID).ForSubject(ctx, s1); err != nil {
			return err
		}
		if byPartner, err = tx.Shares(k.tenant.ID).ForPartner(ctx, k.partner); err != nil {
			return err
		}
		foreign, err = tx.Shares(k.other.ID).ForPartner(ctx, k.foreign)
		return err
	})
	if len(bySubject) != 2 || len(byPartner) != 2 || len(foreign) != 0 {
		t.Fatalf("lists: subject %d, partner %d, other tenant %d", len(bySubject), len(byPartner), len(foreign))
	}
	for _, sh := range bySubject {
		if sh.ID == a.ID && (sh.RevokedAt == nil || sh.RevokedBy != "tester" || sh.Active(k.clock.Now())) {
			t.Fatalf("revoked share: %+v", sh)
		}
	}
	err := k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Shares(k.other.ID).ForPartner(ctx, k.partner); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Shares(k.other.ID).ForSubject(ctx, s1); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Shares(k.other.ID).Get(ctx, a.ID); return err })
	mustCode(t, err, tutela.ENOTFOUND)
}

func testPartnerUserRoles(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-users")
	u := &tutela.User{Email: "worker@shelter.example", DisplayName: "Worker"}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Users(k.tenant.ID).CreatePartnerUser(ctx, u, k.partner, "") })
	staff := createUser(t, k.db, k.tenant.ID, "staff@example.org")
	grant := func(userID, role string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(k.tenant.ID).Grant(ctx, userID, role, "", nil) })
	}
	for _, role := range []string{authz.RoleProgramAdmin, authz.RoleOperator, authz.RoleAuditor, authz.RoleSuperAdmin} {
		mustCode(t, grant(u.ID, role), tutela.EFORBIDDEN)
	}
	mustCode(t, grant(staff.ID, authz.RolePartner), tutela.EFORBIDDEN)
	permit := func(eff authz.Effect) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(k.tenant.ID).GrantPermission(ctx, u.ID, &sqlstore.UserPermission{
				Permission: authz.Permission{Resource: authz.ResUsers, Action: authz.Read}, Effect: eff})
		})
	}
	mustCode(t, permit(authz.Allow), tutela.EFORBIDDEN)
	if err := permit(authz.Deny); err != nil {
		t.Fatalf("a deny only takes away: %v", err)
	}
	// A disabled partner gets no new users; another tenant's partner is not found.
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Users(k.other.ID).CreatePartnerUser(ctx, &tutela.User{Email: "x@y.example", DisplayName: "X"}, k.partner, "")
	})
	mustCode(t, err, tutela.ENOTFOUND)

	// Rows written behind the store's back give nothing: the policy is the partner role's.
	if _, err := k.db.SQL().ExecContext(ctx, `INSERT INTO user_roles (tenant_id, user_id, role_id, granted_at)
		SELECT $1, $2, id, $3 FROM roles WHERE key = 'program_admin' AND tenant_id IS NULL`, k.tenant.ID, u.ID, k.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var pol *authz.Policy
	var listed []*tutela.User
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if pol, err = tx.Policy(ctx, k.tenant.ID, u.ID); err != nil {
			return err
		}
		listed, err = tx.Users(k.tenant.ID).ListByPartner(ctx, k.partner)
		return err
	})
	if pol.Partner != k.partner || !slices.Equal(pol.Roles, []string{authz.RolePartner}) || pol.Clearance != authz.Green {
		t.Fatalf("policy: partner %q roles %v clearance %s", pol.Partner, pol.Roles, pol.Clearance)
	}
	def, _ := authz.Builtin(authz.RolePartner)
	for _, g := range pol.Grants {
		if g.Effect == authz.Allow && !slices.Contains(def.Permissions, g.Permission) {
			t.Fatalf("partner user holds %s", g.Permission)
		}
	}
	if len(listed) != 1 || listed[0].ID != u.ID || listed[0].Email != "worker@shelter.example" {
		t.Fatalf("partner's users: %+v", listed)
	}
}

func testPartnerServiceAccount(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-sa")
	sa := &sqlstore.ServiceAccount{TenantID: k.tenant.ID, Name: "confirm", PartnerID: k.partner, Clearance: authz.Red,
		Permissions: []authz.Permission{{Resource: authz.ResSubjects, Action: authz.Read}}}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("hash")) })
	var got *sqlstore.ServiceAccount
	var pol *authz.Policy
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if got, err = tx.ServiceAccount(ctx, k.tenant.ID, sa.ID); err != nil {
			return err
		}
		pol, err = tx.ServiceAccountPolicy(ctx, k.tenant.ID, sa.ID)
		return err
	})
	want := sqlstore.PartnerServiceAccountPermissions
	if got.PartnerID != k.partner || got.Clearance != authz.Green || len(got.Permissions) != len(want) {
		t.Fatalf("partner account: %+v", got)
	}
	for _, p := range got.Permissions {
		if !slices.Contains(want, p) {
			t.Fatalf("partner account holds %s", p)
		}
	}
	if pol.Partner != k.partner || pol.Clearance != authz.Green || len(pol.Grants) != len(want) {
		t.Fatalf("partner account policy: %+v", pol)
	}
	// A permission row added behind the store's back gives nothing.
	if _, err := k.db.SQL().ExecContext(ctx, `INSERT INTO service_account_permissions (service_account_id, permission_id)
		SELECT $1, id FROM permissions WHERE resource_type = 'subjects' AND action = 'READ' LIMIT 1`, sa.ID); err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		pol, err = tx.ServiceAccountPolicy(ctx, k.tenant.ID, sa.ID)
		return err
	})
	if len(pol.Grants) != len(want) {
		t.Fatalf("partner account policy after a forged row: %+v", pol.Grants)
	}
	// Another tenant's partner, or a disabled one, gets no account.
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(ctx, &sqlstore.ServiceAccount{TenantID: k.other.ID, Name: "x", PartnerID: k.partner}, []byte("h"))
	})
	mustCode(t, err, tutela.ENOTFOUND)
	st := partners.StatusDisabled
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(k.tenant.ID).Update(ctx, k.rival, sqlstore.PartnerUpdate{Status: &st})
		return err
	})
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(ctx, &sqlstore.ServiceAccount{TenantID: k.tenant.ID, Name: "y", PartnerID: k.rival}, []byte("h"))
	})
	mustCode(t, err, tutela.ECONFLICT)
}

// Two administrators revoking one share at once: exactly one revocation, one audit event.
func testShareRevokeRace(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-race")
	s := k.subject(t, k.tenant.ID)
	sh := k.share(t, k.tenant.ID, k.partner, s, "case_management", time.Hour)
	const n = 4
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- k.db.Update(ctx, func(tx *sqlstore.Tx) error {
				_, err := tx.Shares(k.tenant.ID).Revoke(ctx, s, sh.ID, "admin-"+strconv.Itoa(i), "Case closed")
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch tutela.ErrorCode(err) {
		case "":
			won++
		case tutela.ECONFLICT:
		default:
			t.Fatalf("revocation: %v", err)
		}
	}
	var events int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE action = 'share.revoked'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if won != 1 || events != 1 {
		t.Fatalf("%d revocations won, %d share.revoked events; want 1 and 1", won, events)
	}
}

// A subject holds at most MaxSharesPerSubject shares, revoked ones included; past it, 409 and
// nothing written. The first ones are written straight to the table (one transaction).
func testShareCap(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "pt-cap")
	s := k.subject(t, k.tenant.ID)
	raw, err := k.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Rollback() }()
	now := k.clock.Now().UTC()
	for range sqlstore.MaxSharesPerSubject - 1 {
		if _, err := raw.ExecContext(ctx, `INSERT INTO partner_shares (id, tenant_id, partner_id, subject_id, purpose, expires_at,
			created_by, created_at, revoked_at, revoked_by, justification) VALUES ($1, $2, $3, $4, 'case_management', $5, '', $6, $6, 'x', 'old')`,
			tutela.NewID(), k.tenant.ID, k.partner, s, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Commit(); err != nil {
		t.Fatal(err)
	}
	k.share(t, k.tenant.ID, k.partner, s, "case_management", time.Hour) // the last one allowed
	sh := &partners.Share{PartnerID: k.partner, SubjectID: s, Purpose: "case_management", ExpiresAt: now.Add(time.Hour), Justification: "why"}
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Shares(k.tenant.ID).Create(ctx, sh) })
	mustCode(t, err, tutela.ECONFLICT)
	if n := k.countShares(t); n != sqlstore.MaxSharesPerSubject {
		t.Fatalf("%d shares, want %d", n, sqlstore.MaxSharesPerSubject)
	}
	var list []partners.Share
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Shares(k.tenant.ID).ForSubject(ctx, s); return err })
	if len(list) != sqlstore.MaxSharesPerSubject {
		t.Fatalf("the subject's listing has %d shares, want all %d", len(list), sqlstore.MaxSharesPerSubject)
	}
}

// Erasing a subject reaches the texts written about them beside their record: their shares'
// justifications (and the shares end), and the justifications and comments of the approval
// requests that target them (an open one is cancelled); another subject's are untouched.
func testPartnerSubjectErasureClearsTexts(t *testing.T, open Opener) {
	k := newPartnerKit(t, open, "acme")
	tn := k.tenant.ID
	subjects := make([]string, 2)
	for i := range subjects {
		subjects[i] = k.consentKit.subject(t, tn)
		if err := k.record(tn, grant(subjects[i], "outreach", 2)); err != nil {
			t.Fatal(err)
		}
	}
	k.db.SetVault(k.vault) // users are sealed by the same vault as the kit's subjects
	requester := createUser(t, k.db, tn, "req@acme.example").ID
	shares := make([]*partners.Share, 2)
	reqs := make([]*approvals.Request, 2)
	for i, s := range subjects {
		shares[i] = k.share(t, tn, k.partner, s, "outreach", 24*time.Hour)
		raw, err := approvals.Canonical(map[string]any{"subject": s, "purpose": "outreach"})
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = &approvals.Request{Action: approvals.ActionSubjectExport, TargetType: "subject", TargetID: s, Params: raw,
			Justification: "Ada asked by phone", RequestedBy: requester, RequesterKind: tutela.PrincipalUser}
		pol := approvals.DefaultPolicy(approvals.ActionSubjectExport)
		update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Approvals(tn).Create(ctx, reqs[i], pol) })
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, subjects[0], "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	var got []*partners.Share
	update(t, k.db, func(tx *sqlstore.Tx) error {
		for _, sh := range shares {
			s, err := tx.Shares(tn).Get(ctx, sh.ID)
			if err != nil {
				return err
			}
			got = append(got, s)
		}
		return nil
	})
	if got[0].Justification != sqlstore.ErasedPlaceholder || got[0].RevokedAt == nil {
		t.Fatalf("the erased subject's share kept its text or stayed live: %+v", got[0])
	}
	if got[1].Justification != "Referred for housing" || got[1].RevokedAt != nil {
		t.Fatalf("another subject's share changed: %+v", got[1])
	}
	for i, want := range []struct {
		justification string
		state         approvals.State
	}{{sqlstore.ErasedPlaceholder, approvals.StateCancelled}, {"Ada asked by phone", approvals.StatePending}} {
		var r *approvals.Request
		update(t, k.db, func(tx *sqlstore.Tx) (err error) { r, err = tx.Approvals(tn).Get(ctx, reqs[i].ID); return err })
		if r.Justification != want.justification || r.State != want.state {
			t.Fatalf("request %d after the erasure: %q %s, want %q %s", i, r.Justification, r.State, want.justification, want.state)
		}
	}
}
