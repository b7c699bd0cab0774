package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Distinctive request data of the audit events below.
const (
	auUA   = "QuixoteAuditAgent/4.2 (marker)"
	auIP   = "198.51.100.201"
	auSAUA = "QuixoteRobot/1.0 (marker)"
	auSAIP = "198.51.100.202"
)

// An audit event's source IP and user agent never reach the database in plaintext: the acting
// user's are sealed under their person key, a service account's under the tenant's keyset.
// Readers get them back; once the user is erased theirs read [erased], the service account's
// still open, and the log verifies before and after.
func TestAuditPersonalData_SealedOpenedAndErased(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			skey, vkey, _ := audit.GenerateKey("tutela.test/audit")
			signer, _ := audit.NewSigner(skey)
			seq := sqlstore.NewSequencer(db, signer, "tutela.test/audit", sqlstore.SequencerOptions{})
			verify := func(when string) {
				t.Helper()
				if _, err := seq.Step(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := audit.Verify(ctx, db.AuditSource(), vkey, "tutela.test/audit", nil); err != nil {
					t.Fatalf("audit verify %s: %v", when, err)
				}
			}

			tn := &tutela.Tenant{Slug: "au", Name: "AU", Region: "eu"}
			u := &tutela.User{Email: "au@example.org", DisplayName: "A U"}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.CreateTenant(ctx, tn); err != nil {
					return err
				}
				return tx.Users(tn.ID).Create(ctx, u)
			}); err != nil {
				t.Fatal(err)
			}
			userCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r1", IP: auIP, UserAgent: auUA,
				Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tn.ID, UserID: u.ID}})
			saCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r2", IP: auSAIP, UserAgent: auSAUA,
				Principal: &tutela.Principal{Kind: tutela.PrincipalServiceAccount, TenantID: tn.ID, UserID: tutela.NewID()}})
			// A client-chosen user agent that looks sealed is sealed all the same.
			forgedCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r3", IP: auIP,
				UserAgent: "sealed:v1:t:" + auUA})
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.Record(userCtx, "user.probe", tn.ID, "user", u.ID, "", nil); err != nil {
					return err
				}
				if err := tx.Record(saCtx, "sa.probe", tn.ID, "", "", "", nil); err != nil {
					return err
				}
				return tx.Record(forgedCtx, "anon.probe", tn.ID, "", "", "", nil)
			}); err != nil {
				t.Fatal(err)
			}
			mustNotContain(t, string(d)+" database", dump(t, db, dsn), auUA, auIP, auSAUA, auSAIP, "Quixote")
			verify("before erasure")

			read := func() map[string]audit.Event {
				recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]audit.Event{}
				for _, r := range recs {
					out[r.Event.Action] = r.Event
				}
				return out
			}
			got := read()
			if e := got["user.probe"]; e.SourceIP != auIP || e.UserAgent != auUA {
				t.Errorf("user's event reads %q %q", e.SourceIP, e.UserAgent)
			}
			if e := got["sa.probe"]; e.SourceIP != auSAIP || e.UserAgent != auSAUA {
				t.Errorf("service account's event reads %q %q", e.SourceIP, e.UserAgent)
			}
			if e := got["anon.probe"]; e.UserAgent != "sealed:v1:t:"+auUA {
				t.Errorf("forged user agent reads %q", e.UserAgent)
			}

			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.Users(tn.ID).Erase(ctx, u.ID, "data subject request", "GDPR Art. 17(1)(a)")
			}); err != nil {
				t.Fatal(err)
			}
			got = read()
			if e := got["user.probe"]; e.SourceIP != sqlstore.ErasedPlaceholder || e.UserAgent != sqlstore.ErasedPlaceholder {
				t.Errorf("erased user's event reads %q %q, want %q", e.SourceIP, e.UserAgent, sqlstore.ErasedPlaceholder)
			}
			if e := got["sa.probe"]; e.SourceIP != auSAIP {
				t.Errorf("service account's event after the erasure reads %q", e.SourceIP)
			}
			verify("after erasure")
			mustNotContain(t, string(d)+" database after erasure", dump(t, db, dsn), auUA, auIP, auSAUA, auSAIP)
		})
	}
}
