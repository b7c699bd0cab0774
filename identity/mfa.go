package identity

import (
	"context"
	"errors"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/mfa"
	"tutela/sqlstore"
)

// MFAChallengeTTL is how long a sign-in may wait between the password and the second factor.
const MFAChallengeTTL = 5 * time.Minute

// StepUpWindow is how recent a second factor must be for a sensitive action.
const StepUpWindow = authz.StepUpWindow

// mfaLimit throttles wrong second factors per user, like passwords: 5 failures in 15 minutes
// lock further attempts with exponential backoff.
var mfaLimit = Limit{MaxFailures: 5, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute}

// MFARequiredError answers a correct password when the user has a second factor: the sign-in
// continues with the challenge and one of the methods.
type MFARequiredError struct {
	Challenge tutela.Secret
	Methods   []string
	ExpiresIn time.Duration
}

func (e *MFARequiredError) Error() string { return "second factor required" }

// Unwrap makes ErrorCode see mfa_required.
func (e *MFARequiredError) Unwrap() error {
	return tutela.Errorf(tutela.EMFAREQUIRED, "password accepted; complete the sign-in with a second factor")
}

func (s *Service) mfaMethods(ctx context.Context, tenantID, userID string) ([]string, error) {
	fs, err := s.MFA.Factors(ctx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if f.Active && !seen[f.Type] {
			seen[f.Type] = true
			out = append(out, f.Type)
		}
	}
	return out, nil
}

// errCodeSpent answers a correct TOTP code whose time step was already used — typically the
// code that just confirmed the authenticator, typed again for the first sign-in. Only someone who
// knows the current code can get it, so saying so leaks nothing (mfa.ErrReplayed); the code
// stays invalid_credentials, and the message tells the user what to do.
var errCodeSpent = tutela.Errorf(tutela.EINVALIDCREDENTIALS,
	"this code was already used (a code that confirmed the authenticator app cannot also sign in); wait for the app to show the next code and enter that")

var errChallenge = tutela.Errorf(tutela.EUNAUTHENTICATED, "sign-in challenge is invalid or expired; sign in again")

// peekChallenge finds the pending sign-in of a challenge without using it up.
func (s *Service) peekChallenge(ctx context.Context, challenge string) (*sqlstore.Credentials, error) {
	var cred *sqlstore.Credentials
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.PeekToken(ctx, challenge, sqlstore.TokenMFA)
		if err != nil {
			return errChallenge
		}
		// The challenge names no tenant: resolve it before anything of the user is read, so a
		// node of another data region answers wrong_region (docs/residency.md) and neither
		// opens the user's factors nor writes a lockout, event or session for them.
		if _, err := tx.Tenant(ctx, t.TenantID); err != nil {
			return err
		}
		cred, err = tx.Users(t.TenantID).Credentials(ctx, t.UserID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if cred.User.Status != tutela.StatusActive {
		return nil, errChallenge
	}
	return cred, nil
}

// secondFactor checks a code (TOTP or recovery) or a passkey assertion for the user, with
// throttling: wrong factors count like wrong passwords. It returns the amr method.
//
// The attempt is counted before the factor is checked (reserveUserAttempt), so concurrent
// guesses get at most mfaLimit.MaxFailures checks. An attempt that fails with any other error
// stays counted: unlike a busy hasher, such an error does not show the factor went unchecked.
//
// Every refused factor is an auth.mfa failure event (ASVS 5.0 16.3.1); step says whether it was
// at sign-in or step-up. Success needs none of its own: the sign-in's auth.login or the
// session's session.step_up records it.
func (s *Service) secondFactor(ctx context.Context, u *tutela.User, code string, webauthnResp []byte, ip, step string) (string, error) {
	method := "hwk"
	if webauthnResp == nil {
		method = "otp"
		if mfa.CodeType(code) == mfa.TypeRecovery {
			method = "rcv"
		}
	}
	failure := func(reason string) audit.Event {
		ev := authFailureEvent(ctx, "auth.mfa", u.TenantID, u.ID, map[string]any{"method": method, "reason": reason, "step": step})
		// The password (or the session) already showed who is signing in.
		ev.ActorType, ev.ActorID = audit.ActorUser, u.ID
		return ev
	}
	key := keyHash("mfa", u.TenantID, u.ID)
	r, err := s.reserveUserAttempt(ctx, key, "mfa", mfaLimit)
	if err != nil {
		var throttled *ThrottledError
		if errors.As(err, &throttled) {
			s.recordAuthFailure(ctx, failure("locked"))
		}
		return "", err
	}
	// A code that passes identifies the user: the events its check records (mfa.totp_used)
	// carry their request data. One that fails takes it back, so a failed attempt's events
	// stay under the tenant's keyset (tutela.RequestMeta.AuditPerson).
	undo := asAuditPerson(ctx, u.TenantID, u.ID)
	var res mfa.CodeResult
	if webauthnResp != nil {
		_, err = s.MFA.FinishWebAuthnLogin(ctx, u.TenantID, u.ID, webauthnResp)
	} else {
		res, err = s.MFA.VerifyCode(ctx, u.TenantID, u.ID, code)
	}
	if err != nil {
		undo()
		if tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
			return "", err
		}
		kind, reason := "", "invalid_code"
		switch {
		case errors.Is(err, mfa.ErrReplayed):
			kind, reason = "totp_replay_refused", "replayed"
		case errors.Is(err, mfa.ErrConfirmCodeReused):
			reason = "confirm_code_reused" // the newcomer's mistake: no alarm
		case errors.Is(err, mfa.ErrClonedAuthenticator):
			kind, reason = "passkey_clone_detected", "cloned"
		}
		// A replayed code means someone saw it and has the password: the user is told, in the
		// transaction that records the event.
		var notice *Notice
		if kind == string(ChangeTOTPReplayRefused) {
			var perr error
			if notice, perr = s.PrepareChange(u, ChangeTOTPReplayRefused); perr != nil {
				return "", perr
			}
		}
		ferr := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.Audit(ctx, failure(reason)); err != nil {
				return err
			}
			if err := recordUserLock(ctx, tx, r, u, ip, "mfa_locked"); err != nil {
				return err
			}
			if kind == "" {
				return nil
			}
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: kind, IP: ip}); err != nil {
				return err
			}
			return notice.Enqueue(ctx, tx)
		})
		if ferr != nil {
			return "", ferr
		}
		if errors.Is(err, mfa.ErrReplayed) || errors.Is(err, mfa.ErrConfirmCodeReused) {
			return "", errCodeSpent
		}
		return "", tutela.Errorf(tutela.EINVALIDCREDENTIALS, "second factor not accepted")
	}
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.ResetThrottles(ctx, key); err != nil {
			return err
		}
		if res.RecoveryUsed {
			return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: "recovery_code_used",
				IP: ip, Details: mustJSON(map[string]int{"remaining": res.Remaining})})
		}
		return nil
	})
	return method, err
}

