package identity

import (
	"context"
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
// ThrottledError, a wrong password EINVALIDCREDENTIALS (and counts towards the lock).
func (s *Service) checkCurrentPassword(ctx context.Context, cred *sqlstore.Credentials, pw tutela.Secret, ip string) error {
	u := cred.User
	key := keyHash("password", u.TenantID, u.ID)
	if wait, err := s.lockedFor(ctx, key); err != nil {
		return err
	} else if wait > 0 {
		return &ThrottledError{Wait: wait}
	}
	ok := false
	if cred.PasswordHash != "" {
		var err error
		ok, _, err = s.Hasher.Verify(ctx, pw.Reveal(), cred.PasswordHash)
		if err != nil && tutela.ErrorCode(err) == tutela.EUNAVAILABLE {
			return err
		}
	}
	if ok {
		return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ResetThrottles(ctx, key) })
	}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return countUserFailure(ctx, tx, key, "password", passwordLimit, u, ip, "password_check_locked")
	}); err != nil {
		return err
	}
	return tutela.Errorf(tutela.EINVALIDCREDENTIALS, "password not accepted")
}

// countUserFailure counts one wrong credential of u against the throttle key under limit and,
// when that locks it, records the security event lockKind.
func countUserFailure(ctx context.Context, tx *sqlstore.Tx, key []byte, kind string, limit Limit, u *tutela.User, ip, lockKind string) error {
	th, err := tx.LockThrottle(ctx, key, kind, nil)
	if err != nil {
		return err
	}
	locked := limit.fail(th, tx.Now())
	if err := tx.SaveThrottle(ctx, th); err != nil {
		return err
	}
	if locked {
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: lockKind, IP: ip})
	}
	return nil
}

// Reauthenticate checks the signed-in user's password again and records it on the session, so
// actions that need a fresh authentication are allowed for ReauthWindow.
func (s *Service) Reauthenticate(ctx context.Context, p *tutela.Principal, pw tutela.Secret, ip string) error {
	if p.SessionID == "" || p.Kind != tutela.PrincipalUser {
		return tutela.Errorf(tutela.EFORBIDDEN, "re-authentication needs a user session")
	}
	var cred *sqlstore.Credentials
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		cred, err = tx.Users(p.TenantID).Credentials(ctx, p.UserID)
		return err
	}); err != nil {
		return err
	}
	if err := s.checkCurrentPassword(ctx, cred, pw, ip); err != nil {
		return err
	}
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Reauthenticated(ctx, p.SessionID) })
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
