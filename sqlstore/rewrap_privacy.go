package sqlstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"tutela"
	"tutela/privacy"
	"tutela/vault"
)

// Rewrap sources of the privacy vault (issue 13), so that `tutela keys rotate`, `rewrap` and
// `retire` work for its keysets:
//
//   - person_keys (AEAD): the wrapped person data keys, re-encrypted under the new primary. The
//     person keys themselves do not change, so no personal data is re-encrypted.
//   - blind_index (PRF): subject_index digests and users.email_digest, computed again under the
//     new primary from the value, which the source decrypts with the person's key.
//   - tokens (PRF): the lookup digests of deterministic and format-preserving tokens, computed
//     again from a holder's copy of the value. The tokens themselves never change.
//   - personal_data (AEAD): values sealed with no person (sign-ins and security events with no
//     user, tenant-held token values).
//
// Digest sources skip rows whose value is gone (a digest with no value, a token nobody holds):
// no key can find them again once the old key is retired, so they never block retirement.
// Composite row keys are joined with "/" (UUIDs, field names and key IDs never hold one).

// PersonKeysSource is the wrapped person data keys (person_keys.wrapped, bound to tenant and
// person as privacy.Keys wraps them).
func PersonKeysSource(db *DB) vault.RewrapSource { return personKeysSource{db} }

type personKeysSource struct{ db *DB }

func (personKeysSource) Name() string { return "person_keys" }

// cursorParts splits a composite resume cursor ("" → nil) into n parts.
func cursorParts(after string, n int) ([]string, error) {
	if after == "" {
		return nil, nil
	}
	p := strings.Split(after, "/")
	if len(p) != n {
		return nil, tutela.Errorf(tutela.EINVALID, "resume cursor must have %d parts separated by /", n)
	}
	return p, nil
}

func (s personKeysSource) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	cur, err := cursorParts(after, 2)
	if err != nil {
		return nil, err
	}
	q := `SELECT CAST(tenant_id AS TEXT), CAST(person_id AS TEXT), wrapped FROM person_keys`
	args := []any{limit}
	if cur != nil {
		q += ` WHERE (tenant_id, person_id) > ($2, $3)`
		args = append(args, cur[0], cur[1])
	}
	err = s.db.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, q+` ORDER BY tenant_id, person_id LIMIT $1`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tenant, person string
			var w []byte
			if err := rows.Scan(&tenant, &person, &w); err != nil {
				return err
			}
			out = append(out, vault.RewrapItem{ID: tenant + "/" + person, TenantID: tenant, Purpose: vault.PurposePersonKeys,
				AAD: vault.AAD("person_keys", "wrapped", person), Ciphertext: w})
		}
		return rows.Err()
	})
	return out, err
}

