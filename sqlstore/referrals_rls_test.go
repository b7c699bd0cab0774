package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/partners"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The referral tables (migration 00031) carry row-level security: a runtime role scoped to
// tenant A sees none of B's referrals or their events, even with a query that forgets the
// tenant.
func TestRLS_ReferralTablesSeeOnlyTheirTenant(t *testing.T) {
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
	var a string
	for _, slug := range []string{"a", "b"} {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		p := &partners.Partner{Name: "Clinic", RedirectURLs: []string{"https://clinic.example.org/"}}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			return tx.Partners(tn.ID).Create(ctx, p)
		}); err != nil {
			t.Fatal(err)
		}
		if a == "" {
			a = tn.ID
		}
		subject, referral := tutela.NewID(), tutela.NewID()
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO subjects (id, tenant_id, created_at, updated_at) VALUES ($1, $2, now(), now())`, []any{subject, tn.ID}},
			{`INSERT INTO referrals (id, tenant_id, partner_id, subject_id, purpose, target_url, key_id, state, justification,
				created_at, expires_at) VALUES ($1, $2, $3, $4, 'outreach', 'https://clinic.example.org/', 1, 'created', 'why',
				now(), now() + interval '1 day')`, []any{referral, tn.ID, p.ID, subject}},
			{`INSERT INTO referral_events (id, tenant_id, referral_id, state, at) VALUES ($1, $2, $3, 'created', now())`,
				[]any{tutela.NewID(), tn.ID, referral}},
		} {
			if _, err := db.SQL().ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	tables := []string{"referrals", "referral_events"}
	wantOneRowPerTenant(t, db, dsn, a, tables...)
}
