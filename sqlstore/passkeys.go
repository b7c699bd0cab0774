package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
)

// SpendPasskeyChallenge records that a passkey sign-in (a discoverable WebAuthn login, begun
// without a user and so without a row in webauthn_ceremonies) used challenge. It reports false
// when the challenge was spent before: the assertion is a replay. The entry (its SHA-256) is
// kept until expires, the end of the ceremony's lifetime, after which the ceremony itself is
// refused; PurgeExpired removes it then.
func (tx *Tx) SpendPasskeyChallenge(ctx context.Context, challenge string, expires time.Time) (bool, error) {
	if challenge == "" {
		return false, nil
	}
	if _, err := tx.exec(ctx, `DELETE FROM spent_challenges WHERE expires_at <= $1`, tx.now); err != nil {
		return false, err
	}
	h := sha256.Sum256([]byte(challenge))
	// ON CONFLICT rather than catching the violation: on PostgreSQL a failed statement would
	// abort the whole transaction.
	res, err := tx.exec(ctx, `INSERT INTO spent_challenges (digest, expires_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`,
		h[:], expires.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MaxFactorName bounds a factor's name (the label a user gives a passkey).
const MaxFactorName = 100

// RenameFactor renames one of the user's passkeys or authenticator apps. The name is plain text
// (tutela.ValidText), 1-100 characters. Audited as mfa.factor_renamed with the factor's ID (the
// name is the user's own words and stays out of the audit parameters).
func (r MFA) RenameFactor(ctx context.Context, userID, factorID, name string) error {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxFactorName || !tutela.ValidText(name) {
		return tutela.FieldErrorf("name", "name must be 1-%d characters of plain text", MaxFactorName)
	}
	if !r.validIDs(userID, factorID) {
		return errFactorNotFound
	}
	var typ string
	err := r.tx.queryRow(ctx, `UPDATE mfa_factors SET name = $1 WHERE tenant_id = $2 AND user_id = $3 AND id = $4
		AND type IN ('totp', 'webauthn') RETURNING type`, name, r.tenantID, userID, factorID).Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) {
		return errFactorNotFound
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "mfa.factor_renamed", r.tenantID, "user", userID, "", map[string]any{"factor_id": factorID, "type": typ})
}

// UseOIDCClientAssertion records the jti of a relying party's accepted client assertion
// (private_key_jwt) until expires and reports whether it was new: an assertion works once
// (RFC 7523 §3, RFC 9700 §2.5). Kept hashed beside the spent passkey challenges.
func (tx *Tx) UseOIDCClientAssertion(ctx context.Context, tenantID, clientID, jti string, expires time.Time) (bool, error) {
	if jti == "" || len(jti) > 256 {
		return false, nil
	}
	if _, err := tx.exec(ctx, `DELETE FROM spent_challenges WHERE expires_at <= $1`, tx.now); err != nil {
		return false, err
	}
	h := sha256.Sum256([]byte("oidc client assertion\x00" + tenantID + "\x00" + clientID + "\x00" + jti))
	res, err := tx.exec(ctx, `INSERT INTO spent_challenges (digest, expires_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`,
		h[:], expires.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