func (s personKeysSource) Save(ctx context.Context, items []vault.RewrapItem) error {
	return saveBatch(ctx, s.db, s.Name(), items, func(tx *Tx, it vault.RewrapItem) (int64, error) {
		tenant, person, _ := strings.Cut(it.ID, "/")
		res, err := tx.exec(ctx, `UPDATE person_keys SET wrapped = $1 WHERE tenant_id = $2 AND person_id = $3 AND wrapped = $4`,
			it.Ciphertext, tenant, person, it.Old)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// saveBatch writes one rewrapped batch in one transaction with one key.rewrap audit event
// naming the rows changed; update is the row's compare-and-swap (0 rows: changed or deleted
// since it was read, left alone).
func saveBatch(ctx context.Context, db *DB, name string, items []vault.RewrapItem, update func(*Tx, vault.RewrapItem) (int64, error)) error {
	return db.Update(ctx, func(tx *Tx) error {
		ids := make([]string, 0, len(items))
		for _, it := range items {
			n, err := update(tx, it)
			if err != nil {
				return fmt.Errorf("row %s: %w", it.ID, err)
			}
			if n == 1 {
				ids = append(ids, it.ID)
			}
		}
		return tx.Record(ctx, "key.rewrap", "", "table", name, "", map[string]any{"rows": len(ids), "ids": ids})
	})
}

// SubjectIndexSource is the subjects' blind-index digests (subject_index), recomputed from each
// value (subject_values, opened with the subject's key, normalized for its field type).
func SubjectIndexSource(db *DB) vault.RewrapSource { return subjectIndexSource{db} }

type subjectIndexSource struct{ db *DB }

func (subjectIndexSource) Name() string { return "subject_index" }

func (s subjectIndexSource) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	cur, err := cursorParts(after, 3)
	if err != nil {
		return nil, err
	}
	if s.db.vault == nil {
		return nil, errNoVault
	}
	v := s.db.vault
	// Inner joins: a digest whose value or key is gone (an erased subject's, removed with it
	// anyway) has nothing to recompute from, and no key finds it once the old one is retired.
	q := `SELECT CAST(i.tenant_id AS TEXT), CAST(i.subject_id AS TEXT), i.field, i.key_id, i.digest, f.type, sv.ciphertext, k.wrapped
		FROM subject_index i
		JOIN subject_fields f ON f.tenant_id = i.tenant_id AND f.name = i.field
		JOIN subject_values sv ON sv.tenant_id = i.tenant_id AND sv.subject_id = i.subject_id AND sv.field = i.field
		JOIN person_keys k ON k.tenant_id = i.tenant_id AND k.person_id = i.subject_id`
	args := []any{limit}
	// A subject has one digest per field (Subjects.write replaces a field's digests under every
	// key), so (tenant, subject, field) is the row's key, and a row moved to the new key keeps
	// its place in the order.
	if cur != nil {
		q += ` WHERE (i.tenant_id, i.subject_id, i.field) > ($2, $3, $4)`
		args = append(args, cur[0], cur[1], cur[2])
	}
	err = s.db.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, q+` ORDER BY i.tenant_id, i.subject_id, i.field LIMIT $1`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tenant, subject, field, typ string
			var keyID int64
			var digest, ct, wrapped []byte
			if err := rows.Scan(&tenant, &subject, &field, &keyID, &digest, &typ, &ct, &wrapped); err != nil {
				return err
			}
			out = append(out, vault.RewrapItem{ID: tenant + "/" + subject + "/" + field, TenantID: tenant,
				Purpose: vault.PurposeBlindIndex, Ciphertext: digest, KeyID: uint32(keyID), // #nosec G115 -- key IDs are written from uint32 values
				Recompute: func(ctx context.Context, keyID uint32) ([]byte, error) {
					pk, err := privacy.Keys{Vault: v}.Open(ctx, tenant, subject, wrapped)
					if err != nil {
						return nil, err
					}
					pt, err := pk.Open(field, ct)
					if err != nil {
						return nil, err
					}
					defer clear(pt)
					return privacy.Index{Vault: v}.DigestUnder(ctx, tenant, keyID, field, privacy.Normalize(privacy.FieldType(typ), string(pt)))
				}})
		}
		return rows.Err()
	})
	return out, err
}

