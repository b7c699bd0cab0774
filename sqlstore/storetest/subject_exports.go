package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// SubjectExportTests is the sealed-export part of the conformance suite (privacy vault, issue
// 13): an export is sealed under its subject's key, bound to its own row, expires, and erasure
// makes it unreadable, copies of its ciphertext included.
var SubjectExportTests = []Test{
	{"SubjectExportSealedBoundExpiresAndIsShredded", testSubjectExport},
	{"SubjectExportServedToItsMakerOnlyAndBoundToItsClearance", testSubjectExportMaker},
}

// maker is the principal the kit's exports are made by.
var maker = sqlstore.ExportMaker{Kind: tutela.PrincipalUser, ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}

// exportKit is a subjectKit whose store clock the test moves.
func newExportKit(t *testing.T, open Opener) (*subjectKit, *fakeClock) {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVault(t, db, newKEK(t))
	k := &subjectKit{db: db, vault: v, seal: privacy.NewSubjects(v), schema: testSchema()}
	k.tenant = k.addTenant(t, "acme")
	return k, clock
}

// sealExport seals doc as a new export of subject id and stores it (ttl 0: the default).
func (k *subjectKit) sealExport(t *testing.T, id string, doc []byte, ttl time.Duration) (*sqlstore.SubjectExport, []byte) {
	t.Helper()
	rec, err := k.get(k.tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if ttl == 0 {
		ttl = sqlstore.DefaultExportTTL
	}
	nx := &sqlstore.NewExport{ID: tutela.NewID(), SubjectID: id, TTL: ttl, Maker: maker, Purpose: "case_management",
		Class: authz.Red, Fields: []string{"full_name", "notes"}}
	nx.Ciphertext, err = k.seal.SealExport(ctx, k.tenant.ID, &rec.Stored, nx.Binding(), doc)
	if err != nil {
		t.Fatal(err)
	}
	var x *sqlstore.SubjectExport
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		x, err = tx.Subjects(k.tenant.ID).CreateExport(ctx, nx)
		return err
	})
	return x, nx.Ciphertext
}

// openExport reads an export through the store as its maker and opens it as the download does.
func (k *subjectKit) openExport(tenantID, subjectID, exportID string) ([]byte, error) {
	return k.openExportAs(tenantID, subjectID, exportID, maker)
}

func (k *subjectKit) openExportAs(tenantID, subjectID, exportID string, by sqlstore.ExportMaker) ([]byte, error) {
	x, err := k.storedExport(tenantID, subjectID, exportID, by)
	if err != nil {
		return nil, err
	}
	return k.seal.OpenExport(ctx, tenantID, x.SubjectID, x.Wrapped, x.Binding(), x.Ciphertext)
}

func (k *subjectKit) storedExport(tenantID, subjectID, exportID string, by sqlstore.ExportMaker) (*sqlstore.StoredExport, error) {
	var x *sqlstore.StoredExport
	err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		x, err = tx.Subjects(tenantID).Export(ctx, subjectID, exportID, by)
		return err
	})
	return x, err
}

