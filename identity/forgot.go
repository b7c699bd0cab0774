package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"tutela"
	"tutela/mail"
	"tutela/sqlstore"
)

// DefaultResetCodeTTL is how long an e-mailed password reset code stays valid unless
// auth.reset_code_ttl says otherwise: short, since the code is the account (ASVS 5.0 2.7.2).
const DefaultResetCodeTTL = 10 * time.Minute

// forgotLimit: at most 3 reset e-mails per account per hour, so the feature cannot be used to
// flood someone's inbox.
var forgotLimit = Limit{MaxFailures: 3, Window: time.Hour, BaseLock: time.Hour, MaxLock: time.Hour}

// ForgotPassword starts a self-service reset. It answers the same way, at the same speed,
// whether or not the account exists: it only queues the request (package jobs), and the
// lookup, the code and the e-mail happen in the worker. Only an active user with a password
// (or awaiting one) of an active tenant gets an e-mail. Without e-mail the feature is not
// configured, which is a permanent answer, the same for every account; with too many requests
// already waiting for the tenant (sqlstore.MaxPendingResetRequests) it is unavailable, the same
// for every account of that tenant.
func (s *Service) ForgotPassword(ctx context.Context, tenantSlug, email, ip string) error {
	slug := strings.ToLower(strings.TrimSpace(tenantSlug))
	if slug == "" || len(slug) > 63 {
		return tutela.FieldErrorf("tenant", "tenant is required")
	}
	if strings.TrimSpace(email) == "" || len(email) > 254 {
		return tutela.FieldErrorf("email", "email is required")
	}
	if !s.mailing() {
		return tutela.Errorf(tutela.ENOTCONFIGURED, "password reset by e-mail is not configured on this server")
	}
	b, err := json.Marshal(resetRequest{Tenant: slug, Email: email, IP: ip})
	if err != nil {
		return err
	}
	defer clear(b)
	// The request is counted against its tenant's cap, so a flood aimed at one tenant does not
	// refuse the others; a slug naming no active tenant shares one bucket with the rest of them.
	// A tenant of another data region is refused (wrong_region), not queued: the request would
	// carry the address to a node that may not serve it.
	var tenantID string
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.TenantBySlug(ctx, slug)
		if tutela.ErrorCode(err) == tutela.EWRONGREGION {
			return err
		}
		if err == nil && t.Status == tutela.StatusActive {
			tenantID = t.ID
		}
		return nil
	}); err != nil {
		return err
	}
	return s.Jobs.Enqueue(ctx, JobPasswordReset, tenantID, b)
}

// resetRequest is the payload of a JobPasswordReset job.
type resetRequest struct {
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
	IP     string `json:"ip"`
}

// sendReset runs a queued forgot-password request: it issues the code in one transaction, then
// queues its e-mail (sealed: it carries the code; deleted once sent) right after, in another.
// The mail job cannot share the code's transaction, since it is sealed before it is added and
// the code only exists inside; should this node stop between the two, the request job (not yet
// done) runs again and issues a fresh code.
func (s *Service) sendReset(ctx context.Context, slug, email, ip string) error {
	var (
		tok  string
		user *tutela.User
	)
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.TenantBySlug(ctx, slug)
		if err != nil || t.Status != tutela.StatusActive {
			return nil
		}
		cred, err := tx.Users(t.ID).CredentialsByEmail(ctx, email)
		if err != nil || cred.User.Status != tutela.StatusActive {
			return nil
		}
		th, err := tx.LockThrottle(ctx, keyHash("forgot", t.ID, cred.User.ID), "forgot", nil)
		if err != nil {
			return err
		}
		if th.LockedUntil.After(tx.Now()) {
			return nil
		}
		forgotLimit.fail(th, tx.Now())
		if err := tx.SaveThrottle(ctx, th); err != nil {
			return err
		}
		if tok, _, err = tx.Users(t.ID).CreateToken(ctx, cred.User.ID, sqlstore.TokenReset, s.cfg.ResetCodeTTL); err != nil {
			return err
		}
		user = cred.User
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: t.ID, UserID: user.ID,
			Kind: "password_reset_requested", IP: ip})
	})
	if err != nil || user == nil {
		return err
	}
	n, err := s.prepareMail(user.TenantID, mail.Message{
		To:      user.Email,
		Subject: "Reset your password",
		// The code is typed into the page, never put in the link: a URL ends up in histories
		// and proxy logs.
		Text: fmt.Sprintf("Someone (hopefully you) asked to reset the password of %s.\n\n"+
			"To choose a new password, open %s/t/%s/reset and enter this one-time code "+
			"within %s:\n\n    %s\n\n"+
			"(Applications send it to %s/v1/auth/password/reset.)\n\n"+
			"If you did not ask for this, ignore this message: your password stays as it is.\n",
			user.Email, strings.TrimRight(s.PublicURL, "/"), slug, minutes(s.cfg.ResetCodeTTL), tok, strings.TrimRight(s.PublicURL, "/")),
	})
	if err != nil {
		return err
	}
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return n.Enqueue(ctx, tx) })
}

// minutes writes a whole-minute duration for people: "10 minutes", "1 minute".
func minutes(d time.Duration) string {
	n := int(d.Round(time.Minute) / time.Minute)
	if n == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", n)
}
