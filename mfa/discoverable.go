package mfa

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"tutela"
	"tutela/sqlstore"
)

// A passkey sign-in (discoverable credential, W3C WebAuthn §6.2.2; conditional mediation) begins
// before anyone is named, so its ceremony cannot be a row of webauthn_ceremonies, which belongs
// to a user. It travels with the browser instead, sealed: the library's session data, the tenant
// and the expiry, authenticated with the vault's AEAD under a tenant-bound context, so it can
// neither be forged (a challenge of the attacker's choosing, a later expiry) nor carried to
// another tenant. Beginning writes nothing, so the sign-in page can offer it to every visitor.
// It is single use: finishing spends the challenge in the store's replay cache first.

// maxHandle bounds a sealed ceremony handle before it is decoded.
const maxHandle = 2048

type discoverableCeremony struct {
	Session  gowebauthn.SessionData `json:"s"`
	TenantID string                 `json:"t"`
	Expires  time.Time              `json:"e"`
}

func discoverableAAD(tenantID string) []byte {
	return []byte("tutela mfa webauthn discoverable ceremony v1\x00" + tenantID)
}

// BeginDiscoverableLogin starts a passkey sign-in in tenantID with no user named: it returns the
// PublicKeyCredentialRequestOptions JSON for navigator.credentials.get (with conditional
// mediation, or from a button) and the ceremony handle FinishDiscoverableLogin needs.
func (s *Service) BeginDiscoverableLogin(tenantID string) (options []byte, handle string, err error) {
	if !tutela.ValidID(tenantID) {
		return nil, "", tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	assertion, session, err := s.webauthn.BeginDiscoverableLogin(gowebauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, "", tutela.Wrap(err, "cannot begin passkey sign-in")
	}
	b, err := json.Marshal(discoverableCeremony{Session: *session, TenantID: tenantID, Expires: s.now().Add(ceremonyTTL)})
	if err != nil {
		return nil, "", tutela.Wrap(err, "cannot seal passkey ceremony")
	}
	sealed, err := s.sealer.Seal(b, discoverableAAD(tenantID))
	if err != nil {
		return nil, "", tutela.Wrap(err, "cannot seal passkey ceremony")
	}
	if options, err = marshalOptions(assertion); err != nil {
		return nil, "", err
	}
	return options, base64.RawURLEncoding.EncodeToString(sealed), nil
}

// ClaimedUser returns the user a passkey assertion names (its user handle, the user's UUID), not
// yet verified: the sign-in uses it to find the account to throttle before anything is checked.
func ClaimedUser(responseJSON []byte) (string, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(responseJSON)
	if err != nil {
		return "", ErrWebAuthn
	}
	return userFromHandle(parsed.Response.UserHandle)
}

func userFromHandle(h []byte) (string, error) {
	id, err := uuid.FromBytes(h)
	if err != nil || !tutela.ValidID(id.String()) {
		return "", ErrWebAuthn
	}
	return id.String(), nil
}

// FinishDiscoverableLogin verifies a passkey sign-in in tenantID: the sealed ceremony (this
// tenant's, unexpired, never used before), then the assertion against the passkeys of the user
// its user handle names in this tenant (signature, challenge, origin, RP ID, user verification,
// signature counter). A user of another tenant has no passkey here and is refused like a wrong
// signature. It returns the user and the passkey's factor ID. Every refusal is ErrWebAuthn
// (ErrClonedAuthenticator for a counter that did not move, already audited).
func (s *Service) FinishDiscoverableLogin(ctx context.Context, tenantID, handle string, responseJSON []byte) (userID, factorID string, err error) {
	if !tutela.ValidID(tenantID) || handle == "" || len(handle) > maxHandle {
		return "", "", ErrWebAuthn
	}
	sealed, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return "", "", ErrWebAuthn
	}
	raw, err := s.sealer.Open(sealed, discoverableAAD(tenantID))
	if err != nil {
		return "", "", ErrWebAuthn
	}
	var c discoverableCeremony
	if err := json.Unmarshal(raw, &c); err != nil || c.TenantID != tenantID || !s.now().Before(c.Expires) ||
		len(c.Session.UserID) != 0 || c.Session.Challenge == "" {
		return "", "", ErrWebAuthn
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(responseJSON)
	if err != nil || parsed.Response.CollectedClientData.Challenge != c.Session.Challenge {
		return "", "", ErrWebAuthn
	}
	if userID, err = userFromHandle(parsed.Response.UserHandle); err != nil {
		return "", "", err
	}
	// Spent before it is checked, whatever the outcome: two concurrent uses of one assertion
	// cannot both pass, and a refused one cannot be retried.
	var fresh bool
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		fresh, err = tx.SpendPasskeyChallenge(ctx, c.Session.Challenge, c.Expires)
		return err
	}); err != nil {
		return "", "", err
	}
	if !fresh {
		return "", "", ErrWebAuthn
	}
	var stored []*sqlstore.WebAuthnCredential
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		stored, err = tx.MFA(tenantID).WebAuthnCredentials(ctx, userID)
		return err
	}); err != nil {
		return "", "", err
	}
	if len(stored) == 0 {
		return "", "", ErrWebAuthn
	}
	creds, err := loadCredentials(stored)
	if err != nil {
		return "", "", err
	}
	handleBytes, _ := userHandle(userID)
	user := &waUser{handle: handleBytes, creds: creds}
	session := c.Session
	// Expiry is ours (c.Expires, the injected clock), not the library's wall clock.
	session.Expires = time.Time{}
	_, cred, err := s.webauthn.ValidatePasskeyLogin(func(rawID, uh []byte) (gowebauthn.User, error) {
		if !bytes.Equal(uh, handleBytes) {
			return nil, ErrWebAuthn
		}
		return user, nil
	}, session, parsed)
	if err != nil || !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return "", "", ErrWebAuthn
	}
	factorID, err = s.recordAssertion(ctx, tenantID, userID, stored, cred, parsed.Response.AuthenticatorData.Counter)
	return userID, factorID, err
}