func (s subjectIndexSource) Save(ctx context.Context, items []vault.RewrapItem) error {
	return saveBatch(ctx, s.db, s.Name(), items, func(tx *Tx, it vault.RewrapItem) (int64, error) {
		p := strings.Split(it.ID, "/")
		res, err := tx.exec(ctx, `UPDATE subject_index SET key_id = $1, digest = $2 WHERE tenant_id = $3 AND subject_id = $4
			AND field = $5 AND key_id = $6 AND digest = $7`,
			int64(it.KeyID), it.Ciphertext, p[0], p[1], p[2], int64(it.OldKeyID), it.Old)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// UserEmailSource is the users' sign-in blind index (users.email_digest: 4-byte key ID, then
// the digest), recomputed from the sealed e-mail (opened with the user's key, then
// tutela.NormalizeEmail).
func UserEmailSource(db *DB) vault.RewrapSource { return userEmailSource{db} }

type userEmailSource struct{ db *DB }

func (userEmailSource) Name() string { return "users.email_digest" }

func (s userEmailSource) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	if s.db.vault == nil {
		return nil, errNoVault
	}
	v := s.db.vault
	q := `SELECT CAST(u.id AS TEXT), CAST(u.tenant_id AS TEXT), u.email_digest, u.email_sealed, k.wrapped FROM users u
		JOIN person_keys k ON k.tenant_id = u.tenant_id AND k.person_id = u.id
		WHERE u.email_digest IS NOT NULL AND u.email_sealed IS NOT NULL`
	args := []any{limit}
	if after != "" {
		q += ` AND u.id > $2`
		args = append(args, after)
	}
	err = s.db.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, q+` ORDER BY u.id LIMIT $1`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, tenant string
			var digest, sealed, wrapped []byte
			if err := rows.Scan(&id, &tenant, &digest, &sealed, &wrapped); err != nil {
				return err
			}
			if len(digest) <= 4 {
				return fmt.Errorf("user %s: malformed e-mail digest", id)
			}
			out = append(out, vault.RewrapItem{ID: id, TenantID: tenant, Purpose: vault.PurposeBlindIndex,
				Ciphertext: digest[4:], KeyID: binary.BigEndian.Uint32(digest),
				Recompute: func(ctx context.Context, keyID uint32) ([]byte, error) {
					pk, err := privacy.Keys{Vault: v}.Open(ctx, tenant, id, wrapped)
					if err != nil {
						return nil, err
					}
					email, err := pk.Open(fieldUserEmail, sealed)
					if err != nil {
						return nil, err
					}
					defer clear(email)
					return privacy.Index{Vault: v}.DigestUnder(ctx, tenant, keyID, fieldUserEmail, tutela.NormalizeEmail(string(email)))
				}})
		}
		return rows.Err()
	})
	return out, err
}

func (s userEmailSource) Save(ctx context.Context, items []vault.RewrapItem) error {
	return saveBatch(ctx, s.db, s.Name(), items, func(tx *Tx, it vault.RewrapItem) (int64, error) {
		res, err := tx.exec(ctx, `UPDATE users SET email_digest = $1 WHERE id = $2 AND email_digest = $3`,
			storedEmailDigest(it.KeyID, it.Ciphertext), it.ID, storedEmailDigest(it.OldKeyID, it.Old))
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// TokenDigestSource is the lookup digests of deterministic and format-preserving tokens
// (tokens.det_key_id, det_digest), recomputed from a holder's copy of the value (token_values,
// under the holder's person key or the tenant's personal_data keyset). The token does not
// change, so every token handed out stays valid and tokenizing the value again finds it.
func TokenDigestSource(db *DB) vault.RewrapSource { return tokenDigestSource{db} }

type tokenDigestSource struct{ db *DB }

func (tokenDigestSource) Name() string { return "tokens" }

func (s tokenDigestSource) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	if s.db.vault == nil {
		return nil, errNoVault
	}
	// A token nobody holds any more (its holders were erased) has no value to recompute from;
	// erasure normally deletes it, and once the old key is retired nothing can find it.
	q := `SELECT CAST(t.id AS TEXT), CAST(t.tenant_id AS TEXT), t.field, t.kind, t.det_key_id, t.det_digest FROM tokens t
		WHERE t.det_digest IS NOT NULL
		AND EXISTS (SELECT 1 FROM token_values v WHERE v.tenant_id = t.tenant_id AND v.token_id = t.id)`
	args := []any{limit}
	if after != "" {
		q += ` AND t.id > $2`
		args = append(args, after)
	}
	err = s.db.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, q+` ORDER BY t.id LIMIT $1`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, tenant, field, kind string
			var keyID int64
			var digest []byte
			if err := rows.Scan(&id, &tenant, &field, &kind, &keyID, &digest); err != nil {
				return err
			}
			out = append(out, vault.RewrapItem{ID: id, TenantID: tenant, Purpose: vault.PurposeTokens,
				Ciphertext: digest, KeyID: uint32(keyID), // #nosec G115 -- key IDs are written from uint32 values
				Recompute: func(ctx context.Context, keyID uint32) ([]byte, error) {
					value, err := s.tokenValue(ctx, tenant, id)
					if err != nil {
						return nil, err
					}
					return privacy.Tokenizer{Vault: s.db.vault}.DigestUnder(ctx, tenant, keyID, privacy.TokenKind(kind), field, value)
				}})
		}
		return rows.Err()
	})
	return out, err
}

