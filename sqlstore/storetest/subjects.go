package storetest

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// SubjectTests is the subjects part of the conformance suite (privacy vault, issue 13):
// per-subject encryption bound to (tenant, subject, field), blind-index search by exact value,
// legal holds and erasure by crypto-shredding.
var SubjectTests = []Test{
	{"SubjectSchemaChangesRefusedWhileFieldsHoldValues", testSubjectSchema},
	{"SubjectRoundTripAndTenantIsolation", testSubjectRoundTrip},
	{"SubjectRowsHoldNoPlaintext", testSubjectNoPlaintext},
	{"SubjectMovedCiphertextDoesNotOpen", testSubjectMovedCiphertext},
	{"SubjectSearchExactOnly", testSubjectSearchExact},
	{"SubjectSearchNeedsNoDataKey", testSubjectSearchNoKey},
	{"SubjectUpdateReindexesAndRetention", testSubjectUpdate},
	{"SubjectHoldBlocksErasure", testSubjectHoldErase},
	{"SubjectSchemaPutAuthorizedSeesEveryChange", testSubjectSchemaPutAuthorized},
}

// subjectKit is a store, a real vault over it (local KEK) and one tenant with a schema.
type subjectKit struct {
	db     *sqlstore.DB
	clock  *fakeClock // the store's and the vault's
	vault  *vault.Vault
	seal   privacy.Subjects
	tenant *tutela.Tenant
	schema privacy.Schema
}

func testSchema() privacy.Schema {
	return privacy.Schema{
		{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"case_management", "aid"},
			RetentionDays: 365, Mask: authz.MaskPartial, Searchable: true},
		{Name: "date_of_birth", Type: privacy.FieldDate, Classification: authz.Yellow, Purposes: []string{"case_management"},
			RetentionDays: 365, Mask: authz.MaskRedacted, Searchable: true},
		{Name: "phone", Type: privacy.FieldPhone, Classification: authz.Yellow, Purposes: []string{"aid"},
			RetentionDays: 30, Mask: authz.MaskPartial, Searchable: true},
		{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red, Purposes: []string{"case_management"},
			RetentionDays: 3650, Mask: authz.MaskHashed, Searchable: true},
		{Name: "notes", Type: privacy.FieldText, Classification: authz.Red, Purposes: []string{"case_management"},
			RetentionDays: 90, Mask: authz.MaskHidden},
	}
}

func newSubjectKit(t *testing.T, open Opener, slug string) *subjectKit {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	k := &subjectKit{db: db, clock: clock, vault: v, seal: privacy.NewSubjects(v), schema: testSchema()}
	k.tenant = k.addTenant(t, slug)
	return k
}

func (k *subjectKit) addTenant(t *testing.T, slug string) *tutela.Tenant {
	t.Helper()
	tn := createTenant(t, k.db, slug)
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(tn.ID).Put(ctx, k.schema) })
	return tn
}

func (k *subjectKit) create(t *testing.T, tenantID string, values map[string]string) string {
	t.Helper()
	sealed, err := k.seal.SealNew(ctx, tenantID, k.schema, values)
	if err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tenantID).Create(ctx, sealed)
		return err
	})
	return sealed.SubjectID
}

func (k *subjectKit) get(tenantID, id string) (*sqlstore.SubjectRecord, error) {
	var rec *sqlstore.SubjectRecord
	err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		rec, err = tx.Subjects(tenantID).Get(ctx, id)
		return err
	})
	return rec, err
}

