package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// Review 2: audit events' source IP / user agent sealed under a tenant's personal_data keyset
// ("sealed:v1:t:") can never be rewrapped (the log is append-only, its leaves hash the
// ciphertext), so after a rotation they keep the old key outdated: rewrap leaves them and
// reports them stuck, the audit_events source counts them, and retiring (which needs every
// source at 0) is refused; they still open. A user's event (person key) is not counted.
func TestRetirePersonalData_BlockedByAuditEventsUnderOldKey(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqltest.Open(t, d, sqlstore.Options{})
			v := sqltest.AttachVault(t, db)
			tn := &tutela.Tenant{Slug: "rt", Name: "RT", Region: "eu"}
			u := &tutela.User{Email: "rt@example.org", DisplayName: "R T"}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.CreateTenant(ctx, tn); err != nil {
					return err
				}
				return tx.Users(tn.ID).Create(ctx, u)
			}); err != nil {
				t.Fatal(err)
			}
			saCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r2", IP: "198.51.100.9", UserAgent: "RobotUA/1",
				Principal: &tutela.Principal{Kind: tutela.PrincipalServiceAccount, TenantID: tn.ID, UserID: tutela.NewID()}})
			userCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r1", IP: "198.51.100.10", UserAgent: "UserUA/1",
				Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tn.ID, UserID: u.ID}})
			record := func() {
				t.Helper()
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					if err := tx.Record(saCtx, "sa.probe", tn.ID, "", "", "", nil); err != nil {
						return err
					}
					return tx.Record(userCtx, "user.probe", tn.ID, "", "", "", nil)
				}); err != nil {
					t.Fatal(err)
				}
			}
			record()
			src := sqlstore.AuditRequestDataSource(db)
			if n, err := v.Outdated(ctx, src, tn.ID, vault.PurposePersonalData); err != nil || n != 0 {
				t.Fatalf("before any rotation: %d outdated, %v", n, err)
			}
			if _, err := v.Rotate(ctx, tn.ID, vault.PurposePersonalData); err != nil {
				t.Fatal(err)
			}
			record() // sealed under the new primary: not outdated
			// What `tutela keys rewrap` then `keys retire --purpose personal_data --tenant T` check.
			found := false
			for _, s := range sqlstore.PersonalDataSources(db) {
				p, err := v.Rewrap(ctx, s, vault.RewrapOptions{})
				if err != nil {
					t.Fatalf("rewrap %s: %v", s.Name(), err)
				}
				n, err := v.Outdated(ctx, s, tn.ID, vault.PurposePersonalData)
				if err != nil {
					t.Fatal(err)
				}
				if s.Name() != "audit_events" {
					if n != 0 {
						t.Errorf("%s: %d outdated after rewrap", s.Name(), n)
					}
					continue
				}
				found = true
				// The service account's IP and user agent of the first round; neither the user's
				// (person key) nor the second round's.
				if n != 2 || p.Stuck != 2 || p.Rewrapped != 0 {
					t.Errorf("audit_events: %d outdated, rewrap %+v; want 2 outdated, 2 stuck, none rewrapped", n, p)
				}
			}
			if !found {
				t.Fatal("PersonalDataSources has no audit_events source: retire would destroy the key its values need")
			}
			if err := src.Save(ctx, []vault.RewrapItem{{ID: "x"}}); err == nil {
				t.Error("the audit_events source saved a rewrite of the append-only log")
			}
			recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Action: "sa.probe", Limit: 10})
			if err != nil || len(recs) != 2 {
				t.Fatalf("%d %v", len(recs), err)
			}
			for _, r := range recs {
				if r.Event.SourceIP != "198.51.100.9" || r.Event.UserAgent != "RobotUA/1" {
					t.Errorf("after rotate and rewrap the event reads %q %q", r.Event.SourceIP, r.Event.UserAgent)
				}
			}
		})
	}
}
