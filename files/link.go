package files

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

// A download link's token is what a URL carries; nothing of it is stored. It is
//
//	"fl1." base64url( keyID (4 bytes) ‖ linkID (16) ‖ expiry, Unix seconds (8) ‖ tag (32) )
//
// where tag is the platform's file_links PRF (HMAC-SHA256, a Tink PRF set in the vault) under
// key keyID over a domain label and the other fields. The signature is checked before the
// database is asked anything, so a forged or altered token costs one HMAC. Rotating the
// file_links keyset signs new links with a new key; retiring the old key (tutela keys rotate /
// retire) makes every link it signed fail, whatever its expiry.

const (
	linkTokenPrefix = "fl1."
	linkTagSize     = 32
	linkBodySize    = 4 + 16 + 8
	linkLabel       = "tutela file link v1\x00"
)

// errBadLink is every way a token can fail before its link is found: malformed, altered,
// forged, or signed with a key that no longer exists. Deliberately one answer.
var errBadLink = tutela.Errorf(tutela.ENOTFOUND, "download link not found")

// LinkSigner signs and verifies download-link tokens with the vault's file_links keyset.
type LinkSigner struct{ Vault *vault.Vault }

func linkBody(keyID uint32, linkID uuid.UUID, exp time.Time) []byte {
	b := make([]byte, linkBodySize)
	binary.BigEndian.PutUint32(b, keyID)
	copy(b[4:20], linkID[:])
	binary.BigEndian.PutUint64(b[20:], uint64(exp.Unix()))
	return b
}

// Sign sets l.KeyID to the keyset's primary key and returns l's token. l.ID and l.ExpiresAt
// must be set (the expiry is kept to the second).
func (s LinkSigner) Sign(ctx context.Context, l *Link) (string, error) {
	id, err := uuid.Parse(l.ID)
	if err != nil {
		return "", tutela.Errorf(tutela.EINVALID, "link ID is not valid")
	}
	keyID, err := s.Vault.PRFPrimaryKey(ctx, "", vault.PurposeFileLinks)
	if err != nil {
		return "", err
	}
	l.KeyID = keyID
	l.ExpiresAt = l.ExpiresAt.UTC().Truncate(time.Second)
	body := linkBody(keyID, id, l.ExpiresAt)
	tag, err := s.Vault.PRF(ctx, "", vault.PurposeFileLinks, keyID, append([]byte(linkLabel), body...), linkTagSize)
	if err != nil {
		return "", err
	}
	return linkTokenPrefix + base64.RawURLEncoding.EncodeToString(append(body, tag...)), nil
}

// LinkClaims is what a verified token says: which link, signed by which key, until when.
type LinkClaims struct {
	LinkID    string
	KeyID     uint32
	ExpiresAt time.Time
}

// Verify checks token's signature and expiry. Malformed, altered, forged and old-key tokens
// are all ENOTFOUND; a genuine but expired one is ELINKGONE. The caller must still check the
// stored link (it exists, matches KeyID and ExpiresAt, is not revoked or used up).
func (s LinkSigner) Verify(ctx context.Context, token string, now time.Time) (*LinkClaims, error) {
	if len(token) != len(linkTokenPrefix)+base64.RawURLEncoding.EncodedLen(linkBodySize+linkTagSize) ||
		token[:len(linkTokenPrefix)] != linkTokenPrefix {
		return nil, errBadLink
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(linkTokenPrefix):])
	if err != nil || len(raw) != linkBodySize+linkTagSize {
		return nil, errBadLink
	}
	body, tag := raw[:linkBodySize], raw[linkBodySize:]
	keyID := binary.BigEndian.Uint32(body)
	want, err := s.Vault.PRF(ctx, "", vault.PurposeFileLinks, keyID, append([]byte(linkLabel), body...), linkTagSize)
	if errors.Is(err, vault.ErrUnknownKey) || errors.Is(err, vault.ErrNoKeyset) {
		return nil, errBadLink
	}
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, want) {
		return nil, errBadLink
	}
	var id uuid.UUID
	copy(id[:], body[4:20])
	exp := time.Unix(int64(binary.BigEndian.Uint64(body[20:])), 0).UTC()
	if !now.Before(exp) {
		return nil, tutela.Errorf(tutela.ELINKGONE, "this download link has expired")
	}
	return &LinkClaims{LinkID: id.String(), KeyID: keyID, ExpiresAt: exp}, nil
}