func (k *subjectKit) read(t *testing.T, tenantID, id string) map[string]string {
	t.Helper()
	rec, err := k.get(tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := k.seal.Open(ctx, tenantID, &rec.Stored, slices.Collect(maps.Keys(rec.Stored.Values)))
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func (k *subjectKit) search(t *testing.T, tenantID, field, value string) []string {
	t.Helper()
	f, _ := k.schema.Field(field)
	ds, err := k.seal.SearchDigests(ctx, tenantID, f, value)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		ids, err = tx.Subjects(tenantID).Search(ctx, field, ds, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

var ada = map[string]string{"full_name": "Ada Lovelace", "date_of_birth": "1815-12-10", "phone": "+44 20 7946 0958",
	"national_id": "AB-947 381", "notes": "Prefers contact by letter; lives near Marylebone"}

func testSubjectSchema(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	var got privacy.Schema
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.SubjectSchema(k.tenant.ID).Get(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(k.schema)
	slices.SortFunc(want, func(a, b privacy.Field) int { return strings.Compare(a.Name, b.Name) })
	if len(got) != len(want) {
		t.Fatalf("schema = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Type != want[i].Type || !slices.Equal(got[i].Purposes, want[i].Purposes) ||
			got[i].Mask != want[i].Mask || got[i].Searchable != want[i].Searchable || got[i].RetentionDays != want[i].RetentionDays {
			t.Fatalf("field %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// An invalid schema changes nothing.
	bad := slices.Clone(k.schema)
	bad[0].RetentionDays = 0
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(k.tenant.ID).Put(ctx, bad) })
	mustCode(t, err, tutela.EINVALID)

	k.create(t, k.tenant.ID, map[string]string{"full_name": "Ada Lovelace"})
	events := countRows(t, k.db, "audit_events")
	for _, tc := range []struct {
		name   string
		change func(privacy.Schema) privacy.Schema
		msg    string
	}{
		{"remove", func(s privacy.Schema) privacy.Schema { return s[1:] }, "cannot be removed"},
		{"retype", func(s privacy.Schema) privacy.Schema { s[0].Type = privacy.FieldText; return s }, "type cannot change"},
	} {
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.SubjectSchema(k.tenant.ID).Put(ctx, tc.change(slices.Clone(k.schema)))
		})
		mustCode(t, err, tutela.ECONFLICT)
		if msg := tutela.ErrorMessage(err); !strings.Contains(msg, "full_name") || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: message %q does not name the field and the rule", tc.name, msg)
		}
	}
	if n := countRows(t, k.db, "audit_events"); n != events {
		t.Fatalf("refused schema changes wrote %d audit events", n-events)
	}
	// A field without values may go; a field with values may change its mask and purposes.
	next := slices.Clone(k.schema)
	next[0].Mask, next[0].Purposes = authz.MaskRedacted, []string{"aid"}
	next = slices.DeleteFunc(next, func(f privacy.Field) bool { return f.Name == "notes" })
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(k.tenant.ID).Put(ctx, next) })
	var details string
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE action = 'subject_schema.update' ORDER BY pos DESC LIMIT 1`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, `"removed":["notes"]`) || !strings.Contains(details, `"changed":["full_name"]`) {
		t.Errorf("schema audit details = %s", details)
	}
}

func testSubjectRoundTrip(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	other := k.addTenant(t, "other")
	id := k.create(t, k.tenant.ID, ada)
	if got := k.read(t, k.tenant.ID, id); !maps2Equal(got, ada) {
		t.Fatalf("read back %v, want %v", got, ada)
	}
	// Another tenant does not see the subject: not found, not listed, not searchable.
	_, err := k.get(other.ID, id)
	mustCode(t, err, tutela.ENOTFOUND)
	if ids := k.search(t, other.ID, "full_name", "Ada Lovelace"); len(ids) != 0 {
		t.Fatalf("other tenant's search found %v", ids)
	}
	err = k.db.View(ctx, func(tx *sqlstore.Tx) error {
		list, err := tx.Subjects(other.ID).List(ctx, "", 10)
		if err == nil && len(list) != 0 {
			t.Errorf("other tenant lists %d subjects", len(list))
		}
		if _, err := tx.Subjects(other.ID).Holds(ctx, id); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("other tenant's holds: %v", err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(other.ID).Erase(ctx, id, "request", "GDPR Art. 17", sqlstore.ErasureRequest)
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
	// A value outside the schema, or invalid for its type, is refused before anything is made.
	if _, err := k.seal.SealNew(ctx, k.tenant.ID, k.schema, map[string]string{"religion": "x"}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := k.seal.SealNew(ctx, k.tenant.ID, k.schema, map[string]string{"date_of_birth": "1815-02-30"}); tutela.ErrorCode(err) != tutela.EINVALID ||
		strings.Contains(tutela.ErrorMessage(err), "1815") {
		t.Errorf("invalid date: %v (the message must not repeat the value)", err)
	}
	// The audit event names fields, never values.
	var details string
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE action = 'subject.create'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, "national_id") || strings.Contains(details, "Lovelace") {
		t.Errorf("subject.create details = %s", details)
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// rawBlobs returns every byte of the named columns of a table.
func rawBlobs(t *testing.T, db *sqlstore.DB, q string) [][]byte {
	t.Helper()
	rows, err := db.SQL().QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func testSubjectNoPlaintext(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	k.create(t, k.tenant.ID, ada)
	var blobs [][]byte
	for _, q := range []string{
		`SELECT ciphertext FROM subject_values`, `SELECT digest FROM subject_index`, `SELECT wrapped FROM person_keys`,
		`SELECT field FROM subject_values`, `SELECT canonical FROM audit_events`,
	} {
		got := rawBlobs(t, k.db, q)
		if len(got) == 0 {
			t.Fatalf("%s: no rows", q)
		}
		blobs = append(blobs, got...)
	}
	if n := countRows(t, k.db, "subject_values"); n != len(ada) {
		t.Fatalf("subject_values rows = %d, want %d", n, len(ada))
	}
	for field, v := range ada {
		f, _ := k.schema.Field(field)
		for _, needle := range []string{v, privacy.Normalize(f.Type, v), "Lovelace", "1815-12", "79460958", "AB947381", "Marylebone"} {
			for _, b := range blobs {
				if bytes.Contains(b, []byte(needle)) {
					t.Fatalf("plaintext %q of %s found in a stored row", needle, field)
				}
			}
		}
	}
}

func testSubjectMovedCiphertext(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	a := k.create(t, k.tenant.ID, ada)
	b := k.create(t, k.tenant.ID, map[string]string{"full_name": "Grace Hopper", "notes": "x"})
	recA, err := k.get(k.tenant.ID, a)
	if err != nil {
		t.Fatal(err)
	}
	recB, err := k.get(k.tenant.ID, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		st   privacy.Stored
	}{
		// A's name under B's key (moved to another person).
		{"another subject", privacy.Stored{SubjectID: b, Wrapped: recB.Stored.Wrapped, Values: map[string][]byte{"full_name": recA.Stored.Values["full_name"]}}},
		// A's notes as A's name (moved to another field).
		{"another field", privacy.Stored{SubjectID: a, Wrapped: recA.Stored.Wrapped, Values: map[string][]byte{"full_name": recA.Stored.Values["notes"]}}},
		// One bit flipped.
		{"tampered", privacy.Stored{SubjectID: a, Wrapped: recA.Stored.Wrapped, Values: map[string][]byte{"full_name": flip(recA.Stored.Values["full_name"])}}},
	} {
		if _, err := k.seal.Open(ctx, k.tenant.ID, &tc.st, []string{"full_name"}); !errors.Is(err, privacy.ErrDecrypt) {
			t.Errorf("%s: Open = %v, want ErrDecrypt", tc.name, err)
		}
	}
	// B's wrapped key stored as A's does not unwrap (the key is bound to its person).
	st := privacy.Stored{SubjectID: a, Wrapped: recB.Stored.Wrapped, Values: recA.Stored.Values}
	if _, err := k.seal.Open(ctx, k.tenant.ID, &st, []string{"full_name"}); err == nil {
		t.Error("a key moved to another subject opened")
	}
	// A's record under another tenant does not open.
	other := k.addTenant(t, "other")
	if _, err := k.seal.Open(ctx, other.ID, &recA.Stored, []string{"full_name"}); err == nil {
		t.Error("a record opened under another tenant")
	}
	// Moving the ciphertext in the database gives the same failure through the store.
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE subject_values SET ciphertext = (SELECT ciphertext FROM subject_values WHERE subject_id = $1 AND field = 'full_name')
		WHERE subject_id = $2 AND field = 'full_name'`, a, b); err != nil {
		t.Fatal(err)
	}
	recB, err = k.get(k.tenant.ID, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.seal.Open(ctx, k.tenant.ID, &recB.Stored, []string{"full_name"}); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("moved in the database: Open = %v, want ErrDecrypt", err)
	}
}

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}

