package storetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// PrivacyRewrapTests: key rotation of the privacy vault's keysets (person_keys, blind_index,
// tokens, personal_data) works end to end: rotate, rewrap, retire, and everything still opens,
// is still found and keeps its tokens.
var PrivacyRewrapTests = []Test{
	{"PrivacyKeysetsRotateRewrapRetire", testPrivacyRewrap},
	{"PrivacyRewrapResumesAfterCompositeCursor", testPrivacyRewrapResume},
}

// privacyData is one tenant's worth of everything the privacy keysets protect.
type privacyData struct {
	kit        *subjectKit
	tk         privacy.Tokenizer
	subjects   map[string]map[string]string // subject ID → values
	users      map[string]string            // user ID → e-mail
	personTok  map[string]string            // token → value, held by a subject
	fpeTok     map[string]string            // format-preserving token → value, held by a subject
	tenantTok  map[string]string            // token → value, held by the tenant
	loginCount int
}

func newPrivacyData(t *testing.T, open Opener) *privacyData {
	t.Helper()
	k := newSubjectKit(t, open, "rewrap-a")
	k.db.SetVault(k.vault) // users' data, and the rewrap sources, use the store's vault
	d := &privacyData{kit: k, tk: privacy.Tokenizer{Vault: k.vault}, subjects: map[string]map[string]string{},
		users: map[string]string{}, personTok: map[string]string{}, fpeTok: map[string]string{}, tenantTok: map[string]string{}}
	tn := k.tenant.ID
	for _, vals := range []map[string]string{
		{"full_name": "Élodie Durand", "phone": "+41 79 123 45 67", "national_id": "756-1234"},
		{"full_name": "Omar Haddad", "date_of_birth": "1990-04-02", "national_id": "JO 99812"},
		{"full_name": "Lina Nasser", "phone": "+962 79 555 0101"},
	} {
		d.subjects[k.create(t, tn, vals)] = vals
	}
	for _, email := range []string{"Ada.Lovelace@Example.org", "grace@example.net"} {
		d.users[createUser(t, k.db, tn, email).ID] = email
	}
	if err := d.tk.Prepare(ctx, tn); err != nil {
		t.Fatal(err)
	}
	ids := slices.Sorted(maps.Keys(d.subjects))
	tokenize := func(q sqlstore.TokenizeRequest) []string {
		var toks []string
		update(t, k.db, func(tx *sqlstore.Tx) (err error) {
			toks, err = tx.TokenVault(tn, d.tk).Tokenize(ctx, q)
			return err
		})
		return toks
	}
	for i, id := range ids[:2] {
		v := []string{"+41791234567", "+962795550101"}[i]
		d.personTok[tokenize(sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, PersonID: id, Values: []string{v}})[0]] = v
		f := []string{"AB-123456", "CD-654321"}[i]
		d.fpeTok[tokenize(sqlstore.TokenizeRequest{Field: "passport", Kind: privacy.FormatPreserving, PersonID: id, Values: []string{f}})[0]] = f
	}
	d.tenantTok[tokenize(sqlstore.TokenizeRequest{Field: "case_ref", Kind: privacy.Deterministic, Values: []string{"CASE-2026-0042"}})[0]] = "CASE-2026-0042"
	// A failed sign-in with no user: sealed under the tenant's personal_data keyset.
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tn, IP: "203.0.113.9", UserAgent: "curl/8", Result: "failure", Reason: "unknown_user"})
	})
	d.loginCount = 1
	return d
}

// sources are the privacy rewrap sources by purpose, as cmd/tutela lists them.
func privacySources(db *sqlstore.DB) map[string][]vault.RewrapSource {
	return map[string][]vault.RewrapSource{
		vault.PurposePersonKeys:   {sqlstore.PersonKeysSource(db)},
		vault.PurposeBlindIndex:   {sqlstore.SubjectIndexSource(db), sqlstore.UserEmailSource(db)},
		vault.PurposeTokens:       {sqlstore.TokenDigestSource(db)},
		vault.PurposePersonalData: sqlstore.PersonalDataSources(db),
	}
}

