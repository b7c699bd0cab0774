package identity

import (
	"context"
	"errors"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/mfa"
	"tutela/sqlstore"
)

// After an administrator resets a user's second factors (lost device), whoever holds the
// password could sign in and enrol a factor of their own, keeping the account. So the reset
// issues a one-time enrolment code, delivered out of band — e-mailed to the user, or, without a
// mailer, shown once to the administrator for hand-over in person — and until it is spent the
// password alone cannot enrol a factor (ASVS 5.0 6.4.x: factor re-enrolment after a reset needs
// more than the remaining factor). The code carries 256 random bits, is stored only as its
// SHA-256 (user_tokens, purpose mfa_enroll), is bound to the user and tenant, expires after
// MFAEnrollCodeTTL, works once, and wrong codes are throttled per user like second factors.

// MFAEnrollCodeTTL is how long an enrolment code from an administrator's MFA reset is valid.
const MFAEnrollCodeTTL = time.Hour

// Delivery of an enrolment code.
const (
	DeliveryEmail    = "email"     // mailed to the user's address
	DeliveryInPerson = "in_person" // no mailer: returned once to the administrator to hand over
)

// MailConfigured reports whether messages to users can be sent (a mailer is configured).
func (s *Service) MailConfigured() bool { return s.mailing() }

// ResetMFA removes every second factor of u, ends the user's sessions and tokens, and issues
// the enrolment code their next enrolment needs, all in tx. delivery is DeliveryEmail when a
// mailer is configured (the caller then sends the code with NotifyMFAReset after commit), else
// DeliveryInPerson (the caller shows the code to the administrator once); it is recorded in the
// security event and the audit log, never the code.
func (s *Service) ResetMFA(ctx context.Context, tx *sqlstore.Tx, u *tutela.User, by, ip string) (code tutela.Secret, expires time.Time, delivery string, err error) {
	if _, err = tx.MFA(u.TenantID).RemoveAllFactors(ctx, u.ID); err != nil {
		return
	}
	if err = s.RevokeAll(ctx, tx, u.TenantID, u.ID, "mfa_reset", ip); err != nil {
		return
	}
	text, ot, err := tx.Users(u.TenantID).IssueMFAEnrollmentCode(ctx, u.ID, MFAEnrollCodeTTL)
	if err != nil {
		return
	}
	delivery = DeliveryInPerson
	if s.MailConfigured() && u.Email != "" {
		delivery = DeliveryEmail
	}
	if err = tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: "mfa_reset_by_admin",
		IP: ip, Details: mustJSON(map[string]string{"by": by, "enrollment_code_delivery": delivery})}); err != nil {
		return
	}
	if err = tx.Record(ctx, "user.mfa_enrollment_code", u.TenantID, "user", u.ID, "",
		map[string]any{"delivery": delivery, "expires_at": ot.ExpiresAt.Format(time.RFC3339)}); err != nil {
		return
	}
	return tutela.NewSecret(text), ot.ExpiresAt, delivery, nil
}

// Enrolment refusals. A missing code is the client's mistake (400 naming the field); a wrong one
// is a refused credential, throttled.
var (
	errEnrollCodeMissing = tutela.FieldErrorf("enrollment_code", "an administrator reset your second factors: enrolling a new one "+
		"needs the one-time enrolment code sent to your e-mail address (or handed to you by the administrator)")
	errEnrollCode = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "the enrolment code is invalid, expired or already used; "+
		"ask an administrator to reset your second factors again for a new one")
)

// EnrollmentCodeRequired reports whether p may enrol a second factor only with an enrolment
// code (after an administrator's MFA reset).
func (s *Service) EnrollmentCodeRequired(ctx context.Context, p *tutela.Principal) (bool, error) {
	if p.Kind != tutela.PrincipalUser {
		return false, nil
	}
	var required bool
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		required, err = tx.Users(p.TenantID).MFAEnrollmentCodeRequired(ctx, p.UserID)
		return err
	})
	return required, err
}

// EnrollmentGuard checks what enrolling a factor needs of p and returns the mfa.Guard for the
// activation: nil when the password suffices (no administrator reset pending). After a reset,
// code must be the user's enrolment code: checked now (throttled, a wrong one is an
// auth.mfa_enroll failure), and spent by the guard in the transaction that activates the
// factor, so it enrols exactly one factor.
func (s *Service) EnrollmentGuard(ctx context.Context, p *tutela.Principal, code, ip string) (mfa.Guard, error) {
	if p.Kind != tutela.PrincipalUser {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "second factors are for people")
	}
	var u *tutela.User
	var required bool
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if u, err = tx.Users(p.TenantID).Get(ctx, p.UserID); err != nil {
			return err
		}
		required, err = tx.Users(p.TenantID).MFAEnrollmentCodeRequired(ctx, p.UserID)
		return err
	}); err != nil {
		return nil, err
	}
	if !required {
		return nil, nil
	}
	if code == "" {
		return nil, errEnrollCodeMissing
	}
	failure := func(reason string) audit.Event {
		ev := authFailureEvent(ctx, "auth.mfa_enroll", u.TenantID, u.ID, map[string]any{"reason": reason})
		ev.ActorType, ev.ActorID = audit.ActorUser, u.ID
		return ev
	}
	key := keyHash("mfa_enroll", u.TenantID, u.ID)
	r, err := s.reserveUserAttempt(ctx, key, "mfa_enroll", mfaLimit)
	if err != nil {
		var throttled *ThrottledError
		if errors.As(err, &throttled) {
			s.recordAuthFailure(ctx, failure("locked"))
		}
		return nil, err
	}
	err = s.db.View(ctx, func(tx *sqlstore.Tx) error { return tx.Users(u.TenantID).PeekMFAEnrollmentCode(ctx, u.ID, code) })
	if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
		// A wrong code stays counted; the failure (and a lock it set) is recorded.
		if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.Audit(ctx, failure("invalid_code")); err != nil {
				return err
			}
			return recordUserLock(ctx, tx, r, u, ip, "mfa_enroll_locked")
		}); err != nil {
			return nil, err
		}
		return nil, errEnrollCode
	}
	if err != nil {
		return nil, err
	}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ResetThrottles(ctx, key) }); err != nil {
		return nil, err
	}
	return func(tx *sqlstore.Tx) error {
		if err := tx.Users(u.TenantID).RedeemMFAEnrollmentCode(ctx, u.ID, code); err != nil {
			if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
				return errEnrollCode // spent or expired since the check
			}
			return err
		}
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID,
			Kind: "mfa_enrollment_code_used", IP: ip})
	}, nil
}
