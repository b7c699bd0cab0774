package sqlstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// BenchmarkEraseSubjects10k measures the retention schedule erasing 10,000 expired subjects
// (each: ledger row, key and values deleted, subject marked, audit event), in its batches of
// 500. Run with -benchtime=1x: one op is the 10,000.
//
//	go test -run '^$' -bench BenchmarkEraseSubjects10k -benchtime=1x -benchmem ./sqlstore/
func BenchmarkEraseSubjects10k(b *testing.B) {
	const subjects = 10_000
	schema := privacy.Schema{{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow,
		Purposes: []string{"aid"}, RetentionDays: 30, Mask: authz.MaskPartial, Searchable: true}}
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
				db := sqltest.Open(b, d, sqlstore.Options{Clock: clock.Now})
				mk := make([]byte, vault.MasterKeySize)
				_, _ = rand.Read(mk)
				kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(mk))
				if err != nil {
					b.Fatal(err)
				}
				v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{})
				if err != nil {
					b.Fatal(err)
				}
				tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					if err := tx.CreateTenant(ctx, tn); err != nil {
						return err
					}
					return tx.SubjectSchema(tn.ID).Put(ctx, schema)
				}); err != nil {
					b.Fatal(err)
				}
				seal := privacy.NewSubjects(v)
				for start := 0; start < subjects; start += 500 {
					batch := make([]*privacy.Sealed, 0, 500)
					for i := start; i < start+500; i++ {
						s, err := seal.SealNew(ctx, tn.ID, schema, map[string]string{"full_name": fmt.Sprintf("Person %05d", i)})
						if err != nil {
							b.Fatal(err)
						}
						batch = append(batch, s)
					}
					if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
						for _, s := range batch {
							if _, err := tx.Subjects(tn.ID).Create(ctx, s); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				clock.Add(31 * 24 * time.Hour)
				b.StartTimer()
				run, err := db.RunRetentionSchedule(ctx, 0, false)
				if err != nil || run.Erased != subjects {
					b.Fatalf("run = %+v, %v", run, err)
				}
			}
		})
	}
}