func testSubjectSearchExact(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	a := k.create(t, k.tenant.ID, ada)
	k.create(t, k.tenant.ID, map[string]string{"full_name": "Ada Lovelace-Byron", "phone": "+44 20 7946 0959"})
	for _, tc := range []struct {
		field, value string
		want         []string
	}{
		{"full_name", "Ada Lovelace", []string{a}},
		{"full_name", "  ADA   lovelace ", []string{a}}, // case and white space fold
		{"full_name", "Ada Lovelac", nil},               // a prefix is another value
		{"full_name", "Ada", nil},
		{"full_name", "Ádà Lovelace", nil}, // accents count
		{"phone", "+44 (20) 7946-0958", []string{a}},
		{"phone", "+442079460958", []string{a}},
		{"phone", "2079460958", nil}, // without the country code: another number
		{"phone", "+44207946095", nil},
		{"national_id", "ab947381", []string{a}},
		{"national_id", "AB-947-381", []string{a}},
		{"national_id", "AB94738", nil},
		{"date_of_birth", "1815-12-10", []string{a}},
		{"date_of_birth", "1815-12-11", nil},
	} {
		got := k.search(t, k.tenant.ID, tc.field, tc.value)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("search %s = %q: %v, want %v", tc.field, tc.value, got, tc.want)
		}
	}
	// A field that is not searchable is refused by the store, whatever digests it is given.
	f, _ := k.schema.Field("notes")
	if _, err := k.seal.SearchDigests(ctx, k.tenant.ID, f, "x"); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("SearchDigests on notes: %v", err)
	}
	err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).Search(ctx, "notes", []privacy.Digest{{KeyID: 1, Sum: make([]byte, 32)}}, 0)
		return err
	})
	mustCode(t, err, tutela.EINVALID)
	// After a rotation of the blind-index keyset, values indexed under the old key stay findable,
	// and new ones are indexed under the new primary.
	if _, err := k.vault.Rotate(ctx, k.tenant.ID, vault.PurposeBlindIndex); err != nil {
		t.Fatal(err)
	}
	c := k.create(t, k.tenant.ID, map[string]string{"full_name": "Mary Somerville"})
	if got := k.search(t, k.tenant.ID, "full_name", "ada lovelace"); !slices.Equal(got, []string{a}) {
		t.Errorf("after rotation: %v, want [%s]", got, a)
	}
	if got := k.search(t, k.tenant.ID, "full_name", "MARY SOMERVILLE"); !slices.Equal(got, []string{c}) {
		t.Errorf("new key: %v, want [%s]", got, c)
	}
}

