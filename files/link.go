package files

import (
	"context"
	"time"

	"tutela"
	"tutela/linktoken"
	"tutela/vault"
)

// A download link's token is what a URL carries; nothing of it is stored. It is a linktoken:
//
//	"fl1." base64url( keyID (4 bytes) ‖ linkID (16) ‖ expiry, Unix seconds (8) ‖ tag (32) )
//
// where tag is the platform's file_links PRF (HMAC-SHA256, a Tink PRF set in the vault) under
// key keyID over a domain label and the other fields. The signature is checked before the
// database is asked anything, so a forged or altered token costs one HMAC. Rotating the
// file_links keyset signs new links with a new key; retiring the old key (tutela keys rotate /
// retire) makes every link it signed fail, whatever its expiry.

// linkScheme is the download link token's; linktoken does the signing and checking.
var linkScheme = linktoken.Scheme{Prefix: "fl1.", Label: "tutela file link v1\x00", Purpose: vault.PurposeFileLinks,
	Bad: errBadLink, Expired: "this download link has expired"}

// errBadLink is every way a token can fail before its link is found: malformed, altered,
// forged, or signed with a key that no longer exists. Deliberately one answer.
var errBadLink = tutela.Errorf(tutela.ENOTFOUND, "download link not found")

// LinkSigner signs and verifies download-link tokens with the vault's file_links keyset.
type LinkSigner struct{ Vault *vault.Vault }

// Sign sets l.KeyID to the keyset's primary key and returns l's token. l.ID and l.ExpiresAt
// must be set (the expiry is kept to the second).
func (s LinkSigner) Sign(ctx context.Context, l *Link) (string, error) {
	token, keyID, exp, err := linkScheme.Sign(ctx, s.Vault, l.ID, l.ExpiresAt)
	if err != nil {
		return "", err
	}
	l.KeyID, l.ExpiresAt = keyID, exp
	return token, nil
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
	c, err := linkScheme.Verify(ctx, s.Vault, token, now)
	if err != nil {
		return nil, err
	}
	return &LinkClaims{LinkID: c.ID, KeyID: c.KeyID, ExpiresAt: c.ExpiresAt}, nil
}
