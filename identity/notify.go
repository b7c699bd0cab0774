package identity

import (
	"context"
	"encoding/json"
	"fmt"

	"tutela"
	"tutela/jobs"
	"tutela/mail"
	"tutela/sqlstore"
)

// Job kinds the identity service runs through the durable queue (package jobs).
const (
	// JobMail sends one e-mail. Sealed: messages carry addresses and, for password resets, the
	// code itself.
	JobMail = "mail"
	// JobPasswordReset looks up the account a forgot-password request names and, if it may
	// have one, issues a reset code and queues its e-mail. Sealed: the payload is an address
	// and an IP.
	JobPasswordReset = "password_reset_request"
)

// registerJobs gives the queue the kinds this service enqueues. Without a mailer there is
// nothing to register: notifications are skipped and forgot-password is not configured.
func (s *Service) registerJobs() {
	if s.Jobs == nil || s.Mailer == nil {
		return
	}
	s.Jobs.Register(jobs.Kind{Name: JobMail, Sealed: true, Handle: func(ctx context.Context, _ string, payload []byte) error {
		var m mail.Message
		if err := json.Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("mail job payload: %w", err)
		}
		return s.Mailer.Send(ctx, m)
	}})
	// A reset request is worth a few quick retries (the database was busy); after that the
	// user asks again.
	s.Jobs.Register(jobs.Kind{Name: JobPasswordReset, Sealed: true, MaxAttempts: 3, Handle: func(ctx context.Context, _ string, payload []byte) error {
		var r resetRequest
		if err := json.Unmarshal(payload, &r); err != nil {
			return fmt.Errorf("reset request payload: %w", err)
		}
		return s.sendReset(ctx, r.Tenant, r.Email, r.IP)
	}})
}

// mailing reports whether e-mail can go out: a mailer and the queue that delivers for it.
func (s *Service) mailing() bool { return s.Mailer != nil && s.Jobs != nil }

// notifyTx queues m in tx, so it is sent exactly when tx commits (and, the queue being durable,
// even if this node stops first). Without e-mail it does nothing.
func (s *Service) notifyTx(ctx context.Context, tx *sqlstore.Tx, tenantID string, m mail.Message) error {
	if !s.mailing() || m.To == "" {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	defer clear(b)
	return s.Jobs.Enqueue(ctx, tx, JobMail, tenantID, b)
}

// notify queues one message in a transaction of its own, for callers whose change has already
// committed. A failure to queue is logged and never fails the caller, whose change stands;
// prefer notifyTx where the change's transaction is at hand.
func (s *Service) notify(ctx context.Context, m mail.Message, what string) {
	if !s.mailing() || m.To == "" {
		return
	}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return s.notifyTx(ctx, tx, "", m) }); err != nil {
		s.log.Error("queue "+what+" notification", "err", err)
	}
}

// Change is a change to how a user signs in, or a sign that someone else is trying to. The user
// is told of each by e-mail (ASVS 5.0 6.3.7), so a takeover does not go unnoticed. The values
// are the matching security event kinds.
type Change string

const (
	ChangePasswordChanged   Change = "password_changed"
	ChangePasswordReset     Change = "password_reset"
	ChangeFactorAdded       Change = "mfa_enrolled"
	ChangeFactorRemoved     Change = "mfa_factor_removed"
	ChangeMFAResetByAdmin   Change = "mfa_reset_by_admin"
	ChangeRecoveryCodes     Change = "recovery_codes_generated"
	ChangeTOTPReplayRefused Change = "totp_replay_refused"
)

// changeMail is each change's message. None carries a secret: only what happened and what to do.
var changeMail = map[Change]struct{ subject, what string }{
	ChangePasswordChanged: {"Your password was changed", "The password of your account %s was changed, and every session of the account was signed out."},
	ChangePasswordReset:   {"Your password was reset", "The password of your account %s was reset with a code sent to this address, and every session of the account was signed out."},
	ChangeFactorAdded:     {"A second factor was added to your account", "A second factor (an authenticator app or a passkey) was added to your account %s."},
	ChangeFactorRemoved:   {"A second factor was removed from your account", "A second factor (an authenticator app or a passkey) was removed from your account %s."},
	ChangeMFAResetByAdmin: {"Your second factors were reset", "An administrator removed the second factors (authenticator app, passkeys, recovery codes) of %s.\n\nYou will be asked to set up a new one at your next sign-in."},
	ChangeRecoveryCodes:   {"New recovery codes were generated", "New recovery codes were generated for your account %s; the old ones no longer work."},
	ChangeTOTPReplayRefused: {"A used sign-in code was tried again", "Someone entered an authenticator code of your account %s that had already been used, and it was refused.\n\n" +
		"Only someone who saw the code, and knows your password, could do that: change your password."},
}

// NotifyChange queues the e-mail telling u of c, in tx: the message exists exactly when the
// change commits. Without e-mail it does nothing.
func (s *Service) NotifyChange(ctx context.Context, tx *sqlstore.Tx, u *tutela.User, c Change) error {
	m, ok := changeMail[c]
	if !ok {
		return fmt.Errorf("identity: no notification for %q", c)
	}
	if u == nil {
		return nil
	}
	return s.notifyTx(ctx, tx, u.TenantID, mail.Message{To: u.Email, Subject: m.subject,
		Text: fmt.Sprintf(m.what, u.Email) + "\n\nIf this was not you, contact your administrator at once.\n"})
}

// NotifyEmailChanged tells the old address, in tx, that the account's e-mail address changed, so
// a takeover that redirects password resets elsewhere does not go unnoticed (ASVS 7.5.1).
func (s *Service) NotifyEmailChanged(ctx context.Context, tx *sqlstore.Tx, tenantID, oldEmail, newEmail string) error {
	return s.notifyTx(ctx, tx, tenantID, mail.Message{To: oldEmail, Subject: "Your e-mail address was changed",
		Text: "The e-mail address of your account " + oldEmail + " was changed to " + newEmail +
			".\n\nPassword reset codes now go to the new address. If you did not ask for this, contact your " +
			"administrator at once.\n"})
}
