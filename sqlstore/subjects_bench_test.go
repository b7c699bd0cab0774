package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// The subject benchmarks compare the privacy vault's encrypted subjects with the same rows
// stored in plaintext: one subject of four fields (three searchable) per write, with its audit
// event, in one transaction; one subject's four values per read. The plaintext tables are made
// by the benchmark and mirror subject_values and subject_index with the value in clear.

var benchValues = map[string]string{"full_name": "Ada Lovelace", "date_of_birth": "1815-12-10",
	"phone": "+44 20 7946 0958", "notes": "Prefers contact by letter"}

func benchSchema() privacy.Schema {
	f := func(name string, t privacy.FieldType, searchable bool) privacy.Field {
		return privacy.Field{Name: name, Type: t, Classification: authz.Yellow, Purposes: []string{"aid"},
			RetentionDays: 365, Mask: authz.MaskRedacted, Searchable: searchable}
	}
	return privacy.Schema{f("date_of_birth", privacy.FieldDate, true), f("full_name", privacy.FieldName, true),
		f("notes", privacy.FieldText, false), f("phone", privacy.FieldPhone, true)}
}

type subjectBench struct {
	db     *sqlstore.DB
	seal   privacy.Subjects
	tenant string
	schema privacy.Schema
}

func newSubjectBench(b *testing.B, d sqlstore.Dialect) *subjectBench {
	ctx := context.Background()
	db := sqltest.Open(b, d, sqlstore.Options{})
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{3}, vault.MasterKeySize)))
	if err != nil {
		b.Fatal(err)
	}
	v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{})
	if err != nil {
		b.Fatal(err)
	}
	tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
	sb := &subjectBench{db: db, seal: privacy.NewSubjects(v), schema: benchSchema()}
	blob, id := "BLOB", "TEXT"
	if d == sqlstore.Postgres {
		blob, id = "BYTEA", "UUID"
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		for _, q := range []string{
			// subject_values and subject_index, with the value in clear instead of a ciphertext
			// or digest: the same keys, foreign keys and indexes.
			`CREATE TABLE bench_plain_values (tenant_id ` + id + ` NOT NULL, subject_id ` + id + ` NOT NULL, field TEXT NOT NULL,
				value ` + blob + ` NOT NULL, updated_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, subject_id, field),
				FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE CASCADE)`,
			`CREATE TABLE bench_plain_index (tenant_id ` + id + ` NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
				subject_id ` + id + ` NOT NULL, PRIMARY KEY (tenant_id, field, value, subject_id),
				FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE CASCADE)`,
			`CREATE INDEX bench_plain_index_subject ON bench_plain_index (tenant_id, subject_id)`,
		} {
			if _, err := tx.ExecForBench(ctx, q); err != nil {
				return err
			}
		}
		return tx.SubjectSchema(tn.ID).Put(ctx, sb.schema)
	})
	if err != nil {
		b.Fatal(err)
	}
	sb.tenant = tn.ID
	return sb
}

func (sb *subjectBench) writeEncrypted(b *testing.B) string { return sb.writeValues(b, benchValues) }

func (sb *subjectBench) writeValues(b *testing.B, values map[string]string) string {
	ctx := context.Background()
	sealed, err := sb.seal.SealNew(ctx, sb.tenant, sb.schema, values)
	if err != nil {
		b.Fatal(err)
	}
	if err := sb.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(sb.tenant).Create(ctx, sealed)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return sealed.SubjectID
}

// writePlaintext reads the schema, validates and normalizes as the encrypted path does, then
// writes the same rows with values in clear: the subject row, four values, three index entries
// and the audit event. What it does not do is what per-person keys add: a person_keys row (and
// the erasure ledger check before it), sealing and blind-index hashing.
func (sb *subjectBench) writePlaintext(b *testing.B) string {
	ctx := context.Background()
	id := tutela.NewID()
	err := sb.db.Update(ctx, func(tx *sqlstore.Tx) error {
		schema, err := tx.SubjectSchema(sb.tenant).Get(ctx)
		if err != nil {
			return err
		}
		for name, v := range benchValues {
			f, _ := schema.Field(name)
			if err := privacy.ValidateValue(name, f.Type, v); err != nil {
				return err
			}
		}
		now := tx.Now()
		if _, err := tx.ExecForBench(ctx, `INSERT INTO subjects (id, tenant_id, created_at, updated_at, retain_until) VALUES ($1, $2, $3, $3, $4)`,
			id, sb.tenant, now, now.AddDate(0, 0, 365)); err != nil {
			return err
		}
		// The same two multi-row statements the encrypted store uses.
		if _, err := tx.ExecForBench(ctx, `INSERT INTO bench_plain_values (tenant_id, subject_id, field, value, updated_at) VALUES
			($1, $2, 'date_of_birth', $3, $7), ($1, $2, 'full_name', $4, $7), ($1, $2, 'notes', $5, $7), ($1, $2, 'phone', $6, $7)`,
			sb.tenant, id, []byte(benchValues["date_of_birth"]), []byte(benchValues["full_name"]), []byte(benchValues["notes"]),
			[]byte(benchValues["phone"]), now); err != nil {
			return err
		}
		norm := func(name string) string {
			f, _ := sb.schema.Field(name)
			return privacy.Normalize(f.Type, benchValues[name])
		}
		if _, err := tx.ExecForBench(ctx, `INSERT INTO bench_plain_index (tenant_id, field, value, subject_id) VALUES
			($1, 'date_of_birth', $2, $5), ($1, 'full_name', $3, $5), ($1, 'phone', $4, $5)`,
			sb.tenant, norm("date_of_birth"), norm("full_name"), norm("phone"), id); err != nil {
			return err
		}
		return tx.Record(ctx, "subject.create", sb.tenant, "subject", id, "", map[string]any{
			"fields": []string{"date_of_birth", "full_name", "notes", "phone"}})
	})
	if err != nil {
		b.Fatal(err)
	}
	return id
}

