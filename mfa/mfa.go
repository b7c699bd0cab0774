// Package mfa holds Tutela's second factors and service-account key authentication: TOTP
// (RFC 6238), single-use recovery codes, passkeys (W3C WebAuthn Level 3) and private_key_jwt
// client assertions (RFC 7523 §2.2, OIDC Core §9).
//
// The package verifies factors and stores them; it does not decide when a factor is needed.
// The sign-in flow asks HasActiveFactor, then calls one Verify/Finish method, and turns the
// returned errors into security events and throttle failures. Every method takes the tenant
// and user it acts for and every store query filters on both, so a factor ID of another user
// or tenant is not found.
package mfa

import (
	"context"
	"errors"

	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"tutela"
	"tutela/sqlstore"
	"tutela/vault"
)

// Guard is a condition on a new factor, checked in the transaction that activates it (a
// confirmed TOTP factor, a registered passkey): an error stops the activation and rolls back
// everything it wrote. The sign-in flow uses it to spend an enrolment code atomically with the
// enrolment it allows. A nil Guard allows every activation.
type Guard func(tx *sqlstore.Tx) error

// Factor is one second factor as listed to its user or an administrator (no secret material).
type Factor = sqlstore.MFAFactor

// Factor types.
const (
	TypeTOTP     = sqlstore.FactorTOTP
	TypeWebAuthn = sqlstore.FactorWebAuthn
	TypeRecovery = sqlstore.FactorRecovery
)

// Errors. They are *tutela.Error values with client-safe messages; compare with errors.Is. The
// wrong-factor errors all carry invalid_credentials, so the HTTP layer answers 401 without
// further mapping, and the sign-in flow should count each as a failed attempt.
var (
	// ErrInvalidCode: the TOTP or recovery code is wrong, expired, or the user has no usable
	// factor of that kind (including a TOTP factor that was never confirmed).
	ErrInvalidCode = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "invalid code")
	// ErrReplayed: a correct TOTP code whose time step was already used (RFC 6238 §5.2). Only
	// someone who knows the current code can get it, so saying so leaks nothing; the user waits
	// for the next code.
	ErrReplayed = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "this code was already used; wait for the next one")
	// ErrConfirmCodeReused: the replayed step is the one whose code confirmed the factor — a
	// newcomer typing the confirming code again at the first sign-in, not a sign that someone
	// saw a code. Refused like any spent step, without the replay alarm.
	ErrConfirmCodeReused = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "this code confirmed the authenticator app; wait for the next one")
	// ErrWebAuthn: the passkey response failed verification (signature, origin, challenge, user
	// verification, unknown or expired ceremony).
	ErrWebAuthn = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "passkey verification failed")
	// ErrClonedAuthenticator: a correctly signed assertion whose signature counter did not move
	// forward, a sign the credential's private key exists twice. The caller records a security
	// event; the store has already written an mfa.webauthn_cloned audit event.
	ErrClonedAuthenticator = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "passkey verification failed")
	// ErrClientAuth: a private_key_jwt client assertion was refused.
	ErrClientAuth = tutela.Errorf(tutela.EUNAUTHENTICATED, "client authentication failed")
	// ErrAssertionReplayed: a valid client assertion whose jti was already accepted.
	ErrAssertionReplayed = tutela.Errorf(tutela.EUNAUTHENTICATED, "client authentication failed")
)

// WebAuthnConfig names the relying party passkeys are bound to.
type WebAuthnConfig struct {
	RPID          string   // the registrable domain, e.g. "tutela.example.org"
	RPDisplayName string   // shown by the authenticator
	RPOrigins     []string // full origins the browser may report, e.g. "https://tutela.example.org"
}

// Service is second-factor enrolment and verification. It is safe for concurrent use.
type Service struct {
	db       *sqlstore.DB
	sealer   vault.Sealer
	now      tutela.Clock
	webauthn *gowebauthn.WebAuthn
}

// New returns the service. A nil clock means tutela.SystemClock.
func New(db *sqlstore.DB, sealer vault.Sealer, clock tutela.Clock, wcfg WebAuthnConfig) (*Service, error) {
	if db == nil || sealer == nil {
		return nil, errors.New("mfa: db and sealer are required")
	}
	if clock == nil {
		clock = tutela.SystemClock
	}
	w, err := newWebAuthn(wcfg)
	if err != nil {
		return nil, err
	}
	return &Service{db: db, sealer: sealer, now: clock, webauthn: w}, nil
}

// Factors lists the user's factors, oldest first.
func (s *Service) Factors(ctx context.Context, tenantID, userID string) ([]*Factor, error) {
	var out []*Factor
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		out, err = tx.MFA(tenantID).Factors(ctx, userID)
		return err
	})
	return out, err
}

// HasActiveFactor reports whether the user has a confirmed TOTP factor or a passkey, i.e.
// whether sign-in must ask for a second factor. Recovery codes alone do not count.
func (s *Service) HasActiveFactor(ctx context.Context, tenantID, userID string) (bool, error) {
	var ok bool
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		ok, err = tx.MFA(tenantID).HasActiveFactor(ctx, userID)
		return err
	})
	return ok, err
}

// RemoveFactor deletes one of the user's factors. The caller decides whether removing the last
// one is allowed (and should require a step-up before calling).
func (s *Service) RemoveFactor(ctx context.Context, tenantID, userID, factorID string) error {
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).RemoveFactor(ctx, userID, factorID) })
}

// RemoveAllFactors deletes every factor, recovery code and pending ceremony of the user: an
// administrator's MFA reset. It returns how many factors were removed.
func (s *Service) RemoveAllFactors(ctx context.Context, tenantID, userID string) (int64, error) {
	var n int64
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		n, err = tx.MFA(tenantID).RemoveAllFactors(ctx, userID)
		return err
	})
	return n, err
}
