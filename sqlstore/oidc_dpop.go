package sqlstore

import (
	"context"
	"time"

	"tutela"
)

// UseDPoPProof records that the DPoP proof with identifier jti was used, until expires (RFC
// 9449 §11.1: a proof is accepted once). Only SHA-256(jti) is stored. A jti already recorded and
// not yet expired is a replay: EUNAUTHENTICATED, and nothing changes. The insert does not fail
// on the conflict (ON CONFLICT), so the caller's transaction stays usable on PostgreSQL; two
// concurrent uses of one jti serialise on its key and exactly one succeeds.
func (tx *Tx) UseDPoPProof(ctx context.Context, jti string, expires time.Time) error {
	if jti == "" || len(jti) > 64 {
		return tutela.Errorf(tutela.EUNAUTHENTICATED, "invalid DPoP proof")
	}
	expires = expires.UTC().Truncate(time.Microsecond)
	if !expires.After(tx.now) {
		return tutela.Errorf(tutela.EINVALID, "a DPoP proof must be remembered until a time after now")
	}
	// An expired row the sweep has not removed yet is taken over: the proof it stood for can
	// no longer be accepted (its iat is outside the window), so this is not a replay of it.
	res, err := tx.exec(ctx, `INSERT INTO oidc_dpop_proofs (jti_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (jti_hash) DO UPDATE SET expires_at = excluded.expires_at WHERE oidc_dpop_proofs.expires_at <= $3`,
		HashToken(jti), expires, tx.now)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrDPoPReplay
	}
	return nil
}

// ErrDPoPReplay answers a DPoP proof used a second time; the OAuth layer maps it, like every
// refused proof, to invalid_dpop_proof.
var ErrDPoPReplay = tutela.Errorf(tutela.EUNAUTHENTICATED, "DPoP proof already used")

// SweepDPoPProofs deletes the replay records that have expired and reports how many. Their
// proofs are refused by their iat by then, so forgetting them opens nothing.
func (tx *Tx) SweepDPoPProofs(ctx context.Context) (int64, error) {
	res, err := tx.exec(ctx, `DELETE FROM oidc_dpop_proofs WHERE expires_at <= $1`, tx.now)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