// testSubjectSearchNeedsNoDataKey proves a search decrypts nothing: with the tenant's person_keys
// keyset destroyed (no subject's data can be opened any more), it still finds by digest, and the
// store's Search is given digests only, never a key or a value.
func testSubjectSearchNoKey(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	a := k.create(t, k.tenant.ID, ada)
	if err := k.vault.Destroy(ctx, k.tenant.ID, vault.PurposePersonKeys); err != nil {
		t.Fatal(err)
	}
	rec, err := k.get(k.tenant.ID, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.seal.Open(ctx, k.tenant.ID, &rec.Stored, []string{"national_id"}); err == nil {
		t.Fatal("data opened without the person_keys keyset")
	}
	if got := k.search(t, k.tenant.ID, "national_id", "AB 947 381"); !slices.Equal(got, []string{a}) {
		t.Fatalf("search = %v, want [%s]", got, a)
	}
	if got := k.search(t, k.tenant.ID, "national_id", "ZZ 999"); len(got) != 0 {
		t.Fatalf("miss = %v", got)
	}
}

func testSubjectUpdate(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	now := k.db.Now()
	a := k.create(t, k.tenant.ID, map[string]string{"full_name": "Ada Lovelace", "phone": "+44 20 7946 0958"})
	subj := func() *sqlstore.Subject {
		rec, err := k.get(k.tenant.ID, a)
		if err != nil {
			t.Fatal(err)
		}
		return &rec.Subject
	}
	if got := subj().RetainUntil; got == nil || !got.Equal(now.AddDate(0, 0, 365)) {
		t.Fatalf("retain_until = %v, want now + 365 days (the longest retention held)", got)
	}
	rec, _ := k.get(k.tenant.ID, a)
	name := "Augusta Ada King"
	sealed, err := k.seal.SealUpdate(ctx, k.tenant.ID, a, rec.Stored.Wrapped, k.schema, map[string]*string{"full_name": &name, "phone": nil})
	if err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(k.tenant.ID).Update(ctx, sealed); return err })
	if got := k.read(t, k.tenant.ID, a); !maps2Equal(got, map[string]string{"full_name": name}) {
		t.Fatalf("after update: %v", got)
	}
	if got := k.search(t, k.tenant.ID, "full_name", "Ada Lovelace"); len(got) != 0 {
		t.Errorf("old value still indexed: %v", got)
	}
	if got := k.search(t, k.tenant.ID, "phone", "+44 20 7946 0958"); len(got) != 0 {
		t.Errorf("cleared value still indexed: %v", got)
	}
	if got := k.search(t, k.tenant.ID, "full_name", name); !slices.Equal(got, []string{a}) {
		t.Errorf("new value: %v", got)
	}
	var details string
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE action = 'subject.update'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, `"set":["full_name"]`) || !strings.Contains(details, `"cleared":["phone"]`) || strings.Contains(details, "Augusta") {
		t.Errorf("subject.update details = %s", details)
	}
	// A change sealed against a schema that has since changed is refused.
	next := slices.DeleteFunc(slices.Clone(k.schema), func(f privacy.Field) bool { return f.Name == "phone" })
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(k.tenant.ID).Put(ctx, next) })
	phone := "+41 79 000 00 00"
	stale, err := k.seal.SealUpdate(ctx, k.tenant.ID, a, rec.Stored.Wrapped, k.schema, map[string]*string{"phone": &phone})
	if err != nil {
		t.Fatal(err)
	}
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(k.tenant.ID).Update(ctx, stale); return err })
	mustCode(t, err, tutela.ECONFLICT)
}

