// Package linktoken makes and checks the signed tokens that URLs carry for one object with an
// expiry (file download links, referral redirects). Nothing of a token is stored. A token is
//
//	prefix base64url( keyID (4 bytes) ‖ objectID (16) ‖ expiry, Unix seconds (8) ‖ tag (32) )
//
// where tag is a platform PRF keyset's (HMAC-SHA256, a Tink PRF set in the vault) output under
// key keyID over the scheme's domain label and the other fields. The signature is checked
// before any database is asked anything, so a forged or altered token costs one HMAC. Rotating
// the keyset signs new tokens with a new key; retiring the old key (tutela keys retire) makes
// every token it signed fail, whatever its expiry.
package linktoken

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

const (
	tagSize  = 32
	bodySize = 4 + 16 + 8
)

// Scheme is one kind of token: its prefix, domain label and keyset, and its answers.
type Scheme struct {
	Prefix  string // e.g. "fl1."
	Label   string // the domain label the tag covers, so one scheme's tag means nothing in another
	Purpose string // the platform's PRF keyset (tenant "")
	// Bad is the answer to every way a token can fail before its object is found: malformed,
	// altered, forged, or signed with a key that no longer exists. Deliberately one answer.
	Bad error
	// Expired is the message of the tutela.ELINKGONE answer to a genuine but expired token.
	Expired string
}

// Claims is what a verified token says: which object, signed by which key, until when.
type Claims struct {
	ID        string
	KeyID     uint32
	ExpiresAt time.Time
}

func body(keyID uint32, id uuid.UUID, exp time.Time) []byte {
	b := make([]byte, bodySize)
	binary.BigEndian.PutUint32(b, keyID)
	copy(b[4:20], id[:])
	binary.BigEndian.PutUint64(b[20:], uint64(exp.Unix())) // #nosec G115 -- an expiry after 1970 (the server's clock plus a TTL) is positive
	return b
}

// Sign returns the token of object id expiring at exp, with the key it was signed with (the
// keyset's primary) and exp kept to the second, as the token holds it: the caller stores both
// so the token can be matched to its object.
func (s Scheme) Sign(ctx context.Context, v *vault.Vault, id string, exp time.Time) (token string, keyID uint32, expires time.Time, err error) {
	uid, err := uuid.Parse(id)
	if err != nil || !tutela.ValidID(id) {
		return "", 0, time.Time{}, tutela.Errorf(tutela.EINVALID, "the ID to sign is not valid")
	}
	keyID, err = v.PRFPrimaryKey(ctx, "", s.Purpose)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	expires = exp.UTC().Truncate(time.Second)
	b := body(keyID, uid, expires)
	tag, err := v.PRF(ctx, "", s.Purpose, keyID, append([]byte(s.Label), b...), tagSize)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	return s.Prefix + base64.RawURLEncoding.EncodeToString(append(b, tag...)), keyID, expires, nil
}

// Verify checks token's signature (in constant time) and expiry at now. Malformed, altered,
// forged and retired-key tokens are all s.Bad; a genuine but expired one is tutela.ELINKGONE.
// The caller must still check the stored object (it exists, matches KeyID and ExpiresAt, and
// its state allows the use).
func (s Scheme) Verify(ctx context.Context, v *vault.Vault, token string, now time.Time) (*Claims, error) {
	if len(token) != len(s.Prefix)+base64.RawURLEncoding.EncodedLen(bodySize+tagSize) || token[:len(s.Prefix)] != s.Prefix {
		return nil, s.Bad
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(s.Prefix):])
	if err != nil || len(raw) != bodySize+tagSize {
		return nil, s.Bad
	}
	b, tag := raw[:bodySize], raw[bodySize:]
	keyID := binary.BigEndian.Uint32(b)
	want, err := v.PRF(ctx, "", s.Purpose, keyID, append([]byte(s.Label), b...), tagSize)
	if errors.Is(err, vault.ErrUnknownKey) || errors.Is(err, vault.ErrNoKeyset) {
		return nil, s.Bad
	}
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, want) {
		return nil, s.Bad
	}
	var id uuid.UUID
	copy(id[:], b[4:20])
	exp := time.Unix(int64(binary.BigEndian.Uint64(b[20:])), 0).UTC() // #nosec G115 -- read only after the MAC verified, so it is a value this server wrote
	if !now.Before(exp) {
		return nil, tutela.Errorf(tutela.ELINKGONE, "%s", s.Expired)
	}
	return &Claims{ID: id.String(), KeyID: keyID, ExpiresAt: exp}, nil
}
