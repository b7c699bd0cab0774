package sqlstore

import (
	"context"
	"database/sql"
	"time"
)

// SigningKeyRow is a stored access-token signing key; the private half is sealed by the caller.
type SigningKeyRow struct {
	ID            string
	Alg           string
	PublicJWK     []byte
	SealedPrivate []byte
	CreatedAt     time.Time
	ActivateAt    time.Time
	RetireAt      time.Time // zero when none
}

// SigningKeys lists every stored signing key.
func (tx *Tx) SigningKeys(ctx context.Context) ([]SigningKeyRow, error) {
	rows, err := tx.query(ctx, `SELECT id, alg, public_jwk, sealed_private, created_at, activate_at, retire_at
		FROM signing_keys ORDER BY activate_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SigningKeyRow
	for rows.Next() {
		var k SigningKeyRow
		var retire sql.NullTime
		if err := rows.Scan(&k.ID, &k.Alg, &k.PublicJWK, &k.SealedPrivate, &k.CreatedAt, &k.ActivateAt, &retire); err != nil {
			return nil, err
		}
		k.CreatedAt, k.ActivateAt = k.CreatedAt.UTC(), k.ActivateAt.UTC()
		if retire.Valid {
			k.RetireAt = retire.Time.UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddSigningKey stores a new signing key; a duplicate ID is a conflict.
func (tx *Tx) AddSigningKey(ctx context.Context, k SigningKeyRow) error {
	var retire any
	if !k.RetireAt.IsZero() {
		retire = k.RetireAt.UTC()
	}
	_, err := tx.exec(ctx, `INSERT INTO signing_keys (id, alg, public_jwk, sealed_private, created_at, activate_at, retire_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.Alg, k.PublicJWK, k.SealedPrivate, k.CreatedAt.UTC(), k.ActivateAt.UTC(), retire)
	if err != nil {
		return err
	}
	return tx.Record(ctx, "key.create", "", "signing_key", k.ID, "", map[string]any{"alg": k.Alg, "activate_at": k.ActivateAt.UTC().Format(time.RFC3339)})
}
