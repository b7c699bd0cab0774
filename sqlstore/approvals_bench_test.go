package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// benchApprovals is a tenant with a requester, an approver and n pending requests, none due.
func benchApprovals(b *testing.B, d sqlstore.Dialect, n int) (*sqlstore.DB, string, string, string) {
	ctx := context.Background()
	db := sqltest.Open(b, d, sqlstore.Options{})
	var tenantID, requester, approver string
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		r := &tutela.User{Email: "r@bench.example", DisplayName: "R"}
		p := &tutela.User{Email: "p@bench.example", DisplayName: "P"}
		for _, u := range []*tutela.User{r, p} {
			if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
				return err
			}
		}
		tenantID, requester, approver = tn.ID, r.ID, p.ID
		return tx.Users(tn.ID).Grant(ctx, p.ID, authz.RoleProgramAdmin, "", nil)
	}); err != nil {
		b.Fatal(err)
	}
	pol := approvals.Policy{Action: approvals.ActionRoleGrant, Enabled: true, ApproverRoles: []string{authz.RoleProgramAdmin},
		Required: 1, TTL: 30 * 24 * time.Hour}
	for i := range n {
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Approvals(tenantID).Create(ctx, benchRequest(requester, i), pol)
		}); err != nil {
			b.Fatal(err)
		}
	}
	return db, tenantID, requester, approver
}

func benchRequest(requester string, i int) *approvals.Request {
	return &approvals.Request{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: fmt.Sprint("u-", i),
		Params: []byte(`{"role":"auditor"}`), Justification: "bench", RequestedBy: requester, RequesterKind: tutela.PrincipalUser}
}

// BenchmarkSweepApprovals_NothingDue is what every node pays each minute when nothing is due,
// with 2,000 open requests: two indexed range scans that find nothing.
func BenchmarkSweepApprovals_NothingDue(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db, _, _, _ := benchApprovals(b, d, 2000)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					sw, err := tx.SweepApprovals(ctx)
					if err == nil && (len(sw.Expired) > 0 || len(sw.Reminders) > 0) {
						err = fmt.Errorf("swept %+v", sw)
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApprovalLifecycle is one request's whole life as the store sees it: made (with its
// MAC), approved (MAC checked, people compared, roles read), executed once (MAC checked
// twice), each in its own transaction as the API runs them.
func BenchmarkApprovalLifecycle(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db, tenantID, requester, approver := benchApprovals(b, d, 0)
			ctx := context.Background()
			pol := approvals.Policy{Action: approvals.ActionRoleGrant, Enabled: true, ApproverRoles: []string{authz.RoleProgramAdmin},
				Required: 1, TTL: time.Hour}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := benchRequest(requester, i)
				i++
				err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Approvals(tenantID).Create(ctx, r, pol) })
				if err == nil {
					err = db.Update(ctx, func(tx *sqlstore.Tx) error {
						_, err := tx.Approvals(tenantID).Decide(ctx, r.ID, sqlstore.Decision{UserID: approver, Verdict: approvals.Approve, Comment: "ok"})
						return err
					})
				}
				if err == nil {
					err = db.Update(ctx, func(tx *sqlstore.Tx) error {
						_, err := tx.Approvals(tenantID).Execute(ctx, r.ID, sqlstore.Execution{Kind: tutela.PrincipalUser, PrincipalID: requester,
							Action: r.Action, TargetType: r.TargetType, TargetID: r.TargetID, Params: r.Params})
						return err
					})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
