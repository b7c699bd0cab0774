package sqlstore_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

func benchTokenVault(b *testing.B, d sqlstore.Dialect) (*sqlstore.DB, privacy.Tokenizer, string) {
	ctx := context.Background()
	db := sqltest.Open(b, d, sqlstore.Options{})
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, vault.MasterKeySize)))
	if err != nil {
		b.Fatal(err)
	}
	v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{})
	if err != nil {
		b.Fatal(err)
	}
	tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
		b.Fatal(err)
	}
	tk := privacy.Tokenizer{Vault: v}
	if err := tk.Prepare(ctx, tn.ID); err != nil {
		b.Fatal(err)
	}
	return db, tk, tn.ID
}

// benchTokens measures tokenize (a new value, and a value that already has its token) and
// detokenize, one value per transaction: what one request costs the store.
func benchTokens(b *testing.B, d sqlstore.Dialect) {
	ctx := context.Background()
	db, tk, tenant := benchTokenVault(b, d)
	tokenize := func(kind privacy.TokenKind, value string) string {
		var out []string
		if err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
			out, err = tx.TokenVault(tenant, tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "phone", Kind: kind, Values: []string{value}})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return out[0]
	}
	for _, kind := range []privacy.TokenKind{privacy.Deterministic, privacy.FormatPreserving} {
		b.Run("TokenizeNew/"+string(kind), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				tokenize(kind, fmt.Sprintf("+9627%08d-%s", i, kind[:1]))
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
	b.Run("TokenizeExisting", func(b *testing.B) {
		tokenize(privacy.Deterministic, "+962790000000")
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			tokenize(privacy.Deterministic, "+962790000000")
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	})
	b.Run("Detokenize", func(b *testing.B) {
		tok := tokenize(privacy.Deterministic, "+962791111111")
		refs := []sqlstore.TokenRef{{Field: "phone", Token: tok}}
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if err := db.View(ctx, func(tx *sqlstore.Tx) error {
				out, err := tx.TokenVault(tenant, tk).Detokenize(ctx, refs)
				if err == nil && !out[0].Found {
					err = fmt.Errorf("not found")
				}
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	})
}

func BenchmarkTokensSQLite(b *testing.B)   { benchTokens(b, sqlstore.SQLite) }
func BenchmarkTokensPostgres(b *testing.B) { benchTokens(b, sqlstore.Postgres) }
