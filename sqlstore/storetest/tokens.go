package storetest

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// TokenTests is the token vault part of the suite: deterministic, random and format-preserving
// tokens, detokenization, tenant isolation, no plaintext at rest, erasure and minimization
// profiles.
var TokenTests = []Test{
	{"TokensDeterministicPerTenantAndField", testTokensDeterministic},
	{"TokensRandomDifferEachCall", testTokensRandom},
	{"TokensFormatPreservingKeepShape", testTokensFormatPreserving},
	{"TokensDetokenizeOnlyInOwnTenant", testTokensDetokenize},
	{"TokensStoreNoPlaintext", testTokensNoPlaintext},
	{"TokensErasureRemovesPersonsEntries", testTokensErasure},
	{"TokensNeedKeysetsFirst", testTokensNeedKeys},
	{"TokensConcurrentSameValueOneToken", testTokensConcurrent},
	{"TokensSurviveKeyRotation", testTokensRotation},
	{"TokensRefuseBadRequests", testTokensRefuse},
	{"TokensSubjectFieldNeedsPerson", testTokensSubjectFieldNeedsPerson},
	{"MinimizationProfilesPerTenantAndPurpose", testMinimizationProfiles},
}

type tokenEnv struct {
	db *sqlstore.DB
	tk privacy.Tokenizer
}

func newTokenEnv(t *testing.T, open Opener) (*tokenEnv, []*tutela.Tenant) {
	t.Helper()
	db := open(t, sqlstore.Options{})
	e := &tokenEnv{db: db, tk: privacy.Tokenizer{Vault: newVault(t, db, newKEK(t))}}
	var out []*tutela.Tenant
	for _, slug := range []string{"tok-a", "tok-b"} {
		tn := createTenant(t, db, slug)
		if err := e.tk.Prepare(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		out = append(out, tn)
	}
	return e, out
}

func (e *tokenEnv) tokenize(t *testing.T, tenantID string, q sqlstore.TokenizeRequest) []string {
	t.Helper()
	var toks []string
	update(t, e.db, func(tx *sqlstore.Tx) (err error) {
		toks, err = tx.TokenVault(tenantID, e.tk).Tokenize(ctx, q)
		return err
	})
	if len(toks) != len(q.Values) {
		t.Fatalf("%d tokens for %d values", len(toks), len(q.Values))
	}
	return toks
}

func (e *tokenEnv) detokenize(t *testing.T, tenantID string, refs ...sqlstore.TokenRef) []sqlstore.Detokenized {
	t.Helper()
	var out []sqlstore.Detokenized
	err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		out, err = tx.TokenVault(tenantID, e.tk).Detokenize(ctx, refs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *tokenEnv) newPerson(t *testing.T, tenantID string) string {
	t.Helper()
	id := tutela.NewID()
	_, wrapped, err := privacy.Keys{Vault: e.tk.Vault}.New(ctx, tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	update(t, e.db, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(tenantID).Create(ctx, id, sqlstore.PersonSubject, wrapped)
	})
	return id
}

func testTokensDeterministic(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a, b := tn[0].ID, tn[1].ID
	q := sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, Values: []string{"+962791234567", "+962791234568", "+962791234567"}}
	first := e.tokenize(t, a, q)
	again := e.tokenize(t, a, q)
	if first[0] != again[0] || first[1] != again[1] || first[0] != first[2] {
		t.Fatalf("deterministic tokens changed: %v then %v", first, again)
	}
	if first[0] == first[1] || !strings.HasPrefix(first[0], privacy.TokenPrefix) {
		t.Fatalf("two values share a token or lack the prefix: %v", first)
	}
	other := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone_alt", Kind: privacy.Deterministic, Values: q.Values[:1]})
	inB := e.tokenize(t, b, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, Values: q.Values[:1]})
	if other[0] == first[0] || inB[0] == first[0] {
		t.Fatalf("the same value has the same token in another field (%v) or tenant (%v)", other[0] == first[0], inB[0] == first[0])
	}
	// A person holding the same value gets the same token (joins across people), with their own
	// copy of the value.
	p := e.newPerson(t, a)
	held := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, PersonID: p, Values: q.Values[:1]})
	if held[0] != first[0] {
		t.Fatal("a person's copy of a value got another deterministic token")
	}
	if n := countRows(t, e.db, "tokens"); n != 4 {
		t.Fatalf("%d token rows, want 4 (two values in phone, one in phone_alt, one in B)", n)
	}
}