// CompleteMFA finishes a sign-in with the challenge from Login and a TOTP or recovery code (or
// a passkey assertion). The challenge is used up only on success; the session records the
// second factor as a fresh step-up.
func (s *Service) CompleteMFA(ctx context.Context, challenge, code string, webauthnResp []byte, ip, ua string) (*Grant, error) {
	cred, err := s.peekChallenge(ctx, challenge)
	if err != nil {
		return nil, err
	}
	method, err := s.secondFactor(ctx, cred.User, code, webauthnResp, ip, "sign_in")
	if err != nil {
		return nil, err
	}
	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	var g *Grant
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.ConsumeToken(ctx, challenge, sqlstore.TokenMFA)
		if err != nil || t.UserID != cred.User.ID {
			return errChallenge
		}
		if err := tx.Users(cred.User.TenantID).RecordLoginSuccess(ctx, cred.User.ID); err != nil {
			return err
		}
		if err := tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: cred.User.TenantID, UserID: cred.User.ID, IP: ip,
			UserAgent: ua, Result: "success", Reason: "mfa_" + method}); err != nil {
			return err
		}
		now := tx.Now()
		g, err = s.newSession(ctx, tx, cred.User, cred.TokenVersion, []string{"pwd", method, "mfa"}, &now, ip, ua)
		return err
	})
	if err != nil {
		return nil, err
	}
	g.MustChangePassword = cred.MustChangePassword
	return g, nil
}

// MFAWebAuthnOptions starts a passkey assertion for a pending sign-in.
func (s *Service) MFAWebAuthnOptions(ctx context.Context, challenge string) ([]byte, error) {
	cred, err := s.peekChallenge(ctx, challenge)
	if err != nil {
		return nil, err
	}
	return s.MFA.BeginWebAuthnLogin(ctx, cred.User.TenantID, cred.User.ID)
}

// StepUp proves a second factor again within a session, so sensitive actions are allowed for
// the next StepUpWindow.
//
// When the session cookie authenticated the request, the session gets a new secret, returned
// for the caller to set as the cookie; the old one stops working (ASVS 7.2.4: a new session
// token on re-authentication). Bearer clients get a zero Secret and keep their tokens.
func (s *Service) StepUp(ctx context.Context, p *tutela.Principal, code string, webauthnResp []byte, ip string) (tutela.Secret, error) {
	if p.SessionID == "" || p.Kind != tutela.PrincipalUser {
		return tutela.Secret{}, tutela.Errorf(tutela.EFORBIDDEN, "step-up needs a user session")
	}
	var u *tutela.User
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) { u, err = tx.Users(p.TenantID).Get(ctx, p.UserID); return err }); err != nil {
		return tutela.Secret{}, err
	}
	method, err := s.secondFactor(ctx, u, code, webauthnResp, ip, "step_up")
	if err != nil {
		return tutela.Secret{}, err
	}
	var secret tutela.Secret
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.StepUp(ctx, p.SessionID, method); err != nil {
			return err
		}
		secret, err = s.renewSessionSecret(ctx, tx, p)
		return err
	})
	return secret, err
}

// renewSessionSecret gives a cookie-authenticated session a new secret after a
// re-authentication and returns it; for bearer clients it does nothing.
func (s *Service) renewSessionSecret(ctx context.Context, tx *sqlstore.Tx, p *tutela.Principal) (tutela.Secret, error) {
	if !p.ViaCookie {
		return tutela.Secret{}, nil
	}
	secret := newSecret()
	if err := tx.RenewSessionSecret(ctx, p.SessionID, sqlstore.HashToken(secret)); err != nil {
		return tutela.Secret{}, err
	}
	return tutela.NewSecret(secret), nil
}

// StepUpFresh reports whether the principal proved a second factor within StepUpWindow.
func (s *Service) StepUpFresh(p *tutela.Principal) bool {
	return !p.StepUpAt.IsZero() && s.now().Sub(p.StepUpAt) <= StepUpWindow
}

// asAuditPerson names u as the user the request identified (tutela.SetAuditPerson) and returns
// what takes it back.
func asAuditPerson(ctx context.Context, tenantID, userID string) (undo func()) {
	m := tutela.RequestMetaFrom(ctx)
	if m == nil {
		return func() {}
	}
	prev := m.AuditPerson
	tutela.SetAuditPerson(ctx, tenantID, userID)
	return func() { m.AuditPerson = prev }
}