func testSubjectHoldErase(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	ak := newAuditKit(t, k.db)
	a := k.create(t, k.tenant.ID, ada)
	b := k.create(t, k.tenant.ID, map[string]string{"full_name": "Grace Hopper"})
	subjects := func(tx *sqlstore.Tx) sqlstore.Subjects { return tx.Subjects(k.tenant.ID) }
	var hold *sqlstore.Hold
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		hold, err = subjects(tx).PlaceHold(ctx, a, "litigation 2026-114")
		return err
	})
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := subjects(tx).PlaceHold(ctx, a, " ")
		return err
	})
	mustCode(t, err, tutela.EINVALID)
	erase := func(id, reason string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := subjects(tx).Erase(ctx, id, reason, "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
			return err
		})
	}
	err = erase(a, "the subject asked")
	mustCode(t, err, tutela.ECONFLICT)
	if !strings.Contains(tutela.ErrorMessage(err), "litigation 2026-114") {
		t.Errorf("hold refusal %q does not name the hold's reason", tutela.ErrorMessage(err))
	}
	if n := countRows(t, k.db, "erasures"); n != 0 {
		t.Fatalf("refused erasure wrote %d ledger rows", n)
	}
	k.read(t, k.tenant.ID, a) // still readable
	// Without a reason nothing changes either.
	mustCode(t, erase(b, ""), tutela.EINVALID)
	k.read(t, k.tenant.ID, b)

	update(t, k.db, func(tx *sqlstore.Tx) error { _, err := subjects(tx).ReleaseHold(ctx, a, hold.ID); return err })
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := subjects(tx).ReleaseHold(ctx, a, hold.ID); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	keysBefore := countRows(t, k.db, "person_keys")
	if err := erase(a, "the subject asked"); err != nil {
		t.Fatal(err)
	}
	// Gone: the store says so, the key row and data rows are gone, the ledger has it.
	_, err = k.get(k.tenant.ID, a)
	if !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("read of erased subject: %v, want ErrSubjectErased", err)
	}
	if n := countRows(t, k.db, "person_keys"); n != keysBefore-1 {
		t.Fatalf("person_keys rows %d → %d", keysBefore, n)
	}
	for _, table := range []string{"subject_values", "subject_index"} {
		var n int
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE subject_id = $1`, a).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s rows of the erased subject: %d (%v)", table, n, err)
		}
	}
	if got := k.search(t, k.tenant.ID, "full_name", "Ada Lovelace"); len(got) != 0 {
		t.Fatalf("erased subject found by search: %v", got)
	}
	mustCode(t, erase(a, "again"), tutela.ENOTFOUND)
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := subjects(tx).PlaceHold(ctx, a, "late"); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	var holds []*sqlstore.Hold
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { holds, err = subjects(tx).Holds(ctx, a); return err }); err != nil {
		t.Fatal(err)
	}
	if len(holds) != 1 || holds[0].ReleasedAt == nil {
		t.Fatalf("holds after erasure = %+v", holds)
	}
	// The other subject is untouched; the audit log records the erasure without content and
	// still verifies.
	k.read(t, k.tenant.ID, b)
	for _, d := range rawBlobs(t, k.db, `SELECT canonical FROM audit_events`) {
		for _, v := range ada {
			if bytes.Contains(d, []byte(v)) {
				t.Fatalf("audit details hold an erased value: %s", d)
			}
		}
	}
	var erasures int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE action = 'privacy.erase' AND target_id = $1`, a).Scan(&erasures); err != nil || erasures != 1 {
		t.Fatalf("privacy.erase events = %d (%v)", erasures, err)
	}
	for ak.step(t) > 0 {
	}
	mustVerifyOK(t, ak.verify(t, true), int64(countRows(t, k.db, "audit_events")))
}

