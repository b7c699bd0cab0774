package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"

	"tutela"
)

// Token purposes.
const (
	TokenSetup = "setup" // bootstrap: the first super-admin sets a password
	TokenReset = "reset" // admin-initiated password reset
	TokenMFA   = "mfa"   // sign-in challenge: password verified, second factor pending
	// TokenMFAEnroll is the one-time code that lets a user enrol a second factor after an
	// administrator reset theirs (sent out of band; the password alone does not suffice).
	TokenMFAEnroll = "mfa_enroll"
)

// OneTimeToken is a stored single-use token. Only the SHA-256 of the token is kept: a leaked
// database does not yield usable tokens. The token carries 256 random bits, so an unsalted fast
// hash is enough (no dictionary to attack).
type OneTimeToken struct {
	ID        string
	TenantID  string
	UserID    string
	Purpose   string
	ExpiresAt time.Time
}

// HashToken returns the stored form of an opaque token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateToken stores a new single-use token for the user and returns the token's text, which
// exists only in the return value.
func (r Users) CreateToken(ctx context.Context, userID, purpose string, ttl time.Duration) (string, *OneTimeToken, error) {
	return r.createToken(ctx, userID, purpose, tutela.RandomToken(32), ttl)
}

// createToken stores tok (64 hex characters from tutela.RandomToken(32)) as a one-time token.
func (r Users) createToken(ctx context.Context, userID, purpose, tok string, ttl time.Duration) (string, *OneTimeToken, error) {
	if len(tok) != 64 {
		return "", nil, tutela.Errorf(tutela.EINTERNAL, "one-time token of the wrong length")
	}
	t := &OneTimeToken{ID: tutela.NewID(), TenantID: r.tenantID, UserID: userID, Purpose: purpose,
		ExpiresAt: r.tx.now.Add(ttl)}
	_, err := r.tx.exec(ctx, `INSERT INTO user_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.ID, t.TenantID, t.UserID, t.Purpose, HashToken(tok), r.tx.now, t.ExpiresAt)
	if isForeignKeyErr(err) {
		return "", nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return "", nil, err
	}
	if err := r.tx.Record(ctx, "user.token_issue", r.tenantID, "user", userID, "", map[string]any{"purpose": purpose}); err != nil {
		return "", nil, err
	}
	return tok, t, nil
}

// PeekToken returns the unexpired, unused token of the given purpose without using it up, so a
// caller can validate what comes with the token (a new password) before spending it. It fails
// exactly like ConsumeToken.
func (tx *Tx) PeekToken(ctx context.Context, token, purpose string) (*OneTimeToken, error) {
	if len(token) != 64 {
		return nil, errBadToken()
	}
	return scanToken(tx.queryRow(ctx, `SELECT id, tenant_id, user_id, purpose, expires_at FROM user_tokens
		WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1`,
		tx.now, HashToken(token), purpose))
}

// ConsumeToken marks the unexpired, unused token of the given purpose as used and returns it.
// Any other token (unknown, expired, used, another purpose) is the same unauthenticated error,
// so a caller learns nothing from which check failed. The UPDATE … WHERE used_at IS NULL makes
// two concurrent redemptions of one token succeed at most once.
func (tx *Tx) ConsumeToken(ctx context.Context, token, purpose string) (*OneTimeToken, error) {
	if len(token) != 64 {
		return nil, errBadToken()
	}
	t, err := scanToken(tx.queryRow(ctx, `UPDATE user_tokens SET used_at = $1
		WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1
		RETURNING id, tenant_id, user_id, purpose, expires_at`, tx.now, HashToken(token), purpose))
	if err != nil {
		return nil, err
	}
	return t, tx.Record(ctx, "user.token_redeem", t.TenantID, "user", t.UserID, "", map[string]any{"purpose": purpose})
}

// RevokeTokens deletes the user's outstanding one-time tokens of every purpose: reset codes,
// setup tokens and pending MFA sign-in challenges. A password change or reset and disabling the
// account call it in the same transaction, so a code mailed before, or a sign-in begun with the
// old password, cannot be finished afterwards.
func (r Users) RevokeTokens(ctx context.Context, userID string) error {
	res, err := r.tx.exec(ctx, `DELETE FROM user_tokens WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL`,
		r.tenantID, userID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return err
	}
	return r.tx.Record(ctx, "user.token_revoke", r.tenantID, "user", userID, "", map[string]any{"tokens": n})
}

func errBadToken() error {
	return tutela.Errorf(tutela.EUNAUTHENTICATED, "token is invalid or expired")
}

func scanToken(row *sql.Row) (*OneTimeToken, error) {
	var t OneTimeToken
	err := row.Scan(&t.ID, &t.TenantID, &t.UserID, &t.Purpose, &t.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errBadToken()
	}
	if err != nil {
		return nil, err
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return &t, nil
}
