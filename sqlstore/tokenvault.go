package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/vault"
)

// MaxTokenBatch is the most values one tokenize or detokenize call takes.
const MaxTokenBatch = 1000

// TokenVault maps tokens to the values they stand for, per tenant. Values are stored encrypted:
// under the person's key when the value belongs to a person (so erasing them shreds it), else
// under the tenant's personal_data keyset. Every query carries the tenant ID.
type TokenVault struct {
	tx       *Tx
	tenantID string
	tk       privacy.Tokenizer
	check    HolderCheck
}

// HolderCheck decides, before a person-held value of field is decrypted, whether it may be
// returned: nil, or the error that refuses the whole detokenization (a subject's consent for
// the stated purpose, issue 14). It is asked only for holders whose key still exists.
type HolderCheck func(ctx context.Context, field, holder string) error

// WithHolderCheck returns the vault with check asked before each person-held value opens.
func (r TokenVault) WithHolderCheck(check HolderCheck) TokenVault {
	r.check = check
	return r
}

// TokenVault returns tenantID's token vault; tk derives tokens and seals values.
func (tx *Tx) TokenVault(tenantID string, tk privacy.Tokenizer) TokenVault {
	return TokenVault{tx: tx, tenantID: tenantID, tk: tk}
}

// TokenizeRequest is one tokenization: values of one field, of one person or of the tenant.
type TokenizeRequest struct {
	Field    string
	Kind     privacy.TokenKind
	PersonID string // "" for a value the tenant holds without a person
	Values   []string
}

// Check refuses a request the vault would not take, before any work.
func (q *TokenizeRequest) Check() error {
	switch {
	case !privacy.ValidTokenField(q.Field):
		return tutela.FieldErrorf("field", "field must be a field name (lowercase letters, digits, _; optionally resource.field)")
	case !q.Kind.Valid():
		return tutela.FieldErrorf("kind", "kind must be deterministic, random or format_preserving")
	case q.PersonID != "" && !tutela.ValidID(q.PersonID):
		return tutela.FieldErrorf("person_id", "person_id must be a UUID")
	case len(q.Values) == 0 || len(q.Values) > MaxTokenBatch:
		return tutela.FieldErrorf("values", "values must hold 1 to %d values", MaxTokenBatch)
	}
	for _, v := range q.Values {
		if err := privacy.CheckTokenValue(q.Kind, v); err != nil {
			return err
		}
	}
	return nil
}

// Tokenize returns a token for each value, in order. Deterministic and format-preserving tokens
// are found again for a value already tokenized (under any enabled tokens key, so a rotation
// keeps them); a concurrent tokenization of the same value ends with the same token, not two.
// Without the tenant's keysets it is privacy.ErrNoTokenKeys: Prepare outside the transaction
// and try again.
func (r TokenVault) Tokenize(ctx context.Context, q TokenizeRequest) ([]string, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err := q.Check(); err != nil {
		return nil, err
	}
	if q.PersonID == "" {
		if schema, err := r.IsSubjectField(ctx, q.Field); err != nil {
			return nil, err
		} else if schema {
			return nil, ErrTokenNeedsPerson(q.Field)
		}
	}
	seal, err := r.sealer(ctx, q.PersonID)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(q.Values))
	done := map[string]string{}
	for i, v := range q.Values {
		if tok, ok := done[v]; ok && q.Kind != privacy.Random {
			out[i] = tok
			continue
		}
		var id string
		if q.Kind == privacy.Random {
			id, out[i], err = r.newRandom(ctx, q.Field)
		} else {
			id, out[i], err = r.deterministic(ctx, q.Field, q.Kind, v)
		}
		if err != nil {
			return nil, err
		}
		if err := r.addValue(ctx, id, q.PersonID, v, seal); err != nil {
			return nil, err
		}
		done[v] = out[i]
	}
	return out, nil
}

// ErrTokenNeedsPerson refuses a tenant-held token for a field of the subject schema: its values
// belong to a person, and a value sealed under the tenant's keyset would survive their erasure.
// Tenant-held tokens are for values that belong to no person.
func ErrTokenNeedsPerson(field string) error {
	return tutela.FieldErrorf("person_id", "field %s is a field of the subject schema: its values belong to a person, so its tokens must be bound to them (person_id) to go with their erasure", field)
}

// IsSubjectField reports whether field is declared in the tenant's subject schema.
func (r TokenVault) IsSubjectField(ctx context.Context, field string) (bool, error) {
	var n int
	err := r.tx.queryRow(ctx, `SELECT count(*) FROM subject_fields WHERE tenant_id = $1 AND name = $2`, r.tenantID, field).Scan(&n)
	return n > 0, err
}

