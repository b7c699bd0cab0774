package identity

import (
	"context"
	"errors"
	"strings"

	"tutela"
	"tutela/mfa"
	"tutela/sqlstore"
)

// passkeyAMR is the amr of a passkey sign-in (RFC 8176): a hardware-bound key ("hwk") unlocked
// by user verification ("user"). WebAuthn with user verification required is something the
// user has and something they know or are, so the session counts as multi-factor ("mfa") and
// as a fresh step-up, like a password followed by a second factor.
var passkeyAMR = []string{"hwk", "user", "mfa"}

// maxPasskeyResponse bounds an assertion before it is parsed.
const maxPasskeyResponse = 16 << 10

// PasskeyLoginOptions begins a passwordless passkey sign-in in the tenant: the
// PublicKeyCredentialRequestOptions JSON and the ceremony handle PasskeyLogin takes back. It
// writes nothing. An unknown or disabled tenant is ENOTFOUND.
func (s *Service) PasskeyLoginOptions(ctx context.Context, tenantSlug string) (options []byte, challengeID string, err error) {
	if s.MFA == nil {
		return nil, "", tutela.Errorf(tutela.ENOTFOUND, "passkeys are not enabled")
	}
	var t *tutela.Tenant
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		t, err = tx.TenantBySlug(ctx, strings.ToLower(strings.TrimSpace(tenantSlug)))
		return err
	}); err != nil {
		return nil, "", err
	}
	if t.Status != tutela.StatusActive {
		return nil, "", tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return s.MFA.BeginDiscoverableLogin(t.ID)
}

// PasskeyLogin signs a user in with a passkey alone (a discoverable credential with user
// verification): a multi-factor sign-in. It goes through the password path's machinery: the
// account, source and IP throttles (counted before the check, reset on success), the login
// record, the disabled-user and disabled-tenant refusals, and the session. The account is the
// one the assertion's user handle claims in this tenant; every refusal — unknown, disabled,
// another tenant's passkey, a bad signature, a replayed or expired ceremony — is the one
// ErrInvalidCredentials. A passkey whose counter went backwards also records a security event.
func (s *Service) PasskeyLogin(ctx context.Context, tenantSlug, challengeID string, response []byte, ip, ua string) (*Grant, error) {
	if s.MFA == nil {
		return nil, ErrInvalidCredentials
	}
	if len(response) == 0 || len(response) > maxPasskeyResponse {
		return nil, tutela.FieldErrorf("webauthn", "a passkey response is required (at most %d bytes)", maxPasskeyResponse)
	}
	slug := strings.ToLower(strings.TrimSpace(tenantSlug))
	if slug == "" || len(slug) > 63 {
		return nil, tutela.FieldErrorf("tenant", "tenant is required")
	}
	req := LoginRequest{Tenant: slug, IP: ip, UserAgent: ua}
	claimed, claimErr := mfa.ClaimedUser(response)

	// As Login: find the account, then check its counters in one transaction.
	// An assertion naming nobody is counted on a per-source key of its own.
	tg, err := s.checkTarget(ctx, req, slug, keyHash("passkey", slug, claimed),
		func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.Credentials, error) {
			if claimErr != nil {
				return nil, tutela.Errorf(tutela.ENOTFOUND, "no user named")
			}
			return tx.Users(t.ID).Credentials(ctx, claimed)
		},
		func(c *sqlstore.Credentials) []byte { return accountKey(slug, tutela.NormalizeEmail(c.User.Email)) })
	if err != nil {
		return nil, err
	}
	tenant, cred, attempt := tg.tenant, tg.cred, tg.attempt
	tenantID, userID := tg.ids()
	reason := tg.refusal()
	if reason == "" {
		var verified string
		verified, _, err = s.MFA.FinishDiscoverableLogin(ctx, tenant.ID, challengeID, response)
		switch {
		case errors.Is(err, mfa.ErrClonedAuthenticator):
			reason = "passkey_cloned"
			if serr := s.db.GroupCommit(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
				return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenant.ID, UserID: cred.User.ID,
					Kind: "passkey_clone_detected", IP: ip})
			}); serr != nil {
				return nil, serr
			}
		case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS:
			reason = "passkey_refused"
		case err != nil:
			return nil, err // a fault, not a wrong guess: nothing is counted
		case verified != cred.User.ID:
			reason = "passkey_refused"
		}
	}
	if reason != "" {
		if err := s.recordFailure(ctx, tenantID, userID, attempt, req, reason); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}

	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	tutela.SetAuditPerson(ctx, tenant.ID, cred.User.ID)
	var g *Grant
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := attempt.succeeded(ctx, tx); err != nil {
			return err
		}
		if err := tx.Users(tenant.ID).RecordLoginSuccess(ctx, cred.User.ID); err != nil {
			return err
		}
		if err := tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tenant.ID, UserID: cred.User.ID, IP: ip,
			UserAgent: ua, Result: "success", Reason: "passkey"}); err != nil {
			return err
		}
		now := tx.Now()
		var err error
		g, err = s.newSession(ctx, tx, cred.User, cred.TokenVersion, passkeyAMR, &now, ip, ua)
		return err
	})
	if err != nil {
		return nil, s.throttledAttempt(ctx, err, tenantID, userID, req)
	}
	g.MustChangePassword = cred.MustChangePassword
	return g, nil
}