// testSubjectSchemaPutAuthorized: PutAuthorized shows the authorizer every change (added,
// changed, removed) against the stored schema, and a refusal changes nothing and audits nothing.
func testSubjectSchemaPutAuthorized(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "acme")
	next := slices.Clone(k.schema)
	next[3].Classification = authz.Yellow // national_id lowered
	next = slices.DeleteFunc(next, func(f privacy.Field) bool { return f.Name == "notes" })
	next = append(next, privacy.Field{Name: "alias", Type: privacy.FieldName, Classification: authz.Green, Purposes: []string{"aid"},
		RetentionDays: 30, Mask: authz.MaskFull})
	events := countRows(t, k.db, "audit_events")
	refused := tutela.Errorf(tutela.EFORBIDDEN, "not cleared")
	var seen []string
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.SubjectSchema(k.tenant.ID).PutAuthorized(ctx, next, func(cs []privacy.FieldChange) error {
			for _, c := range cs {
				seen = append(seen, c.Name+":"+string(c.Class()))
			}
			return refused
		})
	})
	if !errors.Is(err, refused) {
		t.Fatalf("PutAuthorized = %v, want the authorizer's refusal", err)
	}
	if want := []string{"alias:GREEN", "national_id:RED", "notes:RED"}; !slices.Equal(seen, want) {
		t.Fatalf("authorizer saw %v, want %v", seen, want)
	}
	var got privacy.Schema
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { got, err = tx.SubjectSchema(k.tenant.ID).Get(ctx); return err })
	if nid, _ := got.Field("national_id"); nid.Classification != authz.Red || len(got) != len(k.schema) {
		t.Fatalf("refused change was written: %+v", got)
	}
	if n := countRows(t, k.db, "audit_events"); n != events {
		t.Fatalf("refused schema change wrote %d audit events", n-events)
	}
}