func testSubjectExport(t *testing.T, open Opener) {
	k, clock := newExportKit(t, open)
	a := k.create(t, k.tenant.ID, ada)
	b := k.create(t, k.tenant.ID, map[string]string{"full_name": "Grace Hopper"})
	doc, err := json.Marshal(map[string]any{"values": ada})
	if err != nil {
		t.Fatal(err)
	}
	x1, ct1 := k.sealExport(t, a, doc, 0)
	if want := clock.Now().UTC().Truncate(time.Microsecond).Add(24 * time.Hour); !x1.ExpiresAt.Equal(want) {
		t.Fatalf("expires_at = %v, want %v (24 h)", x1.ExpiresAt, want)
	}
	got, err := k.openExport(k.tenant.ID, a, x1.ID)
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("open export: %q, %v", got, err)
	}
	// The stored bytes hold no value in clear.
	for _, blob := range rawBlobs(t, k.db, `SELECT ciphertext FROM subject_exports`) {
		for _, v := range []string{"Lovelace", "AB-947 381", "Marylebone", "1815-12-10", "7946 0958"} {
			if bytes.Contains(blob, []byte(v)) {
				t.Fatalf("subject_exports holds %q in clear", v)
			}
		}
	}
	// A TTL out of bounds is refused.
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).CreateExport(ctx, &sqlstore.NewExport{ID: tutela.NewID(), SubjectID: a, Ciphertext: ct1, TTL: 59 * time.Second,
			Maker: maker, Purpose: "case_management", Class: authz.Red})
		return err
	})
	mustCode(t, err, tutela.EINVALID)

	// Moved: a's ciphertext in another export row of a, or in an export row of b, does not open.
	x2, _ := k.sealExport(t, a, []byte(`{}`), 0)
	xb, _ := k.sealExport(t, b, []byte(`{}`), 0)
	for _, id := range []string{x2.ID, xb.ID} {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE subject_exports SET ciphertext = $1 WHERE id = $2`, ct1, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.openExport(k.tenant.ID, a, x2.ID); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("ciphertext moved to another export row: %v, want ErrDecrypt", err)
	}
	if _, err := k.openExport(k.tenant.ID, b, xb.ID); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("ciphertext moved to another subject's export: %v, want ErrDecrypt", err)
	}
	// An export is found only under its own subject and tenant.
	other := k.addTenant(t, "other")
	for _, c := range []struct{ tenant, subject string }{{other.ID, a}, {k.tenant.ID, b}} {
		if _, err := k.openExport(c.tenant, c.subject, x1.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("export of a read as (%s, %s): %v, want not found", c.tenant, c.subject, err)
		}
	}

	// Expiry: a 60 s export is served until then, refused after, still listed.
	x3, _ := k.sealExport(t, a, doc, time.Minute)
	if _, err := k.openExport(k.tenant.ID, a, x3.ID); err != nil {
		t.Fatalf("fresh short export: %v", err)
	}
	clock.Add(time.Minute)
	if _, err := k.openExport(k.tenant.ID, a, x3.ID); !errors.Is(err, sqlstore.ErrExportExpired) {
		t.Fatalf("expired export: %v, want ErrExportExpired", err)
	}
	var list []*sqlstore.SubjectExport
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		list, err = tx.Subjects(k.tenant.ID).Exports(ctx, a, "", 0)
		return err
	}); err != nil || len(list) != 3 {
		t.Fatalf("exports of a: %d, %v", len(list), err)
	}

	// Erasure: the download says erased, the rows are gone, and the ciphertext read before
	// opens with nothing left in the database: not the subject's key (gone), nor any other.
	keys := rawKeys(t, k)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).Erase(ctx, a, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	if _, err := k.openExport(k.tenant.ID, a, x1.ID); !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("export of an erased subject: %v, want ErrSubjectErased", err)
	}
	var n int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM subject_exports WHERE subject_id = $1`, a).Scan(&n); err != nil || n != 0 {
		t.Fatalf("export rows of the erased subject: %d (%v)", n, err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		w, err := tx.PersonKeys(k.tenant.ID).Get(ctx, a)
		if err != nil {
			return err
		}
		if _, err := k.seal.OpenExport(ctx, k.tenant.ID, a, w, privacy.ExportBinding{ExportID: x1.ID, MakerKind: maker.Kind,
			MakerID: maker.ID, Purpose: "case_management", Class: string(authz.Red)}, ct1); !errors.Is(err, privacy.ErrErased) {
			t.Errorf("erased subject's export with its stored key: %v, want ErrErased", err)
		}
		return nil
	})
	left := rawKeys(t, k)
	if _, ok := left[a]; ok || len(left) != len(keys)-1 {
		t.Fatalf("person keys %d → %d, erased one still there: %v", len(keys), len(left), ok)
	}
	for person, w := range left {
		for _, as := range []string{a, person} {
			if pt, err := k.seal.OpenExport(ctx, k.tenant.ID, as, w, privacy.ExportBinding{ExportID: x1.ID, MakerKind: maker.Kind,
				MakerID: maker.ID, Purpose: "case_management", Class: string(authz.Red)}, ct1); err == nil {
				t.Fatalf("erased export opened with %s's key as %s: %q", person, as, pt)
			}
		}
	}
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).CreateExport(ctx, &sqlstore.NewExport{ID: tutela.NewID(), SubjectID: a, Ciphertext: ct1, TTL: time.Hour,
			Maker: maker, Purpose: "case_management", Class: authz.Red})
		return err
	})
	if !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("export of an erased subject created: %v", err)
	}
	if got, err := k.openExport(k.tenant.ID, b, xb.ID); err == nil || bytes.Equal(got, doc) {
		t.Fatal("b's tampered export opened")
	}
	// A restore re-applying a published erasure shreds the key and rows but leaves the subject
	// row as the backup had it: the exports still answer erased, not merely not found.
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.ReapplyErasure(ctx, sqlstore.LedgerEntry{ID: tutela.NewID(), TenantID: k.tenant.ID, PersonID: b,
			Kind: sqlstore.PersonSubject, Trigger: sqlstore.ErasureRequest, ErasedAt: clock.Now()})
		return err
	})
	if _, err := k.openExport(k.tenant.ID, b, xb.ID); !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("export of a subject erased by the ledger: %v, want ErrSubjectErased", err)
	}
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(k.tenant.ID).Exports(ctx, b, "", 0); return err }); !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("export list of a subject erased by the ledger: %v", err)
	}
}

