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
	// E-mail is urgent: reset codes and security notices go out ahead of a backlog of
	// forgot-password requests (anyone can enqueue those).
	s.Jobs.Register(jobs.Kind{Name: JobMail, Sealed: true, Urgent: true, Handle: func(ctx context.Context, _ string, payload []byte) error {
		var m mail.Message
		if err := json.Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("mail job payload: %w", err)
		}
		return s.Mailer.Send(ctx, m)
	}})
	// A reset request is worth a few quick retries (the database was busy); after that the
	// user asks again. Anonymous clients enqueue these, so their number is capped (ASVS 5.0
	// 2.4.1): past sqlstore.MaxPendingResetRequests forgot-password answers 503 to everyone.
	s.Jobs.Register(jobs.Kind{Name: JobPasswordReset, Sealed: true, MaxAttempts: 3,
		MaxPending: sqlstore.MaxPendingResetRequests, Handle: func(ctx context.Context, _ string, payload []byte) error {
			var r resetRequest
			if err := json.Unmarshal(payload, &r); err != nil {
				return fmt.Errorf("reset request payload: %w", err)
			}
			return s.sendReset(ctx, r.Tenant, r.Email, r.IP)
		}})
	s.Jobs.Register(jobs.Kind{Name: JobMFAEnrollCode, Sealed: true, Urgent: true, Handle: s.sendEnrollmentCode})
}

// mailing reports whether e-mail can go out: a mailer and the queue that delivers for it.
func (s *Service) mailing() bool { return s.Mailer != nil && s.Jobs != nil }

// Notice is an e-mail prepared (sealed) before the transaction of the change it reports, to be
// queued in that transaction: it is then sent exactly when the change commits, and, the queue
// being durable, even if this node stops first. A nil Notice (no e-mail configured) queues
// nothing.
type Notice struct{ job *sqlstore.Job }

// Enqueue adds the notice to tx.
func (n *Notice) Enqueue(ctx context.Context, tx *sqlstore.Tx) error {
	if n == nil {
		return nil
	}
	return tx.EnqueueJob(ctx, n.job)
}

// prepareMail seals m as a mail job. Call it outside any transaction (jobs.Queue.Prepare).
func (s *Service) prepareMail(tenantID string, m mail.Message) (*Notice, error) {
	if !s.mailing() || m.To == "" {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	j, err := s.Jobs.Prepare(JobMail, tenantID, b)
	if err != nil {
		return nil, err
	}
	return &Notice{job: j}, nil
}

// PrepareMail seals m as a mail job for the caller to queue (Notice.Enqueue) in the
// transaction of the change it reports; call it outside any transaction. Without e-mail
// configured it returns nil, which queues nothing.
func (s *Service) PrepareMail(tenantID string, m mail.Message) (*Notice, error) {
	return s.prepareMail(tenantID, m)
}

// notify queues one message to a user of tenantID in a transaction of its own, for callers whose
// change has already committed (a crash between the two loses the message). A failure to queue
// is logged and never fails the caller, whose change stands. Prefer a Notice queued with the
// change. The job carries the tenant: it holds the user's addresses, so only a node of the
// tenant's data region may claim it (docs/residency.md).
func (s *Service) notify(ctx context.Context, tenantID string, m mail.Message, what string) {
	n, err := s.prepareMail(tenantID, m)
	if err == nil && n != nil {
		err = s.db.Update(ctx, func(tx *sqlstore.Tx) error { return n.Enqueue(ctx, tx) })
	}
	if err != nil {
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
	ChangeRecoveryCodes     Change = "recovery_codes_generated"
	ChangeTOTPReplayRefused Change = "totp_replay_refused"
)

// changeMail is each change's message. None carries a secret: only what happened and what to do.
var changeMail = map[Change]struct{ subject, what string }{
	ChangePasswordChanged: {"Your password was changed", "The password of your account %s was changed, and every session of the account was signed out."},
	ChangePasswordReset:   {"Your password was reset", "The password of your account %s was reset with a code sent to this address, and every session of the account was signed out."},
	ChangeFactorAdded:     {"A second factor was added to your account", "A second factor (an authenticator app or a passkey) was added to your account %s."},
	ChangeFactorRemoved:   {"A second factor was removed from your account", "A second factor (an authenticator app or a passkey) was removed from your account %s."},
	ChangeRecoveryCodes:   {"New recovery codes were generated", "New recovery codes were generated for your account %s; the old ones no longer work."},
	ChangeTOTPReplayRefused: {"A used sign-in code was tried again", "Someone entered an authenticator code of your account %s that had already been used, and it was refused.\n\n" +
		"Only someone who saw the code, and knows your password, could do that: change your password."},
}

// PrepareChange prepares the e-mail telling u of c, for the caller to queue in the transaction
// that makes the change. Call it before that transaction begins.
func (s *Service) PrepareChange(u *tutela.User, c Change) (*Notice, error) {
	m, ok := changeMail[c]
	if !ok {
		return nil, fmt.Errorf("identity: no notification for %q", c)
	}
	if u == nil {
		return nil, nil
	}
	return s.prepareMail(u.TenantID, changeMessage(u, m.subject, m.what))
}

// NotifyChange queues the e-mail telling u of c right after a change that committed where no
// Notice could be prepared before (the user was only known inside the transaction).
func (s *Service) NotifyChange(ctx context.Context, u *tutela.User, c Change) {
	m, ok := changeMail[c]
	if !ok || u == nil {
		s.log.Error("no notification for change", "change", string(c))
		return
	}
	s.notify(ctx, u.TenantID, changeMessage(u, m.subject, m.what), string(c))
}

func changeMessage(u *tutela.User, subject, what string) mail.Message {
	return mail.Message{To: u.Email, Subject: subject,
		Text: fmt.Sprintf(what, u.Email) + "\n\nIf this was not you, contact your administrator at once.\n"}
}

// NotifyEmailChanged tells the old address that the account's e-mail address changed, so a
// takeover that redirects password resets elsewhere does not go unnoticed (ASVS 7.5.1). It is
// queued right after the change commits, as a job of the user's tenant.
func (s *Service) NotifyEmailChanged(ctx context.Context, tenantID, oldEmail, newEmail string) {
	s.notify(ctx, tenantID, mail.Message{To: oldEmail, Subject: "Your e-mail address was changed",
		Text: "The e-mail address of your account " + oldEmail + " was changed to " + newEmail +
			".\n\nPassword reset codes now go to the new address. If you did not ask for this, contact your " +
			"administrator at once.\n"}, "e-mail change")
}
