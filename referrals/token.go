package referrals

import (
	"context"
	"time"

	"tutela"
	"tutela/linktoken"
	"tutela/vault"
)

// A referral's token is what its redirect URL (and then the partner) carries; nothing of it is
// stored. As a download link's (files/link.go), it is a linktoken:
//
//	"rf1." base64url( keyID (4 bytes) ‖ referralID (16) ‖ expiry, Unix seconds (8) ‖ tag (32) )
//
// where tag is the platform's referrals PRF (HMAC-SHA256, a Tink PRF set in the vault) under
// key keyID over a domain label and the other fields. No personal data: the subject, the
// purpose and the partner are found from the referral's ID, by whoever may read it. The
// signature is checked before the database is asked anything. Rotating the referrals keyset
// signs new referrals with a new key; retiring the old key (tutela keys retire) ends every
// referral it signed: it can no longer be opened nor confirmed.

// scheme is the referral token's; linktoken does the signing and checking.
var scheme = linktoken.Scheme{Prefix: "rf1.", Label: "tutela referral v1\x00", Purpose: vault.PurposeReferrals,
	Bad: ErrBadToken, Expired: "this referral has expired"}

// ErrBadToken is every way a token can fail before its referral is found: malformed, altered,
// forged, or signed with a key that no longer exists. Deliberately one answer.
var ErrBadToken = tutela.Errorf(tutela.ENOTFOUND, "referral not found")

// Signer signs and verifies referral tokens with the vault's referrals keyset.
type Signer struct{ Vault *vault.Vault }

// Sign sets r.KeyID to the keyset's primary key, truncates r.ExpiresAt to the second, and
// returns r's token. r.ID and r.ExpiresAt must be set.
func (s Signer) Sign(ctx context.Context, r *Referral) (string, error) {
	token, keyID, exp, err := scheme.Sign(ctx, s.Vault, r.ID, r.ExpiresAt)
	if err != nil {
		return "", err
	}
	r.KeyID, r.ExpiresAt = keyID, exp
	return token, nil
}

// Claims is what a verified token says: which referral, signed by which key, until when.
type Claims struct {
	ReferralID string
	KeyID      uint32
	ExpiresAt  time.Time
}

// Verify checks token's signature and expiry. Malformed, altered, forged and retired-key
// tokens are all ErrBadToken (not found); a genuine but expired one is tutela.ELINKGONE. The
// caller must still check the stored referral (it exists, matches KeyID and ExpiresAt, and
// its state allows the step).
func (s Signer) Verify(ctx context.Context, token string, now time.Time) (*Claims, error) {
	c, err := scheme.Verify(ctx, s.Vault, token, now)
	if err != nil {
		return nil, err
	}
	return &Claims{ReferralID: c.ID, KeyID: c.KeyID, ExpiresAt: c.ExpiresAt}, nil
}
