package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/mail"
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

// JobMFAEnrollCode e-mails the enrolment code of an administrator's MFA reset to the user's
// address as it is when the job runs. Sealed: the payload holds the code.
const JobMFAEnrollCode = "mfa_enrollment_code"

type enrollCodePayload struct {
	UserID string `json:"user_id"`
	Code   string `json:"code"`
}

// MFAReset is an administrator's reset of a user's second factors, prepared before the reset's
// transaction: the new enrolment code and, when e-mail is configured, its sealed e-mail job. ResetMFA
// queues that job in the reset's own transaction, so a committed reset always e-mails its code
// (the queue is durable) and a refused or rolled-back one e-mails nothing. Sealing happens here,
// outside any transaction: on SQLite the vault may need the single writer to create the keyset.
type MFAReset struct {
	userID string
	code   tutela.Secret
	job    *sqlstore.Job // nil: no e-mail; the administrator hands the code over
}

// PrepareMFAReset prepares the reset of userID's second factors.
func (s *Service) PrepareMFAReset(userID string) (*MFAReset, error) {
	r := &MFAReset{userID: userID, code: tutela.NewSecret(tutela.RandomToken(32))}
	if !s.mailing() {
		return r, nil
	}
	b, err := json.Marshal(enrollCodePayload{UserID: userID, Code: r.code.Reveal()})
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if r.job, err = s.Jobs.Prepare(JobMFAEnrollCode, "", b); err != nil {
		return nil, err
	}
	return r, nil
}

// ResetMFA removes every second factor of u, ends the user's sessions and tokens, and issues
// the enrolment code their next enrolment needs, all in tx. delivery is DeliveryEmail when a
// mailer is configured and u has an address (the e-mail with the code is queued in tx), else
// DeliveryInPerson (the caller shows the code to the administrator once); it is recorded in the
// security event and the audit log, never the code.
func (s *Service) ResetMFA(ctx context.Context, tx *sqlstore.Tx, u *tutela.User, by, ip string, prep *MFAReset) (code tutela.Secret, expires time.Time, delivery string, err error) {
	if prep == nil || prep.userID != u.ID {
		err = tutela.Errorf(tutela.EINTERNAL, "MFA reset prepared for another user")
		return
	}
	if _, err = tx.MFA(u.TenantID).RemoveAllFactors(ctx, u.ID); err != nil {
		return
	}
	if err = s.RevokeAll(ctx, tx, u.TenantID, u.ID, "mfa_reset", ip); err != nil {
		return
	}
	ot, err := tx.Users(u.TenantID).IssueMFAEnrollmentCode(ctx, u.ID, prep.code.Reveal(), MFAEnrollCodeTTL)
	if err != nil {
		return
	}
	delivery = DeliveryInPerson
	if prep.job != nil && u.Email != "" {
		delivery = DeliveryEmail
		prep.job.TenantID = u.TenantID
		if err = tx.EnqueueJob(ctx, prep.job); err != nil {
			return
		}
	}
	if err = tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: "mfa_reset_by_admin",
		IP: ip, Details: mustJSON(map[string]string{"by": by, "enrollment_code_delivery": delivery})}); err != nil {
		return
	}
	if err = tx.Record(ctx, "user.mfa_enrollment_code", u.TenantID, "user", u.ID, "",
		map[string]any{"delivery": delivery, "expires_at": ot.ExpiresAt.Format(time.RFC3339)}); err != nil {
		return
	}
	return prep.code, ot.ExpiresAt, delivery, nil
}

// sendEnrollmentCode runs a JobMFAEnrollCode job: it tells the user that an administrator
// removed their second factors, with the one-time enrolment code they need to set up a new one,
// so a reset they did not ask for does not go unnoticed either. A user deleted since, or whose
// code was spent or replaced by a later reset, gets nothing (the later reset sends its own).
func (s *Service) sendEnrollmentCode(ctx context.Context, tenantID string, payload []byte) error {
	var p enrollCodePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("enrolment code job payload: %w", err)
	}
	defer func() { p.Code = "" }()
	var u *tutela.User
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		if u, err = tx.Users(tenantID).Get(ctx, p.UserID); err != nil {
			return err
		}
		return tx.Users(tenantID).PeekMFAEnrollmentCode(ctx, p.UserID, p.Code)
	})
	switch tutela.ErrorCode(err) {
	case "":
	case tutela.ENOTFOUND, tutela.EUNAUTHENTICATED:
		return nil
	default:
		return err
	}
	return s.Mailer.Send(ctx, mail.Message{To: u.Email, Subject: "Your second factors were reset",
		Text: "An administrator removed the second factors (authenticator app, passkeys, recovery codes) of " + u.Email +
			".\n\nTo set up a new one, sign in and give this one-time enrolment code when you confirm the new " +
			"authenticator app or passkey:\n\n    " + p.Code + "\n\nIt works once, within " +
			MFAEnrollCodeTTL.String() + " of the reset. If you did not ask for this, do not use it and contact your " +
			"administrator at once.\n"})
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
		// A wrong code stays counted; the failure (and a lock it set) is recorded, with other
		// callers' records in the store's next group commit.
		ev := failure("invalid_code")
		if err := s.db.GroupCommit(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
			if err := tx.Audit(ctx, ev); err != nil {
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