// sealer returns how this request's values are sealed: under the person's key, or the
// tenant's personal_data keyset.
func (r TokenVault) sealer(ctx context.Context, personID string) (func(ctx context.Context, tokenID, value string) ([]byte, error), error) {
	if personID == "" {
		if _, err := r.tx.Keyset(ctx, r.tenantID, vault.PurposePersonalData); tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, privacy.ErrNoTokenKeys
		} else if err != nil {
			return nil, err
		}
		return func(ctx context.Context, tokenID, value string) ([]byte, error) {
			return r.tk.SealTenantValue(ctx, r.tenantID, tokenID, value)
		}, nil
	}
	// A subject merged into another keeps its key (for unmerging) but takes no new data: the
	// survivor does.
	var merged int
	if err := r.tx.queryRow(ctx, `SELECT count(*) FROM subjects WHERE tenant_id = $1 AND id = $2 AND merged_into IS NOT NULL`,
		r.tenantID, personID).Scan(&merged); err != nil {
		return nil, err
	}
	if merged > 0 {
		return nil, ErrSubjectMerged
	}
	pk, err := r.personKey(ctx, personID)
	if errors.Is(err, privacy.ErrErased) {
		return nil, tutela.FieldErrorf("person_id", "this person has no data key: unknown or erased")
	}
	if err != nil {
		return nil, err
	}
	return func(_ context.Context, tokenID, value string) ([]byte, error) {
		return pk.Seal(privacy.PersonValueField(tokenID), []byte(value))
	}, nil
}

func (r TokenVault) personKey(ctx context.Context, personID string) (*privacy.PersonKey, error) {
	w, err := r.tx.PersonKeys(r.tenantID).Get(ctx, personID)
	if err != nil {
		return nil, err
	}
	return privacy.Keys{Vault: r.tk.Vault}.Open(ctx, r.tenantID, personID, w)
}

// insertToken adds a token row; false when a unique constraint refused it (the token is taken,
// or the value already has its token: the caller looks again).
func (r TokenVault) insertToken(ctx context.Context, id, field string, kind privacy.TokenKind, token string, d *privacy.Digest) (bool, error) {
	var keyID, digest any
	if d != nil {
		keyID, digest = int64(d.KeyID), d.Sum
	}
	res, err := r.tx.exec(ctx, `INSERT INTO tokens (id, tenant_id, field, kind, token, det_key_id, det_digest, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		id, r.tenantID, field, string(kind), token, keyID, digest, r.tx.now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (r TokenVault) newRandom(ctx context.Context, field string) (string, string, error) {
	for range privacy.MaxAttempts() {
		id, tok := tutela.NewID(), privacy.RandomToken()
		ok, err := r.insertToken(ctx, id, field, privacy.Random, tok, nil)
		if err != nil || ok {
			return id, tok, err
		}
	}
	return "", "", privacy.ErrTokenSpace
}

// byDigest finds the token a value already has under one of its digests.
func (r TokenVault) byDigest(ctx context.Context, field string, kind privacy.TokenKind, ds []privacy.Digest) (string, string, error) {
	for _, d := range ds {
		var id, tok string
		err := r.tx.queryRow(ctx, `SELECT id, token FROM tokens WHERE tenant_id = $1 AND field = $2 AND kind = $3
			AND det_key_id = $4 AND det_digest = $5`, r.tenantID, field, string(kind), int64(d.KeyID), d.Sum).Scan(&id, &tok)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		return id, tok, err
	}
	return "", "", nil
}

func (r TokenVault) deterministic(ctx context.Context, field string, kind privacy.TokenKind, value string) (string, string, error) {
	ds, err := r.tk.Digests(ctx, r.tenantID, kind, field, value)
	if err != nil {
		return "", "", err
	}
	if id, tok, err := r.byDigest(ctx, field, kind, ds); err != nil || id != "" {
		return id, tok, err
	}
	primary := ds[:1]
	for attempt := range privacy.MaxAttempts() {
		tok, err := r.tk.Candidate(ctx, r.tenantID, kind, field, value, primary[0].KeyID, attempt)
		if err != nil {
			return "", "", err
		}
		id := tutela.NewID()
		ok, err := r.insertToken(ctx, id, field, kind, tok, &primary[0])
		if err != nil || ok {
			return id, tok, err
		}
		// Refused: either a concurrent call gave this value its token (use it), or another value
		// holds the candidate (try the next).
		if id, tok, err := r.byDigest(ctx, field, kind, primary); err != nil || id != "" {
			return id, tok, err
		}
	}
	return "", "", privacy.ErrTokenSpace
}

// addValue records that holder (a person, or the tenant) holds the token's value, sealed.
func (r TokenVault) addValue(ctx context.Context, tokenID, personID, value string, seal func(context.Context, string, string) ([]byte, error)) error {
	var n int
	if err := r.tx.queryRow(ctx, `SELECT count(*) FROM token_values WHERE tenant_id = $1 AND token_id = $2 AND holder = $3`,
		r.tenantID, tokenID, personID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	ct, err := seal(ctx, tokenID, value)
	if err != nil {
		return err
	}
	var person any
	if personID != "" {
		person = personID
	}
	_, err = r.tx.exec(ctx, `INSERT INTO token_values (tenant_id, token_id, holder, person_id, ciphertext, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, r.tenantID, tokenID, personID, person, ct, r.tx.now)
	return err
}

// TokenRef names one token to detokenize.
type TokenRef struct {
	Field string `json:"field"`
	Token string `json:"token"`
}

// Detokenized is one answer: the value, or Found false for a token this tenant does not have
// in that field (or whose every holder was erased). Another tenant's token is simply not found.
type Detokenized struct {
	Field string `json:"field"`
	Token string `json:"token"`
	Found bool   `json:"found"`
	Value string `json:"value,omitempty"`
}

// CheckTokenRefs refuses a detokenization request the vault would not take.
func CheckTokenRefs(refs []TokenRef) error {
	if len(refs) == 0 || len(refs) > MaxTokenBatch {
		return tutela.FieldErrorf("tokens", "tokens must hold 1 to %d tokens", MaxTokenBatch)
	}
	for _, t := range refs {
		if !privacy.ValidTokenField(t.Field) {
			return tutela.FieldErrorf("tokens", "each token needs its field's name")
		}
		if t.Token == "" || len(t.Token) > privacy.MaxTokenValue || !tutela.ValidText(t.Token) {
			return tutela.FieldErrorf("tokens", "a token is empty, too long or not text")
		}
	}
	return nil
}

type tokenHolder struct {
	tokenID, holder string
	ct              []byte
}

// Detokenize returns the value of each token, in order. The caller has checked permission and
// purpose (and audits the call).
func (r TokenVault) Detokenize(ctx context.Context, refs []TokenRef) ([]Detokenized, error) {
	if err := CheckTokenRefs(refs); err != nil {
		return nil, err
	}
	out := make([]Detokenized, len(refs))
	keys := map[string]*privacy.PersonKey{}
	for i, ref := range refs {
		out[i] = Detokenized{Field: ref.Field, Token: ref.Token}
		if !tutela.ValidID(r.tenantID) {
			continue
		}
		hs, err := r.holders(ctx, ref)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			v, ok, err := r.open(ctx, ref.Field, h, keys)
			if err != nil {
				return nil, err
			}
			if ok {
				out[i].Found, out[i].Value = true, v
				break
			}
		}
	}
	return out, nil
}