func testTokensRandom(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	q := sqlstore.TokenizeRequest{Field: "name", Kind: privacy.Random, Values: []string{"Amal Haddad", "Amal Haddad"}}
	x, y := e.tokenize(t, tn[0].ID, q), e.tokenize(t, tn[0].ID, q)
	if x[0] == x[1] || x[0] == y[0] || x[1] == y[1] {
		t.Fatalf("random tokens repeat: %v %v", x, y)
	}
	got := e.detokenize(t, tn[0].ID, sqlstore.TokenRef{Field: "name", Token: x[0]}, sqlstore.TokenRef{Field: "name", Token: y[1]})
	for _, d := range got {
		if !d.Found || d.Value != "Amal Haddad" {
			t.Fatalf("random token does not detokenize: %+v", d)
		}
	}
}

func shapeOf(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return '9'
		case r >= 'a' && r <= 'z':
			return 'a'
		case r >= 'A' && r <= 'Z':
			return 'A'
		}
		return r
	}, s)
}

func luhn(s string) bool {
	sum, dbl := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < '0' || s[i] > '9' {
			continue
		}
		d := int(s[i] - '0')
		if dbl {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum, dbl = sum+d, !dbl
	}
	return sum%10 == 0
}

func testTokensFormatPreserving(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	values := []string{"+962 79-123-4567", "AB123456", "jo.doe@example.org", "4111 1111 1111 1111"}
	toks := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "ref", Kind: privacy.FormatPreserving, Values: values})
	for i, v := range values {
		if toks[i] == v || shapeOf(toks[i]) != shapeOf(v) {
			t.Errorf("token %q of %q: equal, or shape %q != %q", toks[i], v, shapeOf(toks[i]), shapeOf(v))
		}
	}
	if luhn(toks[3]) {
		t.Errorf("card-like token %q passes the Luhn check", toks[3])
	}
	if again := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "ref", Kind: privacy.FormatPreserving, Values: values[:1]}); again[0] != toks[0] {
		t.Fatal("format-preserving token is not deterministic")
	}
	got := e.detokenize(t, a, sqlstore.TokenRef{Field: "ref", Token: toks[1]})
	if !got[0].Found || got[0].Value != values[1] {
		t.Fatalf("detokenize = %+v", got[0])
	}
	// Many values of one shape: every token distinct (collisions resolved), every one maps back.
	var many []string
	for i := range 300 {
		many = append(many, "AB"+strings.Repeat("0", 3)+string(rune('0'+i/100))+string(rune('0'+i/10%10))+string(rune('0'+i%10)))
	}
	mt := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "code", Kind: privacy.FormatPreserving, Values: many})
	seen := map[string]bool{}
	for _, tok := range mt {
		if seen[tok] {
			t.Fatalf("two values share the format-preserving token %q", tok)
		}
		seen[tok] = true
	}
	for _, bad := range []string{"12345", "ab-12", "Zoë 12345678"} {
		err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.TokenVault(a, e.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "ref", Kind: privacy.FormatPreserving, Values: []string{bad}})
			return err
		})
		mustCode(t, err, tutela.EINVALID)
		if strings.Contains(tutela.ErrorMessage(err), bad) {
			t.Fatalf("error repeats the value: %v", err)
		}
	}
}

