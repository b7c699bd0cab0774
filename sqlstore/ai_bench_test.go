package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// BenchmarkAIAdmit measures what the gateway asks of the store for one inference: a
// transaction that admits it against the tenant's limits and opens the provider's keys, and
// one that adds its tokens afterwards.
func BenchmarkAIAdmit(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, d, sqlstore.Options{})
			sqltest.AttachVault(b, db)
			tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
			p := &ai.Provider{Name: "openai", BaseURL: "https://api.example.org/v1"}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
				b.Fatal(err)
			}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.AI(tn.ID).CreateProvider(ctx, p); err != nil {
					return err
				}
				_, err := tx.AI(tn.ID).AddKey(ctx, p.ID, tutela.NewSecret("sk-bench-0123456789abcdef"), "")
				return err
			}); err != nil {
				b.Fatal(err)
			}
			st := &ai.Settings{RequestsPerMinute: 1_000_000, TokensPerDay: 1 << 50, TokensPerMonth: 1 << 50}
			b.ReportAllocs()
			for b.Loop() {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					if err := tx.AI(tn.ID).Admit(ctx, st); err != nil {
						return err
					}
					_, err := tx.AI(tn.ID).Keys(ctx, p.ID)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AI(tn.ID).AddTokens(ctx, 500) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
