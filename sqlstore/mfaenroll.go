package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
)

// After an administrator resets a user's second factors, whoever holds the password could
// otherwise enrol a factor of their own at the next sign-in and keep the account (ASVS 5.0
// 6.4.x). So the reset marks the user: enrolling then needs a one-time enrolment code (a
// user_tokens row of purpose TokenMFAEnroll) delivered out of band, spent by the enrolment that
// clears the mark.

// MFAEnrollmentCodeRequired reports whether the user may enrol a second factor only with an
// enrolment code.
func (r Users) MFAEnrollmentCodeRequired(ctx context.Context, userID string) (bool, error) {
	var v bool
	err := r.tx.queryRow(ctx, `SELECT mfa_enrollment_code_required FROM users WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, userID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return v, err
}

// IssueMFAEnrollmentCode marks the user as needing an enrolment code, voids any earlier unused
// one, and stores code (from tutela.RandomToken(32), made by the caller so that its e-mail can be
// sealed before this transaction) as the new one, valid for ttl. Only its hash is stored.
func (r Users) IssueMFAEnrollmentCode(ctx context.Context, userID, code string, ttl time.Duration) (*OneTimeToken, error) {
	res, err := r.tx.exec(ctx, `UPDATE users SET mfa_enrollment_code_required = TRUE WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, userID)
	if err := affectedOne(res, err, "user not found"); err != nil {
		return nil, err
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM user_tokens WHERE tenant_id = $1 AND user_id = $2 AND purpose = $3 AND used_at IS NULL`,
		r.tenantID, userID, TokenMFAEnroll); err != nil {
		return nil, err
	}
	_, t, err := r.createToken(ctx, userID, TokenMFAEnroll, code, ttl)
	return t, err
}

// PeekMFAEnrollmentCode checks, without spending it, that code is the user's unexpired,
// unused enrolment code. Anything else — unknown, expired, spent, another user's or another
// tenant's — is the same unauthenticated error.
func (r Users) PeekMFAEnrollmentCode(ctx context.Context, userID, code string) error {
	if len(code) != 64 {
		return errBadToken()
	}
	_, err := scanToken(r.tx.queryRow(ctx, `SELECT id, tenant_id, user_id, purpose, expires_at FROM user_tokens
		WHERE token_hash = $2 AND purpose = $3 AND tenant_id = $4 AND user_id = $5 AND used_at IS NULL AND expires_at > $1`,
		r.tx.now, HashToken(code), TokenMFAEnroll, r.tenantID, userID))
	return err
}

// RedeemMFAEnrollmentCode spends the user's enrolment code and clears the mark, in the
// transaction that activates the new factor. It fails like PeekMFAEnrollmentCode; the
// conditional UPDATE lets two concurrent enrolments spend one code at most once.
func (r Users) RedeemMFAEnrollmentCode(ctx context.Context, userID, code string) error {
	if len(code) != 64 {
		return errBadToken()
	}
	t, err := scanToken(r.tx.queryRow(ctx, `UPDATE user_tokens SET used_at = $1
		WHERE token_hash = $2 AND purpose = $3 AND tenant_id = $4 AND user_id = $5 AND used_at IS NULL AND expires_at > $1
		RETURNING id, tenant_id, user_id, purpose, expires_at`,
		r.tx.now, HashToken(code), TokenMFAEnroll, r.tenantID, userID))
	if err != nil {
		return err
	}
	if _, err := r.tx.exec(ctx, `UPDATE users SET mfa_enrollment_code_required = FALSE WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, userID); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.token_redeem", r.tenantID, "user", t.UserID, "", map[string]any{"purpose": TokenMFAEnroll})
}