var privacyPurposes = []string{vault.PurposePersonKeys, vault.PurposeBlindIndex, vault.PurposeTokens, vault.PurposePersonalData}

func testPrivacyRewrap(t *testing.T, open Opener) {
	d := newPrivacyData(t, open)
	k, v, tn := d.kit, d.kit.vault, d.kit.tenant.ID
	// A subject erased before the rotation: their rows and the token only they held are gone,
	// so nothing of theirs is left to rewrap (or blocks retirement).
	lone := createTenantSubjectWithToken(t, d)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, lone, "request", "GDPR Art. 17", sqlstore.ErasureRequest)
		return err
	})
	tokensBefore := countRows(t, k.db, "tokens")

	for _, p := range privacyPurposes {
		if _, err := v.Rotate(ctx, tn, p); err != nil {
			t.Fatal(err)
		}
	}
	srcs := privacySources(k.db)
	// Before rewrap every purpose has old ciphertexts or digests: `keys retire` refuses.
	want := map[string]int{
		"person_keys":        len(d.subjects) + len(d.users),
		"subject_index":      0, // counted below: the searchable values held
		"users.email_digest": len(d.users),
		"tokens":             len(d.personTok) + len(d.fpeTok) + len(d.tenantTok),
		"login_history.ip":   d.loginCount, "login_history.user_agent": d.loginCount,
		"security_events.ip": 0, "token_values": len(d.tenantTok),
	}
	for _, vals := range d.subjects {
		for f := range vals {
			if fd, _ := k.schema.Field(f); fd.Searchable {
				want["subject_index"]++
			}
		}
	}
	// Right after the rotation every node may still look up with the old key alone: refused,
	// and nothing changes (Outdated still counts every row below).
	for _, p := range privacyPurposes {
		for _, src := range srcs[p] {
			if _, err := v.Rewrap(ctx, src, vault.RewrapOptions{}); want[src.Name()] > 0 && !errors.Is(err, vault.ErrRotationUnsettled) {
				t.Fatalf("rewrap %s right after the rotation: %v, want ErrRotationUnsettled", src.Name(), err)
			}
		}
		if _, err := v.Retire(ctx, tn, p); !errors.Is(err, vault.ErrRotationUnsettled) {
			t.Fatalf("retire %s right after the rotation: %v, want ErrRotationUnsettled", p, err)
		}
	}
	settle(k.clock, v)
	for p, list := range srcs {
		for _, src := range list {
			n, err := v.Outdated(ctx, src, tn, p)
			if err != nil || n != want[src.Name()] {
				t.Fatalf("%s before rewrap: Outdated = %d, %v; want %d", src.Name(), n, err, want[src.Name()])
			}
		}
	}
	events := countRows(t, k.db, "audit_events WHERE action = 'key.rewrap'")
	for _, p := range privacyPurposes { // person_keys first, as cmd/tutela orders them
		for _, src := range srcs[p] {
			pr, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 2})
			if err != nil || pr.Rewrapped != want[src.Name()] {
				t.Fatalf("rewrap %s: %+v, %v; want %d rewrapped", src.Name(), pr, err, want[src.Name()])
			}
			if pr, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 2}); err != nil || pr.Rewrapped != 0 {
				t.Fatalf("second rewrap of %s rewrote %d rows, %v", src.Name(), pr.Rewrapped, err)
			}
			if n, err := v.Outdated(ctx, src, tn, p); err != nil || n != 0 {
				t.Fatalf("%s after rewrap: Outdated = %d, %v", src.Name(), n, err)
			}
		}
	}
	if n := countRows(t, k.db, "audit_events WHERE action = 'key.rewrap'"); n <= events {
		t.Fatal("rewrap recorded no key.rewrap audit event")
	}
	for _, p := range privacyPurposes {
		ks, err := v.Retire(ctx, tn, p)
		if err != nil || len(ks.Keys) != 1 {
			t.Fatalf("retire %s: %v", p, err)
		}
	}
	v.Invalidate()
	d.checkAllStillWork(t)
	if n := countRows(t, k.db, "tokens"); n != tokensBefore {
		t.Fatalf("tokens %d → %d: tokenizing existing values after the rotation made new tokens", tokensBefore, n)
	}
}

