package sqlstore_test

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/sqlstore/storetest"
)

// Every table of the migrated schema, and every column of the tables the copy writes, is
// classified in anonymize_tables.go: a table or column added by a later migration fails here
// until someone decides whether (and how) it reaches a staging copy.
func TestAnonymize_EveryTableAndColumnClassified(t *testing.T) {
	written, notCopied := sqlstore.AnonymizeInventory()
	seen := map[string]bool{} // tables and table.columns of either dialect
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		q := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'goose_db_version' ORDER BY 1, 2`
		if db.Dialect() == sqlstore.Postgres {
			q = `SELECT c.table_name, c.column_name FROM information_schema.columns c
				JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
				WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name <> 'goose_db_version'
				ORDER BY 1, 2`
		}
		rows, err := db.SQL().QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		schema := map[string][]string{}
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				t.Fatal(err)
			}
			schema[table] = append(schema[table], col)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for table, cols := range schema {
			cls, isWritten := written[table]
			reason, isSkipped := notCopied[table]
			switch {
			case isWritten && isSkipped:
				t.Errorf("table %s is both copied and not copied", table)
			case isSkipped && strings.TrimSpace(reason) == "":
				t.Errorf("table %s is not copied but gives no reason", table)
			case !isWritten && !isSkipped:
				t.Errorf("table %s is not classified for `export --anonymize`: add it to anonymizedTables (with what "+
					"each column holds in the copy) or to notAnonymizedTables (with the reason) in sqlstore/anonymize_tables.go", table)
			}
			for _, col := range cols {
				if isWritten && cls[col] == "" {
					t.Errorf("column %s.%s is not classified for `export --anonymize` (sqlstore/anonymize_tables.go)", table, col)
				}
			}
		}
		for table, cols := range schema {
			for _, col := range cols {
				seen[table+"."+col] = true
			}
			seen[table] = true
		}
	})
	// Nothing stale: what the inventory names exists in at least one dialect (audit_prune_gate
	// is SQLite's).
	for table, cls := range written {
		for col := range cls {
			if !seen[table+"."+col] {
				t.Errorf("anonymize_tables.go classifies %s.%s, which the schema does not have", table, col)
			}
		}
	}
	for table := range notCopied {
		if !seen[table] {
			t.Errorf("anonymize_tables.go lists table %s, which the schema does not have", table)
		}
	}
}

// world is a generated source: tenants with schemas of every field type, users and subjects
// with generated values, some shared between subjects and between users and subjects.
//
// Every generated value carries enough entropy (at least 8 characters drawn at random) that it
// can appear in the copy only by being copied: a value from a tiny space (one digit) is in any
// database by chance, in an ID or a timestamp. Dates are the exception, and they cannot
// match by chance either: they are 1900–2019 and the copy's own times are now.
type world struct{ tenants []worldTenant }

type worldTenant struct {
	schema   privacy.Schema
	users    []tutela.User
	subjects []map[string]string
}

const letterRunes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZäöüéèçñßøłžÅ"

func genLetters(r *rand.Rand, n int) string {
	rs := []rune(letterRunes)
	var b strings.Builder
	for range n {
		b.WriteRune(rs[r.Intn(len(rs))])
	}
	return b.String()
}

func genLower(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.Intn(26))
	}
	return string(b)
}

func genDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.Intn(10))
	}
	return string(b)
}

func genValue(r *rand.Rand, t privacy.FieldType) string {
	switch t {
	case privacy.FieldName:
		return genLetters(r, 5+r.Intn(5)) + " " + genLetters(r, 5+r.Intn(6))
	case privacy.FieldDate:
		return time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.Intn(43829)).Format(time.DateOnly)
	case privacy.FieldPhone:
		d := genDigits(r, 10+r.Intn(4))
		if r.Intn(2) == 0 {
			return "+" + d[:2] + " " + d[2:5] + " " + d[5:]
		}
		return "+" + d
	case privacy.FieldNationalID:
		return strings.ToUpper(genLower(r, 3)) + "-" + genDigits(r, 7)
	case privacy.FieldAddress:
		return genDigits(r, 1+r.Intn(3)) + " " + genLetters(r, 8) + " Street\n" + genDigits(r, 4) + " " + genLetters(r, 8)
	case privacy.FieldEmail:
		return genLower(r, 6+r.Intn(4)) + "." + genLower(r, 6+r.Intn(4)) + "@" + genLower(r, 6+r.Intn(4)) + ".org"
	case privacy.FieldText:
		words := make([]string, 3+r.Intn(10))
		for i := range words {
			words[i] = genLetters(r, 8+r.Intn(4))
		}
		return strings.Join(words, []string{" ", ", ", "\n"}[r.Intn(3)])
	case privacy.FieldNumber:
		n := string(rune('1'+r.Intn(9))) + genDigits(r, 7+r.Intn(5))
		if r.Intn(2) == 0 {
			n += "." + genDigits(r, 2)
		}
		if r.Intn(3) == 0 {
			n = "-" + n
		}
		return n
	}
	panic("unknown type " + t)
}

func (world) Generate(r *rand.Rand, _ int) reflect.Value {
	var w world
	for range 1 + r.Intn(2) {
		var tn worldTenant
		for i, ft := range privacy.FieldTypes {
			if r.Intn(10) < 7 || (i == len(privacy.FieldTypes)-1 && len(tn.schema) == 0) {
				tn.schema = append(tn.schema, privacy.Field{Name: fmt.Sprintf("f_%s", ft), Type: ft,
					Classification: authz.Yellow, Purposes: []string{"aid"}, RetentionDays: 30 + r.Intn(3000),
					Mask: authz.MaskPartial, Searchable: r.Intn(2) == 0})
			}
		}
		for range 1 + r.Intn(5) {
			vals := map[string]string{}
			for _, f := range tn.schema {
				if r.Intn(10) < 7 || len(vals) == 0 {
					vals[f.Name] = genValue(r, f.Type)
					// Now and then a value another subject holds: it must stay shared.
					if prev := len(tn.subjects); prev > 0 && r.Intn(4) == 0 {
						if v, ok := tn.subjects[r.Intn(prev)][f.Name]; ok {
							vals[f.Name] = v
						}
					}
				}
			}
			tn.subjects = append(tn.subjects, vals)
		}
		for i := range r.Intn(4) {
			u := tutela.User{Email: genValue(r, privacy.FieldEmail), DisplayName: genValue(r, privacy.FieldName)}
			// A user who is also a subject (by e-mail) stays linked to them.
			if f, ok := tn.schema.Field("f_email"); ok && i == 0 {
				if v, ok := tn.subjects[0][f.Name]; ok {
					u.Email = v
				}
			}
			tn.users = append(tn.users, u)
		}
		w.tenants = append(w.tenants, tn)
	}
	return reflect.ValueOf(w)
}

// groups is the equality structure of values: for each field, the sorted sizes of the groups
// of equal (normalized) values. Synthetic values must have the same structure as the originals.
func groups(schema privacy.Schema, subjects []map[string]string) map[string][]int {
	count := map[string]map[string]int{}
	for _, s := range subjects {
		for name, v := range s {
			f, _ := schema.Field(name)
			if count[name] == nil {
				count[name] = map[string]int{}
			}
			count[name][privacy.Normalize(f.Type, v)]++
		}
	}
	out := map[string][]int{}
	for name, m := range count {
		for _, n := range m {
			out[name] = append(out[name], n)
		}
		slices.Sort(out[name])
	}
	return out
}

// windows are the fragments of v of fragmentLen characters: a copy that kept part of a value
// (a street, the end of a phone number) holds one. Dates are left out: every synthetic date
// shares its year and month with some other date.
const fragmentLen = 8

func windows(v string) []string {
	rs := []rune(v)
	var out []string
	for i := 0; i+fragmentLen <= len(rs); i++ {
		out = append(out, string(rs[i:i+fragmentLen]))
	}
	return out
}

// The acceptance test: after an export, no original value is anywhere in the copy (any
// table, any column, the file, any value opened with the copy's vault; case-insensitively, and
// inside longer values, and no part of one either), every synthetic value is valid for its type, values shared in the
// source are shared in the copy, and a second run gives other values.
func TestAnonymize_NoOriginalValueSurvives(t *testing.T) {
	ctx := context.Background()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	iteration := 0
	prop := func(w world) bool {
		iteration++
		// The source runs on a clock of its own: a time of the copy equal to a source time was
		// copied, not made.
		start := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
		clock := clocktest.New(start)
		src := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
		seal := privacy.NewSubjects(sqltest.AttachVaultAt(t, src, clock.Now))
		var originals, fragments []string
		ids := map[string]string{} // source tenant index → tenant ID
		for ti, wt := range w.tenants {
			tn := &tutela.Tenant{Slug: fmt.Sprintf("world-%d-%d", iteration, ti), Name: fmt.Sprintf("World %d", ti), Region: "eu"}
			if err := src.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.CreateTenant(ctx, tn); err != nil {
					return err
				}
				if err := tx.SubjectSchema(tn.ID).Put(ctx, wt.schema); err != nil {
					return err
				}
				for _, u := range wt.users {
					if err := tx.Users(tn.ID).Create(ctx, &u); err != nil {
						return err
					}
					originals = append(originals, u.Email, u.DisplayName)
					fragments = append(fragments, windows(u.Email)...)
					fragments = append(fragments, windows(u.DisplayName)...)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			ids[fmt.Sprint(ti)] = tn.ID
			for _, vals := range wt.subjects {
				sealed, err := seal.SealNew(ctx, tn.ID, wt.schema, vals)
				if err != nil {
					t.Fatal(err)
				}
				if err := src.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tn.ID).Create(ctx, sealed); return err }); err != nil {
					t.Fatal(err)
				}
				for name, v := range vals {
					originals = append(originals, v)
					if f, _ := wt.schema.Field(name); f.Type != privacy.FieldDate {
						fragments = append(fragments, windows(v)...)
					}
				}
			}
		}
		export := func() (storetest.CopyContents, string) {
			path := filepath.Join(t.TempDir(), "staging.db")
			dst, dv := storetest.NewAnonymizeTarget(t, path)
			syn, err := privacy.NewSynthesizer()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.AnonymizeInto(ctx, dst, syn, tutela.NewID()); err != nil {
				t.Fatal(err)
			}
			c := storetest.ReadCopy(t, dst, dv)
			if err := dst.Close(); err != nil { // the WAL is checkpointed into the file
				t.Fatal(err)
			}
			return c, path
		}
		c, path := export()
		// The raw scan runs on a reopened copy: the file itself is read, WAL included.
		reopened, err := sqlstore.Open(ctx, path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer reopened.Close()
		storetest.AssertNoOriginal(t, reopened, path, append(originals, fragments...), c)
		storetest.AssertNoSourceTime(t, reopened, storetest.AllTimes(t, src).Between(start, start.AddDate(0, 0, 30)))
		for ti, wt := range w.tenants {
			tenantID := ids[fmt.Sprint(ti)]
			if got, want := groups(wt.schema, c.Subjects[tenantID]), groups(wt.schema, wt.subjects); !reflect.DeepEqual(got, want) {
				t.Errorf("tenant %d: equal values in the source %v are grouped %v in the copy", ti, want, got)
			}
			// A user who was a subject by e-mail still is.
			linked := func(emails []string, subjects []map[string]string) int {
				n := 0
				for _, e := range emails {
					for _, s := range subjects {
						if v, ok := s["f_email"]; ok && privacy.Normalize(privacy.FieldEmail, v) == privacy.Normalize(privacy.FieldEmail, e) {
							n++
						}
					}
				}
				return n
			}
			var srcEmails, copyEmails []string
			for _, u := range wt.users {
				srcEmails = append(srcEmails, u.Email)
			}
			for _, u := range c.Users {
				if u.TenantID == tenantID {
					copyEmails = append(copyEmails, u.Email)
				}
			}
			if a, b := linked(srcEmails, wt.subjects), linked(copyEmails, c.Subjects[tenantID]); a != b {
				t.Errorf("tenant %d: %d user–subject e-mail links in the source, %d in the copy", ti, a, b)
			}
		}
		// Another run, another mapping.
		c2, _ := export()
		// The copies' subjects come in random order: their values are compared as sets.
		values := func(c storetest.CopyContents) []string {
			var out []string
			for tenantID, subjects := range c.Subjects {
				for _, s := range subjects {
					for name, v := range s {
						out = append(out, tenantID+"/"+name+"="+v)
					}
				}
			}
			slices.Sort(out)
			return out
		}
		if slices.Equal(values(c), values(c2)) {
			t.Error("two runs gave the same synthetic values")
		}
		return !t.Failed()
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 10, Rand: rand.New(rand.NewSource(seed))}); err != nil {
		t.Fatal(err)
	}
}