func perSecond(b *testing.B, start time.Time, unit string) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

func eachDialect(b *testing.B, fn func(b *testing.B, sb *subjectBench)) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			if d == sqlstore.Postgres {
				sqltest.RequirePostgres(b)
			}
			fn(b, newSubjectBench(b, d))
		})
	}
}

// BenchmarkSubjectWriteEncrypted: a new data key (wrapped by the tenant keyset), four values
// sealed, three blind-index digests, and the transaction storing them with the audit event.
func BenchmarkSubjectWriteEncrypted(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		sb.writeEncrypted(b) // keysets created outside the measurement
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			sb.writeEncrypted(b)
		}
		perSecond(b, start, "subjects/s")
	})
}

// BenchmarkSubjectWritePlaintext: the same rows in clear.
func BenchmarkSubjectWritePlaintext(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			sb.writePlaintext(b)
		}
		perSecond(b, start, "subjects/s")
	})
}

// BenchmarkSubjectReadEncrypted: one subject's row, wrapped key and four ciphertexts in a read
// transaction, then the key unwrapped and the four values opened.
func BenchmarkSubjectReadEncrypted(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		ctx := context.Background()
		id := sb.writeEncrypted(b)
		fields := []string{"date_of_birth", "full_name", "notes", "phone"}
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			var rec *sqlstore.SubjectRecord
			if err := sb.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
				rec, err = tx.Subjects(sb.tenant).Get(ctx, id)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			vals, err := sb.seal.Open(ctx, sb.tenant, &rec.Stored, fields)
			if err != nil || len(vals) != 4 {
				b.Fatal(vals, err)
			}
		}
		perSecond(b, start, "subjects/s")
	})
}

// BenchmarkSubjectReadPlaintext: the same subject row and four values in clear.
func BenchmarkSubjectReadPlaintext(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		ctx := context.Background()
		id := sb.writePlaintext(b)
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			vals := map[string]string{}
			if err := sb.db.View(ctx, func(tx *sqlstore.Tx) error {
				var erased sql.NullTime
				if err := tx.QueryRowForBench(ctx, `SELECT erased_at FROM subjects WHERE tenant_id = $1 AND id = $2`, sb.tenant, id).Scan(&erased); err != nil {
					return err
				}
				rows, err := tx.QueryForBench(ctx, `SELECT field, value FROM bench_plain_values WHERE tenant_id = $1 AND subject_id = $2 ORDER BY field`, sb.tenant, id)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var f string
					var v []byte
					if err := rows.Scan(&f, &v); err != nil {
						return err
					}
					vals[f] = string(v)
				}
				return rows.Err()
			}); err != nil || len(vals) != 4 {
				b.Fatal(vals, err)
			}
		}
		perSecond(b, start, "subjects/s")
	})
}

// BenchmarkBlindIndexLookup: a search by exact phone number among 1,000 subjects (one match): the digests under
// every enabled key, then the index probe.
func BenchmarkBlindIndexLookup(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		ctx := context.Background()
		for i := range 1000 {
			sb.writeValues(b, map[string]string{"full_name": "Ada Lovelace", "phone": fmt.Sprintf("+44 20 7946 %04d", i)})
		}
		f, _ := sb.schema.Field("phone")
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			ds, err := sb.seal.SearchDigests(ctx, sb.tenant, f, "+44 (20) 7946-0500")
			if err != nil {
				b.Fatal(err)
			}
			var ids []string
			if err := sb.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
				ids, err = tx.Subjects(sb.tenant).Search(ctx, "phone", ds, 10)
				return err
			}); err != nil || len(ids) != 1 {
				b.Fatal(len(ids), err)
			}
		}
		perSecond(b, start, "lookups/s")
	})
}
