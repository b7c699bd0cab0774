package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tutela"
	"tutela/mail"
	"tutela/sqlstore"
)

// ResetTTL is how long a password reset token stays valid.
const ResetTTL = 30 * time.Minute

// forgotLimit: at most 3 reset e-mails per account per hour, so the feature cannot be used to
// flood someone's inbox.
var forgotLimit = Limit{MaxFailures: 3, Window: time.Hour, BaseLock: time.Hour, MaxLock: time.Hour}

// ForgotPassword starts a self-service reset. It answers the same way, at the same speed,
// whether or not the account exists: the lookup, the token and the e-mail all happen in the
// background. Only an active user with a password (or awaiting one) of an active tenant gets
// an e-mail.
func (s *Service) ForgotPassword(ctx context.Context, tenantSlug, email, ip string) error {
	slug := strings.ToLower(strings.TrimSpace(tenantSlug))
	if slug == "" || len(slug) > 63 {
		return tutela.FieldErrorf("tenant", "tenant is required")
	}
	if strings.TrimSpace(email) == "" || len(email) > 254 {
		return tutela.FieldErrorf("email", "email is required")
	}
	if s.Mailer == nil {
		return tutela.Errorf(tutela.EUNAVAILABLE, "password reset by e-mail is not configured")
	}
	s.goBackground(ctx, "password reset e-mail", func(bg context.Context) error { return s.sendReset(bg, slug, email, ip) })
	return nil
}

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
		if tok, _, err = tx.Users(t.ID).CreateToken(ctx, cred.User.ID, sqlstore.TokenReset, ResetTTL); err != nil {
			return err
		}
		user = cred.User
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: t.ID, UserID: user.ID,
			Kind: "password_reset_requested", IP: ip})
	})
	if err != nil || user == nil {
		return err
	}
	return s.Mailer.Send(ctx, mail.Message{
		To:      user.Email,
		Subject: "Reset your password",
		Text: fmt.Sprintf("Someone (hopefully you) asked to reset the password of %s.\n\n"+
			"To choose a new password, send this one-time code to %s/v1/auth/password/reset "+
			"within 30 minutes:\n\n    %s\n\n"+
			"If you did not ask for this, ignore this message: your password stays as it is.\n",
			user.Email, strings.TrimRight(s.PublicURL, "/"), tok),
	})
}