func (r TokenVault) holders(ctx context.Context, ref TokenRef) ([]tokenHolder, error) {
	rows, err := r.tx.query(ctx, `SELECT t.id, v.holder, v.ciphertext FROM tokens t
		JOIN token_values v ON v.tenant_id = t.tenant_id AND v.token_id = t.id
		WHERE t.tenant_id = $1 AND t.field = $2 AND t.token = $3 ORDER BY v.holder LIMIT 16`, r.tenantID, ref.Field, ref.Token)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hs []tokenHolder
	for rows.Next() {
		var h tokenHolder
		if err := rows.Scan(&h.tokenID, &h.holder, &h.ct); err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, rows.Err()
}

// open decrypts one holder's copy; ok is false when it no longer opens (the person was erased
// between the query and now, or the ciphertext does not belong here).
func (r TokenVault) open(ctx context.Context, field string, h tokenHolder, keys map[string]*privacy.PersonKey) (string, bool, error) {
	if h.holder == "" {
		v, err := r.tk.OpenTenantValue(ctx, r.tenantID, h.tokenID, h.ct)
		if errors.Is(err, vault.ErrDecrypt) {
			return "", false, nil
		}
		return v, err == nil, err
	}
	pk, ok := keys[h.holder]
	if !ok {
		var err error
		if pk, err = r.personKey(ctx, h.holder); errors.Is(err, privacy.ErrErased) {
			pk = nil
		} else if err != nil {
			return "", false, err
		}
		keys[h.holder] = pk
	}
	if pk == nil {
		return "", false, nil
	}
	if r.check != nil {
		if err := r.check(ctx, field, h.holder); err != nil {
			return "", false, err
		}
	}
	pt, err := pk.Open(privacy.PersonValueField(h.tokenID), h.ct)
	if err != nil {
		return "", false, nil
	}
	return string(pt), true, nil
}

// FieldClass is the classification detokenizing field's values needs: the subject schema's
// for a schema field, the built-in one for Tutela's own classified fields ("users.email"), RED
// for anything else. Unknown means most sensitive: a token of an undeclared field may stand
// for anything.
func (r TokenVault) FieldClass(ctx context.Context, field string) (authz.Classification, error) {
	if fc, ok := authz.FieldClasses[field]; ok {
		return fc.Class, nil
	}
	var c string
	err := r.tx.queryRow(ctx, `SELECT classification FROM subject_fields WHERE tenant_id = $1 AND name = $2`,
		r.tenantID, field).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return authz.Red, nil
	}
	if err != nil {
		return "", err
	}
	if cl := authz.Classification(c); cl.Valid() {
		return cl, nil
	}
	return authz.Red, nil
}

// FieldTypes maps the tenant's subject schema fields to their types, for minimization rules
// that generalise by type.
func (r TokenVault) FieldTypes(ctx context.Context) (map[string]privacy.FieldType, error) {
	rows, err := r.tx.query(ctx, `SELECT name, type FROM subject_fields WHERE tenant_id = $1`, r.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]privacy.FieldType{}
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, err
		}
		out[n] = privacy.FieldType(t)
	}
	return out, rows.Err()
}