// tokenValue opens the first holder's copy of a token's value that opens. No holder left (all
// erased since Next read the token) is vault.ErrRewrapGone; copies that exist but do not open
// are an error (tampered, or sealed elsewhere).
func (s tokenDigestSource) tokenValue(ctx context.Context, tenantID, tokenID string) (string, error) {
	var value string
	found := false
	err := s.db.View(ctx, func(tx *Tx) error {
		tv := tx.TokenVault(tenantID, privacy.Tokenizer{Vault: s.db.vault})
		rows, err := tx.query(ctx, `SELECT v.holder, v.ciphertext FROM token_values v
			WHERE v.tenant_id = $1 AND v.token_id = $2 ORDER BY v.holder LIMIT 16`, tenantID, tokenID)
		if err != nil {
			return err
		}
		var hs []tokenHolder
		for rows.Next() {
			h := tokenHolder{tokenID: tokenID}
			if err := rows.Scan(&h.holder, &h.ct); err != nil {
				rows.Close()
				return err
			}
			hs = append(hs, h)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(hs) == 0 {
			return vault.ErrRewrapGone
		}
		keys := map[string]*privacy.PersonKey{}
		for _, h := range hs {
			v, ok, err := tv.open(ctx, "", h, keys)
			if err != nil {
				return err
			}
			if ok {
				value, found = v, true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if !found {
		return "", errors.New("no holder's copy of the token's value opens")
	}
	return value, nil
}

func (s tokenDigestSource) Save(ctx context.Context, items []vault.RewrapItem) error {
	return saveBatch(ctx, s.db, s.Name(), items, func(tx *Tx, it vault.RewrapItem) (int64, error) {
		res, err := tx.exec(ctx, `UPDATE tokens SET det_key_id = $1, det_digest = $2 WHERE id = $3 AND det_key_id = $4 AND det_digest = $5`,
			int64(it.KeyID), it.Ciphertext, it.ID, int64(it.OldKeyID), it.Old)
		if tutela.ErrorCode(err) == tutela.ECONFLICT {
			// The value got a second token under the new key meanwhile (a race with a rotation);
			// both tokens stay valid, but this one's digest cannot move.
			return 0, tutela.Errorf(tutela.ECONFLICT, "another token of the same value already exists under the new key")
		}
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// PersonalDataSources are the values sealed under a tenant's (or the platform's) personal_data
// keyset: the IP and user agent of sign-ins and security events with no user, token values the
// tenant holds without a person, and the audit events' request data not under a person key
// (AuditRequestDataSource: count-only, the log is append-only). Rows with a user or person are
// under that person's key.
func PersonalDataSources(db *DB) []vault.RewrapSource {
	tenant := "COALESCE(CAST(tenant_id AS TEXT), '')"
	col := func(table, column, field string) SealedColumn {
		return SealedColumn{DB: db, Table: table, Column: column, Purpose: vault.PurposePersonalData, Label: field,
			Where: "user_id IS NULL", TenantCol: tenant, Item: func(id, tenant, _ string) (string, []byte) {
				return tenant, rowAAD(field, id)
			}}
	}
	return []vault.RewrapSource{
		col("login_history", "ip_sealed", fieldLoginIP),
		col("login_history", "user_agent_sealed", fieldLoginUA),
		col("security_events", "ip_sealed", fieldSecEventIP),
		SealedColumn{DB: db, Table: "token_values", Column: "ciphertext", Purpose: vault.PurposePersonalData,
			IDCol: "token_id", Where: "person_id IS NULL", TenantCol: "tenant_id", Item: func(id, tenant, _ string) (string, []byte) {
				return tenant, vault.AAD("token_values", "ciphertext", id)
			}},
		AuditRequestDataSource(db),
	}
}