// An export is served to its maker alone, with the purpose and classification it was made at,
// and its ciphertext is bound to them: a row rewritten in the database to name another maker,
// a lower classification or another purpose is refused or does not open.
func testSubjectExportMaker(t *testing.T, open Opener) {
	k, _ := newExportKit(t, open)
	a := k.create(t, k.tenant.ID, ada)
	doc := []byte(`{"values":{"national_id":"AB-947 381"}}`)
	x, _ := k.sealExport(t, a, doc, 0)
	st, err := k.storedExport(k.tenant.ID, a, x.ID, maker)
	if err != nil {
		t.Fatal(err)
	}
	if st.Maker != maker || st.Purpose != "case_management" || st.Class != authz.Red || st.CreatedBy != maker.ID {
		t.Fatalf("stored export: maker %+v purpose %q class %q created_by %q", st.Maker, st.Purpose, st.Class, st.CreatedBy)
	}
	if got, err := k.openExport(k.tenant.ID, a, x.ID); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("maker's download: %q, %v", got, err)
	}
	// Anyone else, a service account with the maker's ID included, finds nothing.
	for _, by := range []sqlstore.ExportMaker{
		{Kind: tutela.PrincipalUser, ID: tutela.NewID()},
		{Kind: tutela.PrincipalServiceAccount, ID: maker.ID},
		{Kind: "", ID: maker.ID},
		{Kind: tutela.PrincipalUser, ID: ""},
	} {
		if _, err := k.openExportAs(k.tenant.ID, a, x.ID, by); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("export read as %+v: %v, want not found", by, err)
		}
	}
	// An export without maker, purpose or classification is refused: it could never be
	// re-authorized at download.
	rec, err := k.get(k.tenant.ID, a)
	if err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*sqlstore.NewExport){
		"no maker":           func(x *sqlstore.NewExport) { x.Maker = sqlstore.ExportMaker{} },
		"maker of no kind":   func(x *sqlstore.NewExport) { x.Maker.Kind = "robot" },
		"no purpose":         func(x *sqlstore.NewExport) { x.Purpose = "" },
		"no classification":  func(x *sqlstore.NewExport) { x.Class = "" },
		"bad classification": func(x *sqlstore.NewExport) { x.Class = "PURPLE" },
	} {
		nx := &sqlstore.NewExport{ID: tutela.NewID(), SubjectID: a, TTL: time.Hour, Maker: maker, Purpose: "case_management", Class: authz.Red}
		mut(nx)
		if nx.Ciphertext, err = k.seal.SealExport(ctx, k.tenant.ID, &rec.Stored, nx.Binding(), doc); err != nil {
			t.Fatal(err)
		}
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(k.tenant.ID).CreateExport(ctx, nx); return err })
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("export with %s: %v, want invalid", name, err)
		}
	}
	// Rewritten in the database: another maker is served nothing it can open; a lower
	// classification or another purpose does not open for the maker either.
	other := sqlstore.ExportMaker{Kind: tutela.PrincipalUser, ID: tutela.NewID()}
	for _, c := range []struct {
		set  string
		arg  any
		as   sqlstore.ExportMaker
		desc string
	}{
		{"created_by = $1", other.ID, other, "handed to another user"},
		{"classification = $1", string(authz.Green), maker, "lowered to GREEN"},
		{"purpose = $1", "billing", maker, "another purpose"},
	} {
		x, _ := k.sealExport(t, a, doc, 0)
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE subject_exports SET `+c.set+` WHERE id = $2`, c.arg, x.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := k.openExportAs(k.tenant.ID, a, x.ID, c.as); !errors.Is(err, privacy.ErrDecrypt) {
			t.Errorf("export %s: %v, want ErrDecrypt", c.desc, err)
		}
	}
	// A row from before makers were recorded is served to nobody.
	x2, _ := k.sealExport(t, a, doc, 0)
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE subject_exports SET created_by_kind = '', purpose = '', classification = '' WHERE id = $1`, x2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := k.openExport(k.tenant.ID, a, x2.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Errorf("export without a recorded maker: %v, want not found", err)
	}
}

// rawKeys reads every wrapped person key the database holds, as an attacker with the database
// and the vault would.
func rawKeys(t *testing.T, k *subjectKit) map[string][]byte {
	t.Helper()
	rows, err := k.db.SQL().QueryContext(ctx, `SELECT person_id, wrapped FROM person_keys WHERE tenant_id = $1`, k.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var w []byte
		if err := rows.Scan(&id, &w); err != nil {
			t.Fatal(err)
		}
		out[id] = w
	}
	return out
}