func testTokensDetokenize(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a, b := tn[0].ID, tn[1].ID
	p := e.newPerson(t, a)
	own := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "national_id", Kind: privacy.Deterministic, PersonID: p, Values: []string{"9861234567"}})
	ten := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "note", Kind: privacy.Random, Values: []string{"shelter 4"}})
	refs := []sqlstore.TokenRef{{Field: "national_id", Token: own[0]}, {Field: "note", Token: ten[0]}, {Field: "note", Token: "tok_unknown"}}
	got := e.detokenize(t, a, refs...)
	if !got[0].Found || got[0].Value != "9861234567" || !got[1].Found || got[1].Value != "shelter 4" || got[2].Found {
		t.Fatalf("detokenize in own tenant = %+v", got)
	}
	// The right token under the wrong field is not found either.
	if d := e.detokenize(t, a, sqlstore.TokenRef{Field: "note", Token: own[0]}); d[0].Found {
		t.Fatal("a token detokenized under another field")
	}
	// Tenant B asking for A's tokens: not found, exactly like a token that never existed.
	for _, d := range e.detokenize(t, b, refs...) {
		if d.Found || d.Value != "" {
			t.Fatalf("tenant B detokenized A's token: %+v", d)
		}
	}
	// A's row moved to B (as a hostile copy would) does not open there: the value is bound to
	// A's keys.
	if _, err := e.db.SQL().ExecContext(ctx, `UPDATE tokens SET tenant_id = $1 WHERE token = $2`, b, ten[0]); err == nil {
		if _, err := e.db.SQL().ExecContext(ctx, `UPDATE token_values SET tenant_id = $1 WHERE tenant_id = $2 AND person_id IS NULL`, b, a); err == nil {
			if d := e.detokenize(t, b, sqlstore.TokenRef{Field: "note", Token: ten[0]}); d[0].Found {
				t.Fatal("a value copied to another tenant opened there")
			}
		}
	}
}

func testTokensNoPlaintext(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	p := e.newPerson(t, a)
	secret := []string{"Layla Mansour 1987", "layla@example.org"}
	e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "name", Kind: privacy.Deterministic, PersonID: p, Values: secret[:1]})
	e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "email", Kind: privacy.FormatPreserving, Values: secret[1:]})
	for _, q := range []string{`SELECT token, det_digest FROM tokens`, `SELECT holder, ciphertext FROM token_values`} {
		rows, err := e.db.SQL().QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			var blob []byte
			if err := rows.Scan(&s, &blob); err != nil {
				t.Fatal(err)
			}
			for _, v := range secret {
				for _, part := range []string{v, v[:6], "example.org"} {
					if strings.Contains(s, part) || bytes.Contains(blob, []byte(part)) {
						t.Fatalf("%s holds plaintext %q", q, part)
					}
				}
			}
		}
		rows.Close()
	}
}

func erase(t *testing.T, db *sqlstore.DB, tenantID, personID string) {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: tenantID, PersonID: personID, Kind: sqlstore.PersonSubject,
			Trigger: sqlstore.ErasureRequest, Reason: "subject's request", LegalBasis: "GDPR art. 17"})
	})
}