// createTenantSubjectWithToken makes a subject holding a token no one else holds.
func createTenantSubjectWithToken(t *testing.T, d *privacyData) string {
	t.Helper()
	tn := d.kit.tenant.ID
	id := d.kit.create(t, tn, map[string]string{"full_name": "Erased Person"})
	update(t, d.kit.db, func(tx *sqlstore.Tx) error {
		_, err := tx.TokenVault(tn, d.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic,
			PersonID: id, Values: []string{"+33612345678"}})
		return err
	})
	return id
}

// checkAllStillWork: subjects open and are found by every searchable value, users are found by
// e-mail in any letter case, tokens detokenize and tokenizing a value again gives its token.
func (d *privacyData) checkAllStillWork(t *testing.T) {
	t.Helper()
	k, tn := d.kit, d.kit.tenant.ID
	for id, vals := range d.subjects {
		got := k.read(t, tn, id)
		if !maps.Equal(got, vals) {
			t.Fatalf("subject %s reads %v after rotation, want %v", id, got, vals)
		}
		for f, val := range vals {
			fd, _ := k.schema.Field(f)
			if !fd.Searchable {
				continue
			}
			ds, err := k.seal.SearchDigests(ctx, tn, fd, val)
			if err != nil || len(ds) != 1 {
				t.Fatalf("search digests for %s: %d, %v (want one key left)", f, len(ds), err)
			}
			var ids []string
			if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
				ids, err = tx.Subjects(tn).Search(ctx, f, ds, 10)
				return err
			}); err != nil || !slices.Contains(ids, id) {
				t.Fatalf("search %s after rotation: %v, %v; want %s", f, ids, err, id)
			}
		}
	}
	for id, email := range d.users {
		for _, e := range []string{email, strings.ToUpper(email)} {
			var got string
			if err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
				u, err := tx.Users(tn).ByEmail(ctx, e)
				if err == nil {
					got = u.ID
				}
				return err
			}); err != nil || got != id {
				t.Fatalf("ByEmail(%q) after rotation: %q, %v; want %s", e, got, err, id)
			}
		}
	}
	check := func(field string, kind privacy.TokenKind, toks map[string]string, person bool) {
		t.Helper()
		for tok, val := range toks {
			var out []sqlstore.Detokenized
			if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
				out, err = tx.TokenVault(tn, d.tk).Detokenize(ctx, []sqlstore.TokenRef{{Field: field, Token: tok}})
				return err
			}); err != nil || !out[0].Found || out[0].Value != val {
				t.Fatalf("detokenize %s after rotation: %+v, %v", field, out, err)
			}
			q := sqlstore.TokenizeRequest{Field: field, Kind: kind, Values: []string{val}}
			if person {
				q.PersonID = d.holder(t, tok)
			}
			var again []string
			update(t, k.db, func(tx *sqlstore.Tx) (err error) {
				again, err = tx.TokenVault(tn, d.tk).Tokenize(ctx, q)
				return err
			})
			if again[0] != tok {
				t.Fatalf("tokenizing a %s value again after rotation gave another token", field)
			}
		}
	}
	check("phone", privacy.Deterministic, d.personTok, true)
	check("passport", privacy.FormatPreserving, d.fpeTok, true)
	check("case_ref", privacy.Deterministic, d.tenantTok, false)
	var hist []*sqlstore.LoginRecord
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		hist, err = tx.LoginHistory(ctx, tn, "", 10)
		return err
	}); err != nil || len(hist) != d.loginCount || hist[0].IP != "203.0.113.9" || hist[0].UserAgent != "curl/8" {
		t.Fatalf("login history after personal_data rotation: %v", err)
	}
}

