package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The approval tables (migration 00029) carry row-level security: a runtime role scoped to
// tenant A sees none of B's policies, requests or decisions, even with a query that forgets
// the tenant.
func TestRLS_ApprovalTablesSeeOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	var a string
	for _, slug := range []string{"a", "b"} {
		var tenantID, requester, approver string
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			tenantID = tn.ID
			r := &tutela.User{Email: "r@" + slug + ".example", DisplayName: "R"}
			p := &tutela.User{Email: "p@" + slug + ".example", DisplayName: "P"}
			for _, u := range []*tutela.User{r, p} {
				if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
					return err
				}
			}
			requester, approver = r.ID, p.ID
			pol := approvals.Policy{Action: approvals.ActionRoleGrant, Enabled: true, ApproverRoles: []string{authz.RoleProgramAdmin},
				Required: 1, TTL: time.Hour}
			if err := tx.Approvals(tn.ID).SetPolicy(ctx, &pol, "x"); err != nil {
				return err
			}
			return tx.Users(tn.ID).Grant(ctx, p.ID, authz.RoleProgramAdmin, "", nil)
		}); err != nil {
			t.Fatal(err)
		}
		if slug == "a" {
			a = tenantID
		}
		// A new keyset is made outside the transaction that needs it (Update retries).
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			req := &approvals.Request{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: approver,
				Params: []byte(`{}`), Justification: "x", RequestedBy: requester, RequesterKind: tutela.PrincipalUser}
			pol, err := tx.Approvals(tenantID).Policy(ctx, approvals.ActionRoleGrant)
			if err != nil {
				return err
			}
			if err := tx.Approvals(tenantID).Create(ctx, req, pol); err != nil {
				return err
			}
			_, err = tx.Approvals(tenantID).Decide(ctx, req.ID, sqlstore.Decision{UserID: approver, Verdict: approvals.Approve, Comment: "ok"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	tables := []string{"approval_policies", "approval_requests", "approval_decisions"}
	wantOneRowPerTenant(t, db, dsn, a, tables...)
}
