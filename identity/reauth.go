package identity

import (
	"context"
	"errors"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// ReauthWindow is how long a sign-in, a step-up or a re-entered password counts as a fresh
// authentication for actions that need one (ending other sessions, ASVS 7.5.2).
const ReauthWindow = 5 * time.Minute

// passwordLimit throttles re-entered passwords (re-authentication and password change) per user,
// as wrong second factors are: someone holding a stolen session cannot guess the password at the
// request rate.
var passwordLimit = Limit{MaxFailures: 5, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute}

// checkCurrentPassword verifies the signed-in user's password, throttled per user: a lock is
// ThrottledError, a wrong password EINVALIDCREDENTIALS (and counts towards the lock). The attempt
// is counted before the hash is checked (reserveUserAttempt), so concurrent guesses get at most
// passwordLimit.MaxFailures checks; a success resets the counter.
//
// A refusal is audited as action (auth.reauthenticate or auth.password_change) with reason
// wrong_password or locked (ASVS 5.0 16.3.1).
func (s *Service) checkCurrentPassword(ctx context.Context, cred *sqlstore.Credentials, pw tutela.Secret, ip, action string) error {
	u := cred.User
	key := keyHash("password", u.TenantID, u.ID)
	r, err := s.reserveUserAttempt(ctx, key, "password", passwordLimit)
	if err != nil {
		var throttled *ThrottledError
		if errors.As(err, &throttled) {
			s.recordAuthFailure(ctx, authFailureEvent(ctx, action, u.TenantID, u.ID, map[string]any{"reason": "locked"}))
		}
		return err
	}
	ok := false
	if cred.PasswordHash != "" {
		ok, _, err = s.Hasher.Verify(ctx, pw.Reveal(), cred.PasswordHash)
		if err != nil && passwordUnchecked(err) {
			s.uncheck(ctx, r.takeBack) // nothing was tried
			s.logUnchecked(err, u.ID)
			return err
		}
	}
	if ok {
		return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ResetThrottles(ctx, key) })
	}
	// Only records: they go with other callers' in the store's next group commit.
	ev := authFailureEvent(ctx, action, u.TenantID, u.ID, map[string]any{"reason": "wrong_password"})
	if err := s.db.GroupCommit(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		if err := tx.Audit(ctx, ev); err != nil {
			return err
		}
		return recordUserLock(ctx, tx, r, u, ip, "password_check_locked")
	}); err != nil {
		return err
	}
	return tutela.Errorf(tutela.EINVALIDCREDENTIALS, "password not accepted")
}

// recordUserLock records the security event lockKind when the failed attempt r locked u's
// counter. The lock itself was set when r was reserved.
func recordUserLock(ctx context.Context, tx *sqlstore.Tx, r reservation, u *tutela.User, ip, lockKind string) error {
	if !r.locked {
		return nil
	}
	return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: lockKind, IP: ip})
}

// Reauthenticate checks the signed-in user's password again and records it on the session, so
// actions that need a fresh authentication are allowed for ReauthWindow.
// Like StepUp, it renews a cookie-authenticated session's secret and returns the new one.
func (s *Service) Reauthenticate(ctx context.Context, p *tutela.Principal, pw tutela.Secret, ip string) (tutela.Secret, error) {
	if p.SessionID == "" || p.Kind != tutela.PrincipalUser {
		return tutela.Secret{}, tutela.Errorf(tutela.EFORBIDDEN, "re-authentication needs a user session")
	}
	var cred *sqlstore.Credentials
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		cred, err = tx.Users(p.TenantID).Credentials(ctx, p.UserID)
		return err
	}); err != nil {
		return tutela.Secret{}, err
	}
	if err := s.checkCurrentPassword(ctx, cred, pw, ip, "auth.reauthenticate"); err != nil {
		return tutela.Secret{}, err
	}
	var secret tutela.Secret
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Reauthenticated(ctx, p.SessionID); err != nil {
			return err
		}
		var err error
		secret, err = s.renewSessionSecret(ctx, tx, p)
		return err
	})
	return secret, err
}

// RecentlyAuthenticated reports whether the principal signed in, proved a second factor or
// re-entered their password within ReauthWindow.
func (s *Service) RecentlyAuthenticated(p *tutela.Principal) bool {
	now := s.now()
	for _, t := range []time.Time{p.AuthTime, p.StepUpAt, p.ReauthAt} {
		if !t.IsZero() && now.Sub(t) <= ReauthWindow && !t.After(now.Add(time.Minute)) {
			return true
		}
	}
	return false
}