func testTokensErasure(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	p1, p2 := e.newPerson(t, a), e.newPerson(t, a)
	shared := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, PersonID: p1, Values: []string{"+962790000001"}})
	e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, PersonID: p2, Values: []string{"+962790000001"}})
	only := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.FormatPreserving, PersonID: p1, Values: []string{"+962790000002"}})
	rnd := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "name", Kind: privacy.Random, PersonID: p1, Values: []string{"Omar"}})
	before := countRows(t, e.db, "tokens")

	erase(t, e.db, a, p1)
	var left int
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM token_values WHERE person_id = $1`, p1).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d token values of the erased person remain (%v)", left, err)
	}
	if n := countRows(t, e.db, "tokens"); n != before-2 {
		t.Fatalf("%d tokens after erasure, want %d: the erased person's own tokens (and their digests) must go", n, before-2)
	}
	got := e.detokenize(t, a, sqlstore.TokenRef{Field: "phone", Token: only[0]}, sqlstore.TokenRef{Field: "name", Token: rnd[0]},
		sqlstore.TokenRef{Field: "phone", Token: shared[0]})
	if got[0].Found || got[1].Found {
		t.Fatalf("an erased person's token still detokenizes: %+v", got[:2])
	}
	if !got[2].Found || got[2].Value != "+962790000001" {
		t.Fatalf("a value another person still holds stopped detokenizing: %+v", got[2])
	}
	// Tokenizing the erased person's value again finds no old token: a new row, not a
	// confirmation that the value was held.
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.TokenVault(a, e.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, PersonID: p1, Values: []string{"x12345"}})
		return err
	}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("tokenizing for an erased person: %v, want invalid", err)
	}
	erase(t, e.db, a, p2)
	if d := e.detokenize(t, a, sqlstore.TokenRef{Field: "phone", Token: shared[0]}); d[0].Found {
		t.Fatal("a value detokenizes after every holder was erased")
	}
	if n := countRows(t, e.db, "tokens"); n != 0 {
		t.Fatalf("%d tokens left after every holder was erased", n)
	}
}

func testTokensNeedKeys(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tk := privacy.Tokenizer{Vault: newVault(t, db, newKEK(t))}
	tn := createTenant(t, db, "nokeys")
	q := sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, Values: []string{"+962790000001"}}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TokenVault(tn.ID, tk).Tokenize(ctx, q); return err })
	if !errors.Is(err, privacy.ErrNoTokenKeys) {
		t.Fatalf("tokenize without keysets: %v, want ErrNoTokenKeys", err)
	}
	if n := countRows(t, db, "tokens"); n != 0 {
		t.Fatalf("%d tokens written", n)
	}
	if err := tk.Prepare(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx *sqlstore.Tx) error { _, err := tx.TokenVault(tn.ID, tk).Tokenize(ctx, q); return err })
}

func testTokensConcurrent(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	const n = 8
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = e.db.Update(ctx, func(tx *sqlstore.Tx) error {
				out, err := tx.TokenVault(a, e.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.FormatPreserving,
					Values: []string{"+962 79 555 0101"}})
				if err == nil {
					toks[i] = out[0]
				}
				return err
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if toks[i] != toks[0] {
			t.Fatalf("concurrent tokenizations disagree: %v", toks)
		}
	}
	if c := countRows(t, e.db, "tokens"); c != 1 {
		t.Fatalf("%d token rows for one value", c)
	}
}

func testTokensRotation(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	q := sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, Values: []string{"+962790000001"}}
	before := e.tokenize(t, a, q)
	if _, err := e.tk.Vault.Rotate(ctx, a, vault.PurposeTokens); err != nil {
		t.Fatal(err)
	}
	if after := e.tokenize(t, a, q); after[0] != before[0] {
		t.Fatal("a value's deterministic token changed with the key rotation")
	}
	fresh := e.tokenize(t, a, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Deterministic, Values: []string{"+962790000002"}})
	var keys int
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT count(DISTINCT det_key_id) FROM tokens`).Scan(&keys); err != nil || keys != 2 {
		t.Fatalf("new value not under the new key (%d keys, %v)", keys, err)
	}
	if d := e.detokenize(t, a, sqlstore.TokenRef{Field: "phone", Token: fresh[0]}); !d[0].Found {
		t.Fatal("token made after rotation does not detokenize")
	}
}

func testTokensRefuse(t *testing.T, open Opener) {
	e, tn := newTokenEnv(t, open)
	a := tn[0].ID
	big := make([]string, sqlstore.MaxTokenBatch+1)
	for i := range big {
		big[i] = "v"
	}
	for name, q := range map[string]sqlstore.TokenizeRequest{
		"bad field":      {Field: "Phone Number", Kind: privacy.Deterministic, Values: []string{"x"}},
		"bad kind":       {Field: "phone", Kind: "reversible", Values: []string{"x"}},
		"no values":      {Field: "phone", Kind: privacy.Deterministic},
		"too many":       {Field: "phone", Kind: privacy.Deterministic, Values: big},
		"too long":       {Field: "phone", Kind: privacy.Deterministic, Values: []string{strings.Repeat("x", privacy.MaxTokenValue+1)}},
		"empty value":    {Field: "phone", Kind: privacy.Deterministic, Values: []string{""}},
		"control":        {Field: "phone", Kind: privacy.Deterministic, Values: []string{"a\nb"}},
		"bad person":     {Field: "phone", Kind: privacy.Deterministic, PersonID: "p1", Values: []string{"x"}},
		"unknown person": {Field: "phone", Kind: privacy.Deterministic, PersonID: tutela.NewID(), Values: []string{"x"}},
	} {
		err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TokenVault(a, e.tk).Tokenize(ctx, q); return err })
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if n := countRows(t, e.db, "tokens"); n != 0 {
		t.Fatalf("%d tokens written by refused requests", n)
	}
	err := e.db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.TokenVault(a, e.tk).Detokenize(ctx, nil)
		return err
	})
	mustCode(t, err, tutela.EINVALID)
}

