package referrals

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"

	"tutela"
	"tutela/vault"
)

// A referral's token is what its redirect URL (and then the partner) carries; nothing of it is
// stored. As a download link's (files/link.go), it is
//
//	"rf1." base64url( keyID (4 bytes) ‖ referralID (16) ‖ expiry, Unix seconds (8) ‖ tag (32) )
//
// where tag is the platform's referrals PRF (HMAC-SHA256, a Tink PRF set in the vault) under
// key keyID over a domain label and the other fields. No personal data: the subject, the
// purpose and the partner are found from the referral's ID, by whoever may read it. The
// signature is checked before the database is asked anything. Rotating the referrals keyset
// signs new referrals with a new key; retiring the old key (tutela keys retire) ends every
// referral it signed: it can no longer be opened nor confirmed.

const (
	tokenPrefix = "rf1."
	tagSize     = 32
	bodySize    = 4 + 16 + 8
	tokenLabel  = "tutela referral v1\x00"
)

// ErrBadToken is every way a token can fail before its referral is found: malformed, altered,
// forged, or signed with a key that no longer exists. Deliberately one answer.
var ErrBadToken = tutela.Errorf(tutela.ENOTFOUND, "referral not found")

// Signer signs and verifies referral tokens with the vault's referrals keyset.
type Signer struct{ Vault *vault.Vault }

func body(keyID uint32, id uuid.UUID, exp time.Time) []byte {
	b := make([]byte, bodySize)
	binary.BigEndian.PutUint32(b, keyID)
	copy(b[4:20], id[:])
	binary.BigEndian.PutUint64(b[20:], uint64(exp.Unix()))
	return b
}

// Sign sets r.KeyID to the keyset's primary key, truncates r.ExpiresAt to the second, and
// returns r's token. r.ID and r.ExpiresAt must be set.
func (s Signer) Sign(ctx context.Context, r *Referral) (string, error) {
	id, err := uuid.Parse(r.ID)
	if err != nil || !tutela.ValidID(r.ID) {
		return "", tutela.Errorf(tutela.EINVALID, "referral ID is not valid")
	}
	keyID, err := s.Vault.PRFPrimaryKey(ctx, "", vault.PurposeReferrals)
	if err != nil {
		return "", err
	}
	r.KeyID = keyID
	r.ExpiresAt = r.ExpiresAt.UTC().Truncate(time.Second)
	b := body(keyID, id, r.ExpiresAt)
	tag, err := s.Vault.PRF(ctx, "", vault.PurposeReferrals, keyID, append([]byte(tokenLabel), b...), tagSize)
	if err != nil {
		return "", err
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(append(b, tag...)), nil
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
	if len(token) != len(tokenPrefix)+base64.RawURLEncoding.EncodedLen(bodySize+tagSize) ||
		token[:len(tokenPrefix)] != tokenPrefix {
		return nil, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(tokenPrefix):])
	if err != nil || len(raw) != bodySize+tagSize {
		return nil, ErrBadToken
	}
	b, tag := raw[:bodySize], raw[bodySize:]
	keyID := binary.BigEndian.Uint32(b)
	want, err := s.Vault.PRF(ctx, "", vault.PurposeReferrals, keyID, append([]byte(tokenLabel), b...), tagSize)
	if errors.Is(err, vault.ErrUnknownKey) || errors.Is(err, vault.ErrNoKeyset) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, want) {
		return nil, ErrBadToken
	}
	var id uuid.UUID
	copy(id[:], b[4:20])
	exp := time.Unix(int64(binary.BigEndian.Uint64(b[20:])), 0).UTC()
	if !now.Before(exp) {
		return nil, tutela.Errorf(tutela.ELINKGONE, "this referral has expired")
	}
	return &Claims{ReferralID: id.String(), KeyID: keyID, ExpiresAt: exp}, nil
}