// recordAssertion stores a verified assertion's new signature counter, or refuses it with
// ErrClonedAuthenticator when the counter did not move forward (W3C WebAuthn §7.2 step 22,
// §6.1.1), writing the mfa.webauthn_cloned audit event. It returns the passkey's factor ID.
func (s *Service) recordAssertion(ctx context.Context, tenantID, userID string, stored []*sqlstore.WebAuthnCredential,
	cred *gowebauthn.Credential, presented uint32) (string, error) {
	var factor *sqlstore.WebAuthnCredential
	for _, st := range stored {
		if bytes.Equal(st.CredentialID, cred.ID) {
			factor = st
		}
	}
	if factor == nil {
		return "", ErrWebAuthn
	}
	cloned := cred.Authenticator.CloneWarning
	if !cloned {
		credJSON, err := json.Marshal(cred)
		if err != nil {
			return "", tutela.Wrap(err, "cannot store passkey")
		}
		err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
			ok, err := tx.MFA(tenantID).UseWebAuthnCredential(ctx, userID, factor.ID, cred.Authenticator.SignCount, credJSON)
			// Not ok: a concurrent assertion moved the counter to or past this one.
			cloned = !ok
			return err
		})
		if err != nil {
			return "", err
		}
	}
	if cloned {
		// The clone carries the attacker's address: evidence, sealed under the tenant's keyset
		// rather than the victim's key (which their erasure would shred).
		ctx := tutela.WithoutAuditPerson(ctx)
		if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.MFA(tenantID).RecordClonedAuthenticator(ctx, userID, factor.ID, factor.SignCount, presented)
		}); err != nil {
			return "", err
		}
		return "", ErrClonedAuthenticator
	}
	return factor.ID, nil
}

// RenameFactor renames one of the user's passkeys or authenticator apps (audited). The caller
// requires a fresh re-authentication first.
func (s *Service) RenameFactor(ctx context.Context, tenantID, userID, factorID, name string) error {
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).RenameFactor(ctx, userID, factorID, name) })
}