func (d *privacyData) holder(t *testing.T, tok string) string {
	t.Helper()
	var person string
	if err := d.kit.db.SQL().QueryRowContext(ctx, `SELECT CAST(v.person_id AS TEXT) FROM token_values v JOIN tokens t ON t.id = v.token_id
		WHERE t.token = $1 AND v.person_id IS NOT NULL`, tok).Scan(&person); err != nil {
		t.Fatal(err)
	}
	return person
}

// An interrupted rewrap resumed with --after (a composite cursor for subject_index and
// person_keys) does the rest; a malformed cursor is refused, not read as "from the start".
func testPrivacyRewrapResume(t *testing.T, open Opener) {
	d := newPrivacyData(t, open)
	k, v, tn := d.kit, d.kit.vault, d.kit.tenant.ID
	for _, p := range []string{vault.PurposePersonKeys, vault.PurposeBlindIndex} {
		if _, err := v.Rotate(ctx, tn, p); err != nil {
			t.Fatal(err)
		}
	}
	settle(k.clock, v)
	for _, src := range []vault.RewrapSource{sqlstore.PersonKeysSource(k.db), sqlstore.SubjectIndexSource(k.db)} {
		purpose := vault.PurposePersonKeys
		if src.Name() == "subject_index" {
			purpose = vault.PurposeBlindIndex
		}
		total, _ := v.Outdated(ctx, src, tn, purpose)
		first, err := src.Next(ctx, "", 2)
		if err != nil || len(first) != 2 {
			t.Fatalf("%s: first batch %d, %v", src.Name(), len(first), err)
		}
		// Resumed after the first batch: everything but those two rows moves.
		pr, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 2, After: first[1].ID})
		if err != nil || pr.Rewrapped != total-2 {
			t.Fatalf("%s resumed: %+v, %v; want %d", src.Name(), pr, err, total-2)
		}
		if n, _ := v.Outdated(ctx, src, tn, purpose); n != 2 {
			t.Fatalf("%s after resumed rewrap: %d outdated, want the 2 before the cursor", src.Name(), n)
		}
		if _, err := v.Rewrap(ctx, src, vault.RewrapOptions{After: "not-a-cursor"}); err == nil {
			t.Fatalf("%s: a malformed cursor was accepted", src.Name())
		}
		if _, err := v.Rewrap(ctx, src, vault.RewrapOptions{}); err != nil {
			t.Fatal(err)
		}
		if n, _ := v.Outdated(ctx, src, tn, purpose); n != 0 {
			t.Fatalf("%s: %d outdated after a full run", src.Name(), n)
		}
	}
	// A digest whose value does not open is an error naming the row, never skipped: retiring
	// would leave it unfindable.
	if _, err := v.Rotate(ctx, tn, vault.PurposeBlindIndex); err != nil {
		t.Fatal(err)
	}
	settle(k.clock, v)
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE subject_values SET ciphertext = (SELECT ciphertext FROM subject_values o
		WHERE o.field = 'national_id' ORDER BY o.subject_id DESC LIMIT 1) WHERE field = 'national_id'
		AND subject_id = (SELECT o.subject_id FROM subject_values o WHERE o.field = 'national_id' ORDER BY o.subject_id LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	_, err := v.Rewrap(ctx, sqlstore.SubjectIndexSource(k.db), vault.RewrapOptions{})
	if !errors.Is(err, privacy.ErrDecrypt) {
		t.Fatalf("rewrap over a moved ciphertext: %v, want privacy.ErrDecrypt", err)
	}
}
