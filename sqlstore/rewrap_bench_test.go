package sqlstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// BenchmarkRewrap measures `tutela keys rewrap` against a real database: each round rotates the
// signing_keys keyset and re-encrypts all 10,000 rows (64-byte values) in batches of 500, each
// batch one transaction with its audit event. rows/s counts rows re-encrypted and written.
func BenchmarkRewrap(b *testing.B) {
	const rows = 10_000
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, d, sqlstore.Options{})
			mk := make([]byte, vault.MasterKeySize)
			_, _ = rand.Read(mk)
			kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(mk))
			if err != nil {
				b.Fatal(err)
			}
			clock := clocktest.New(time.Now().UTC())
			v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{Clock: clock.Now})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			// Encrypt first: the vault creates its keyset in a transaction of its own.
			keys := make([]sqlstore.SigningKeyRow, rows)
			for i := range keys {
				id := fmt.Sprintf("k%06d", i)
				ct, err := v.Encrypt(ctx, "", vault.PurposeSigningKeys, make([]byte, 64), []byte("signing_key:"+id+":EdDSA"))
				if err != nil {
					b.Fatal(err)
				}
				keys[i] = sqlstore.SigningKeyRow{ID: id, Alg: "EdDSA", PublicJWK: []byte("{}"), SealedPrivate: ct,
					CreatedAt: now, ActivateAt: now}
			}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				for _, k := range keys {
					if err := tx.AddSigningKey(ctx, k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			src := sqlstore.SigningKeysSource(db)
			var total int
			var spent time.Duration
			for b.Loop() {
				b.StopTimer()
				if _, err := v.Rotate(ctx, "", vault.PurposeSigningKeys); err != nil {
					b.Fatal(err)
				}
				clock.Add(v.CacheTTL() + vault.RotationSettleMargin) // rewrap waits for every node to reload
				b.StartTimer()
				t0 := time.Now()
				p, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 500})
				if err != nil || p.Rewrapped != rows {
					b.Fatalf("Rewrap = %+v, %v", p, err)
				}
				spent += time.Since(t0)
				total += p.Rewrapped
			}
			b.ReportMetric(float64(total)/spent.Seconds(), "rows/s")
		})
	}
}
