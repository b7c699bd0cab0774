package dsr_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/dsr"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

var ctx = context.Background()

// env is a store of one dialect with its clock and vault, and the executor over its keys.
type env struct {
	db    *sqlstore.DB
	clock *clocktest.Clock
	vault *vault.Vault
	seal  privacy.Subjects
	exec  dsr.Executor
	pol   privacy.DSRPolicy
	n     int // tenants made, for unique slugs
}

func newEnv(t *testing.T, d sqlstore.Dialect) *env {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	v := sqltest.AttachVaultAt(t, db, clock.Now)
	s := privacy.NewSubjects(v)
	return &env{db: db, clock: clock, vault: v, seal: s, exec: dsr.Executor{Keys: s.Keys}, pol: privacy.DefaultDSRPolicy()}
}

func eachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, newEnv(t, d)) })
	}
}

func (e *env) update(t *testing.T, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := e.db.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

var schema = privacy.Schema{
	{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"case_management"},
		RetentionDays: 365, Mask: authz.MaskPartial, Searchable: true},
	{Name: "date_of_birth", Type: privacy.FieldDate, Classification: authz.Yellow, Purposes: []string{"case_management"},
		RetentionDays: 365, Mask: authz.MaskRedacted},
	{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red, Purposes: []string{"case_management"},
		RetentionDays: 3650, Mask: authz.MaskHashed, Searchable: true},
	{Name: "notes", Type: privacy.FieldText, Classification: authz.Red, Purposes: []string{"case_management"},
		RetentionDays: 90, Mask: authz.MaskHidden},
}

// tenant makes a tenant with the schema, a consent purpose and an objectable one, and its
// caseworker (operator) and approver (program_admin).
type tenant struct {
	*tutela.Tenant
	worker, approver *tutela.User
}

func (e *env) tenant(t *testing.T) *tenant {
	t.Helper()
	e.n++
	tn := &tutela.Tenant{Slug: fmt.Sprintf("t%d-%d", e.n, time.Now().UnixNano()%100000), Name: "Tenant", Region: "eu-west"}
	e.update(t, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
	e.update(t, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(tn.ID).Put(ctx, schema) })
	e.update(t, func(tx *sqlstore.Tx) error {
		c := tx.Consent(tn.ID)
		if _, err := c.PutPurpose(ctx, &privacy.Purpose{Name: "newsletter", Description: "news", LawfulBasis: privacy.BasisConsent,
			NoticeID: "notice", NoticeVersion: 1, ConsentMinVersion: 1}); err != nil {
			return err
		}
		_, err := c.PutPurpose(ctx, &privacy.Purpose{Name: "fraud_prevention", Description: "fraud", LawfulBasis: privacy.BasisLegitimateInterests})
		return err
	})
	out := &tenant{Tenant: tn}
	out.worker = e.user(t, tn.ID, fmt.Sprintf("worker%d@example.org", e.n), "operator")
	out.approver = e.user(t, tn.ID, fmt.Sprintf("approver%d@example.org", e.n), "program_admin")
	return out
}

func (e *env) user(t *testing.T, tenantID, email, role string) *tutela.User {
	t.Helper()
	u := &tutela.User{Email: email, DisplayName: "User"}
	e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Create(ctx, u) })
	e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Grant(ctx, u.ID, role, "", nil) })
	return u
}

func as(u *tutela.User) context.Context {
	return tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "req", Principal: &tutela.Principal{
		Kind: tutela.PrincipalUser, TenantID: u.TenantID, UserID: u.ID}})
}

func (e *env) subject(t *testing.T, tenantID string, values map[string]string) string {
	t.Helper()
	sealed, err := e.seal.SealNew(ctx, tenantID, schema, values)
	if err != nil {
		t.Fatal(err)
	}
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tenantID).Create(ctx, sealed)
		return err
	})
	return sealed.SubjectID
}

func (e *env) personKey(t *testing.T, tenantID, subject string) *privacy.PersonKey {
	t.Helper()
	var wrapped []byte
	e.update(t, func(tx *sqlstore.Tx) (err error) {
		wrapped, err = tx.PersonKeys(tenantID).Get(ctx, subject)
		return err
	})
	pk, err := e.seal.Keys.Open(ctx, tenantID, subject, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func (e *env) newDSR(t *testing.T, tn *tenant, subject string, kind privacy.DSRKind, purpose, text string) *sqlstore.DSR {
	t.Helper()
	n := &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: subject, Kind: kind, Purpose: purpose}
	if text != "" {
		var err error
		if n.TextSealed, err = e.personKey(t, tn.ID, subject).Seal(privacy.DSRTextField(n.ID), []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	var d *sqlstore.DSR
	e.update(t, func(tx *sqlstore.Tx) (err error) {
		d, err = tx.DSRs(tn.ID).Create(as(tn.worker), n, e.pol)
		return err
	})
	return d
}

// complete takes a request through every step to its execution.
func (e *env) complete(t *testing.T, tn *tenant, id string) *dsr.Result {
	t.Helper()
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(tn.ID).Verify(as(tn.worker), id, privacy.VerificationVerified, "document_copy")
		return err
	})
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(tn.ID).Assign(as(tn.worker), id, tn.worker.ID, tn.approver.ID)
		return err
	})
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(tn.ID).Submit(as(tn.worker), id, tn.worker.ID, nil)
		return err
	})
	var res *dsr.Result
	e.update(t, func(tx *sqlstore.Tx) (err error) {
		res, err = e.exec.Approve(as(tn.approver), tx, tn.ID, id, tn.approver.ID)
		return err
	})
	return res
}