func testMinimizationProfiles(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "min-a"), createTenant(t, db, "min-b")
	p := &privacy.Profile{Purpose: "ai-triage", Fields: map[string]privacy.Rule{
		"date_of_birth": {Action: privacy.Generalize}, "phone": {Action: privacy.Tokenize}, "language": {Action: privacy.Pass}}}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MinimizationProfiles(a.ID).Put(ctx, p) })
	var got *privacy.Profile
	err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		got, err = tx.MinimizationProfiles(a.ID).Get(ctx, "ai-triage")
		return err
	})
	if err != nil || len(got.Fields) != 3 || got.Fields["phone"].Action != privacy.Tokenize || got.UpdatedAt.IsZero() {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	p.Fields = map[string]privacy.Rule{"language": {Action: privacy.Pass}}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MinimizationProfiles(a.ID).Put(ctx, p) })
	err = db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if got, err = tx.MinimizationProfiles(a.ID).Get(ctx, "ai-triage"); err != nil {
			return err
		}
		_, err = tx.MinimizationProfiles(b.ID).Get(ctx, "ai-triage")
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND) // B does not see A's profile
	if len(got.Fields) != 1 {
		t.Fatalf("Put did not replace the profile: %+v", got.Fields)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.MinimizationProfiles(a.ID).Put(ctx, &privacy.Profile{Purpose: "x", Fields: map[string]privacy.Rule{"f": {Action: "leak"}}})
	})
	mustCode(t, err, tutela.EINVALID)
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: a.ID, Action: "minimization_profile.put"})
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d minimization_profile.put events, %v", len(recs), err)
	}
}

// testTokensSubjectFieldNeedsPerson: a value of a subject-schema field belongs to a person, so
// the vault refuses to hold it for the tenant (it would survive the person's erasure); bound to
// the person it is taken, and goes with their erasure. Another tenant's schema does not count.
func testTokensSubjectFieldNeedsPerson(t *testing.T, open Opener) {
	e, tenants := newTokenEnv(t, open)
	a, b := tenants[0].ID, tenants[1].ID
	schema := privacy.Schema{{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red,
		Purposes: []string{"case_management"}, RetentionDays: 30, Mask: authz.MaskHashed}}
	update(t, e.db, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(a).Put(ctx, schema) })
	q := sqlstore.TokenizeRequest{Field: "national_id", Kind: privacy.Deterministic, Values: []string{"AB947381"}}
	err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TokenVault(a, e.tk).Tokenize(ctx, q); return err })
	mustCode(t, err, tutela.EINVALID)
	if te, ok := errors.AsType[*tutela.Error](err); !ok || te.Field != "person_id" {
		t.Fatalf("refusal %v does not name person_id", err)
	}
	if n := countRows(t, e.db, "tokens"); n != 0 {
		t.Fatalf("a refused tokenization left %d tokens", n)
	}
	e.tokenize(t, b, q) // tok-b declares no such field: a tenant-held value
	p := e.newPerson(t, a)
	q.PersonID = p
	tok := e.tokenize(t, a, q)
	erase(t, e.db, a, p)
	if d := e.detokenize(t, a, sqlstore.TokenRef{Field: "national_id", Token: tok[0]}); d[0].Found {
		t.Fatal("a subject field's token detokenizes after the person's erasure")
	}
}
