package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/webhooks"
)

// The webhooks table (migration 00033) carries row-level security: a runtime role scoped to
// tenant A sees none of B's endpoints (nor their sealed secrets), even with a query that forgets
// the tenant.
func TestRLS_WebhooksSeeOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{})
	ids := map[string]string{}
	for _, slug := range []string{"a", "b"} {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			_, err := tx.Webhooks(tn.ID).Create(ctx, &webhooks.Webhook{URL: "https://hooks.example.org/" + slug, Events: []string{"*"}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ids[slug] = tn.ID
	}
	wantOneRowPerTenant(t, db, dsn, ids["a"], "webhooks")
}
