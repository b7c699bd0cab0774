package identity

import (
	"context"

	"tutela/identity/token"
	"tutela/sqlstore"
)

// KeyStore keeps access-token signing keys in the database so every node signs with, and
// publishes, the same keys.
type KeyStore struct{ DB *sqlstore.DB }

// ListSigningKeys implements token.KeyStore.
func (k KeyStore) ListSigningKeys(ctx context.Context) ([]token.StoredKey, error) {
	var rows []sqlstore.SigningKeyRow
	err := k.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.SigningKeys(ctx); return err })
	out := make([]token.StoredKey, 0, len(rows))
	for _, r := range rows {
		out = append(out, token.StoredKey{ID: r.ID, Alg: token.Alg(r.Alg), Public: r.PublicJWK, SealedPrivate: r.SealedPrivate,
			CreatedAt: r.CreatedAt, ActivateAt: r.ActivateAt, RetireAt: r.RetireAt})
	}
	return out, err
}

// AddSigningKey implements token.KeyStore.
func (k KeyStore) AddSigningKey(ctx context.Context, s token.StoredKey) error {
	return k.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.AddSigningKey(ctx, sqlstore.SigningKeyRow{ID: s.ID, Alg: string(s.Alg), PublicJWK: s.Public,
			SealedPrivate: s.SealedPrivate, CreatedAt: s.CreatedAt, ActivateAt: s.ActivateAt, RetireAt: s.RetireAt})
	})
}
