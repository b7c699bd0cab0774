package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// The privacy vault's keysets rotate like the others: `keys retire` refuses while a subject's
// digest, a user's e-mail digest, a token's lookup digest, a wrapped person key or a
// tenant-sealed value is still under an old key, and after `keys rewrap` it retires them and
// subjects, users and tokens all still work.
func TestKeysCommands_PrivacyKeysetsRotateRewrapRetire(t *testing.T) {
	environ := baseEnv(t)
	open := func() (*Main, *vault.Vault) {
		t.Helper()
		m, v, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		return m, v
	}
	ctx := context.Background()
	schema := privacy.Schema{{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red,
		Purposes: []string{"aid"}, RetentionDays: 365, Mask: authz.MaskHashed, Searchable: true}}
	m, v := open()
	tn := &tutela.Tenant{Slug: "rotating", Name: "Rotating", Region: "eu-west"}
	u := &tutela.User{Email: "Ada@Example.org", DisplayName: "Ada"}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		return tx.SubjectSchema(tn.ID).Put(ctx, schema)
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Create(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	sealed, err := privacy.NewSubjects(v).SealNew(ctx, tn.ID, schema, map[string]string{"national_id": "AB 123-456"})
	if err != nil {
		t.Fatal(err)
	}
	tk := privacy.Tokenizer{Vault: v}
	if err := tk.Prepare(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	var tok, tenantTok []string
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		if _, err := tx.Subjects(tn.ID).Create(ctx, sealed); err != nil {
			return err
		}
		tv := tx.TokenVault(tn.ID, tk)
		if tok, err = tv.Tokenize(ctx, sqlstore.TokenizeRequest{Field: "national_id", Kind: privacy.Deterministic,
			PersonID: sealed.SubjectID, Values: []string{"AB123456"}}); err != nil {
			return err
		}
		tenantTok, err = tv.Tokenize(ctx, sqlstore.TokenizeRequest{Field: "case_ref", Kind: privacy.Deterministic, Values: []string{"C-42"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	clock := clocktest.New(time.Now().UTC())
	refusals := map[string]string{
		vault.PurposePersonKeys:   "person_keys still holds 2 ciphertext(s) under old keys; run `tutela keys rewrap` first",
		vault.PurposeBlindIndex:   "subject_index still holds 1 digest(s) under old keys; run `tutela keys rewrap` first",
		vault.PurposeTokens:       "tokens still holds 2 digest(s) under old keys; run `tutela keys rewrap` first",
		vault.PurposePersonalData: "token_values still holds 1 ciphertext(s) under old keys; run `tutela keys rewrap` first",
	}
	for p, msg := range refusals {
		if _, _, err := runSubAt(t, environ, clock.Now, keysRotateCmd{Purpose: p, Tenant: tn.ID}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: p, Tenant: tn.ID}); err == nil || err.Error() != msg {
			t.Fatalf("retire %s before rewrap: %v\nwant %s", p, err, msg)
		}
	}
	settleRotation(clock)
	out, _, err := runSubAt(t, environ, clock.Now, keysRewrapCmd{Batch: 1})
	if err != nil {
		t.Fatalf("rewrap: %v\n%s", err, out)
	}
	for _, line := range []string{"person_keys: done, 2 rows checked, 2 re-encrypted", "subject_index: done, 1 rows checked, 1 re-encrypted",
		"users.email_digest: done, 1 rows checked, 1 re-encrypted", "tokens: done, 2 rows checked, 2 re-encrypted",
		"token_values: done, 1 rows checked, 1 re-encrypted"} {
		if !strings.Contains(out, line) {
			t.Fatalf("rewrap output lacks %q:\n%s", line, out)
		}
	}
	for p := range refusals {
		if _, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: p, Tenant: tn.ID}); err != nil {
			t.Fatalf("retire %s after rewrap: %v", p, err)
		}
	}

	m, v = open()
	defer m.Close()
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		got, err := tx.Users(tn.ID).ByEmail(ctx, "ADA@example.ORG")
		if err != nil || got.ID != u.ID || got.Email != u.Email {
			t.Fatalf("ByEmail after rotation: %+v, %v", got, err)
		}
		ds, err := privacy.NewSubjects(v).SearchDigests(ctx, tn.ID, schema[0], "ab123456")
		if err != nil {
			return err
		}
		ids, err := tx.Subjects(tn.ID).Search(ctx, "national_id", ds, 10)
		if err != nil || len(ids) != 1 || ids[0] != sealed.SubjectID {
			t.Fatalf("search after rotation: %v, %v", ids, err)
		}
		tv := tx.TokenVault(tn.ID, privacy.Tokenizer{Vault: v}) // the reopened vault: the first one's store is closed
		again, err := tv.Tokenize(ctx, sqlstore.TokenizeRequest{Field: "case_ref", Kind: privacy.Deterministic, Values: []string{"C-42"}})
		if err != nil || again[0] != tenantTok[0] {
			t.Fatalf("tokenize after rotation: %v, %v; want the same token", again, err)
		}
		back, err := tv.Detokenize(ctx, []sqlstore.TokenRef{{Field: "national_id", Token: tok[0]}})
		if err != nil || !back[0].Found || back[0].Value != "AB123456" {
			t.Fatalf("detokenize after rotation: %+v, %v", back, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
