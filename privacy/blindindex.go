package privacy

import (
	"context"

	"tutela/vault"
)

// digestLen is a blind index digest's size: 256 bits, HMAC-SHA256's full output, so distinct
// values never share a digest in practice (an exact-match search must not return a near miss).
const digestLen = 32

// Digest is a blind index entry: a keyed hash of a normalized value, with the key that made it.
type Digest struct {
	KeyID uint32
	Sum   []byte
}

// Index computes blind indexes with the tenant's blind_index PRF keyset (HMAC-SHA256). Without
// the key a digest reveals nothing about the value, and one field's digests do not match
// another field's for the same value (the field is part of the input), so equal values are
// linkable only within one field of one tenant.
type Index struct{ Vault *vault.Vault }

func indexInput(field, normalized string) []byte {
	return append(vault.LengthPrefixed(field), normalized...)
}

// Digest is the digest of normalized under the keyset's primary key (created on first use):
// what a write stores.
func (x Index) Digest(ctx context.Context, tenantID, field, normalized string) (Digest, error) {
	id, err := x.Vault.PRFPrimaryKey(ctx, tenantID, vault.PurposeBlindIndex)
	if err != nil {
		return Digest{}, err
	}
	sum, err := x.Vault.PRF(ctx, tenantID, vault.PurposeBlindIndex, id, indexInput(field, normalized), digestLen)
	return Digest{KeyID: id, Sum: sum}, err
}

// DigestUnder is the digest of normalized under blind-index key keyID: what `keys rewrap`
// stores when it moves a digest to a new primary key.
func (x Index) DigestUnder(ctx context.Context, tenantID string, keyID uint32, field, normalized string) ([]byte, error) {
	return x.Vault.PRF(ctx, tenantID, vault.PurposeBlindIndex, keyID, indexInput(field, normalized), digestLen)
}

// Lookup is the digests of normalized under every enabled key, primary first: what a search
// compares with, so rows written before a rotation stay findable until `keys rewrap` and
// `keys retire`. A tenant with no keyset yet has nothing indexed: Lookup returns none, and the
// search finds nothing, as it would for any miss.
func (x Index) Lookup(ctx context.Context, tenantID, field, normalized string) ([]Digest, error) {
	ids, err := x.Vault.PRFKeyIDs(ctx, tenantID, vault.PurposeBlindIndex)
	if err != nil {
		if isNoKeyset(err) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]Digest, 0, len(ids))
	in := indexInput(field, normalized)
	for _, id := range ids {
		sum, err := x.Vault.PRF(ctx, tenantID, vault.PurposeBlindIndex, id, in, digestLen)
		if err != nil {
			return nil, err
		}
		out = append(out, Digest{KeyID: id, Sum: sum})
	}
	return out, nil
}
