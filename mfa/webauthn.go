package mfa

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"tutela"
	"tutela/sqlstore"
)

// ceremonyTTL bounds how long a begun registration or login may take; the browser is told the
// same timeout. Expiry is enforced by the store with the injected clock, not by the library.
const ceremonyTTL = 5 * time.Minute

const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
)

func newWebAuthn(c WebAuthnConfig) (*gowebauthn.WebAuthn, error) {
	w, err := gowebauthn.New(&gowebauthn.Config{
		RPID:          c.RPID,
		RPDisplayName: c.RPDisplayName,
		RPOrigins:     c.RPOrigins,
		// No attestation: we do not restrict authenticator models, and asking for attestation
		// would reveal the model to us for nothing.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred,
			// User verification (PIN, biometrics) REQUIRED: a passkey then counts as two factors
			// on its own, and a stolen security key is useless without the PIN.
			UserVerification: protocol.VerificationRequired,
		},
		Timeouts: gowebauthn.TimeoutsConfig{
			Login:        gowebauthn.TimeoutConfig{Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: gowebauthn.TimeoutConfig{Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: webauthn config: %w", err)
	}
	return w, nil
}

// waUser adapts a Tutela user to the library. The user handle is the user's UUID (16 bytes):
// stable, unique, and no personal data (WebAuthn §14.6.1).
type waUser struct {
	handle      []byte
	name        string
	displayName string
	creds       []gowebauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                           { return u.handle }
func (u *waUser) WebAuthnName() string                         { return u.name }
func (u *waUser) WebAuthnDisplayName() string                  { return u.displayName }
func (u *waUser) WebAuthnCredentials() []gowebauthn.Credential { return u.creds }

func userHandle(userID string) ([]byte, error) {
	id, err := uuid.Parse(userID)
	if err != nil || !tutela.ValidID(userID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return id[:], nil
}

// loadCredentials returns the user's passkeys in library form, with the stored counters.
func loadCredentials(stored []*sqlstore.WebAuthnCredential) ([]gowebauthn.Credential, error) {
	out := make([]gowebauthn.Credential, 0, len(stored))
	for _, s := range stored {
		var c gowebauthn.Credential
		if err := json.Unmarshal(s.Credential, &c); err != nil {
			return nil, tutela.Wrap(err, "stored passkey unreadable")
		}
		c.Authenticator.SignCount = s.SignCount
		out = append(out, c)
	}
	return out, nil
}

// BeginWebAuthnRegistration starts adding a passkey for the user and returns the
// PublicKeyCredentialCreationOptions JSON for navigator.credentials.create. userName (e-mail)
// and displayName label the passkey on the authenticator. Passkeys the user already has are
// excluded, so one authenticator is not registered twice.
func (s *Service) BeginWebAuthnRegistration(ctx context.Context, tenantID, userID, userName, displayName string) ([]byte, error) {
	handle, err := userHandle(userID)
	if err != nil {
		return nil, err
	}
	var stored []*sqlstore.WebAuthnCredential
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		stored, err = tx.MFA(tenantID).WebAuthnCredentials(ctx, userID)
		return err
	}); err != nil {
		return nil, err
	}
	creds, err := loadCredentials(stored)
	if err != nil {
		return nil, err
	}
	if displayName == "" {
		displayName = userName
	}
	user := &waUser{handle: handle, name: userName, displayName: displayName, creds: creds}
	creation, session, err := s.webauthn.BeginRegistration(user,
		gowebauthn.WithExclusions(gowebauthn.Credentials(creds).CredentialDescriptors()))
	if err != nil {
		return nil, tutela.Wrap(err, "cannot begin passkey registration")
	}
	if err := s.saveCeremony(ctx, tenantID, userID, ceremonyRegister, session); err != nil {
		return nil, err
	}
	return marshalOptions(creation)
}

// FinishWebAuthnRegistration verifies the browser's attestation response (challenge, origin,
// RP ID, user presence and verification, attestation signature) and stores the passkey under
// name, if guard (when not nil) allows it in the same transaction. It returns the new factor's ID.
func (s *Service) FinishWebAuthnRegistration(ctx context.Context, tenantID, userID, name string, responseJSON []byte, guard Guard) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return "", tutela.FieldErrorf("name", "name must be 1-100 characters")
	}
	handle, err := userHandle(userID)
	if err != nil {
		return "", err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(responseJSON)
	if err != nil {
		return "", ErrWebAuthn
	}
	session, err := s.takeCeremony(ctx, tenantID, userID, ceremonyRegister, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return "", err
	}
	cred, err := s.webauthn.CreateCredential(&waUser{handle: handle}, *session, parsed)
	if err != nil || !cred.Flags.UserVerified {
		return "", ErrWebAuthn
	}
	credJSON, err := json.Marshal(cred)
	if err != nil {
		return "", tutela.Wrap(err, "cannot store passkey")
	}
	c := &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: userID, Name: name},
		CredentialID: cred.ID, Credential: credJSON, SignCount: cred.Authenticator.SignCount}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if guard != nil {
			if err := guard(tx); err != nil {
				return err
			}
		}
		return tx.MFA(tenantID).CreateWebAuthnCredential(ctx, c)
	}); err != nil {
		return "", err
	}
	return c.ID, nil
}

// BeginWebAuthnLogin starts a passkey assertion for the user (second factor or step-up) and
// returns the PublicKeyCredentialRequestOptions JSON for navigator.credentials.get.
func (s *Service) BeginWebAuthnLogin(ctx context.Context, tenantID, userID string) ([]byte, error) {
	handle, err := userHandle(userID)
	if err != nil {
		return nil, err
	}
	var stored []*sqlstore.WebAuthnCredential
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		stored, err = tx.MFA(tenantID).WebAuthnCredentials(ctx, userID)
		return err
	}); err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, tutela.Errorf(tutela.EINVALID, "no passkey registered")
	}
	creds, err := loadCredentials(stored)
	if err != nil {
		return nil, err
	}
	assertion, session, err := s.webauthn.BeginLogin(&waUser{handle: handle, creds: creds},
		gowebauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, tutela.Wrap(err, "cannot begin passkey login")
	}
	if err := s.saveCeremony(ctx, tenantID, userID, ceremonyLogin, session); err != nil {
		return nil, err
	}
	return marshalOptions(assertion)
}

// FinishWebAuthnLogin verifies the browser's assertion and returns the passkey's factor ID.
// The ceremony is spent whatever the outcome. A correctly signed assertion whose signature
// counter did not increase is refused with ErrClonedAuthenticator (W3C WebAuthn §7.2 step 22,
// §6.1.1): the mfa.webauthn_cloned audit event is already written; the caller records a
// security event.
func (s *Service) FinishWebAuthnLogin(ctx context.Context, tenantID, userID string, responseJSON []byte) (string, error) {
	handle, err := userHandle(userID)
	if err != nil {
		return "", err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(responseJSON)
	if err != nil {
		return "", ErrWebAuthn
	}
	session, err := s.takeCeremony(ctx, tenantID, userID, ceremonyLogin, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return "", err
	}
	var stored []*sqlstore.WebAuthnCredential
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		stored, err = tx.MFA(tenantID).WebAuthnCredentials(ctx, userID)
		return err
	}); err != nil {
		return "", err
	}
	creds, err := loadCredentials(stored)
	if err != nil {
		return "", err
	}
	cred, err := s.webauthn.ValidateLogin(&waUser{handle: handle, creds: creds}, *session, parsed)
	if err != nil || !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return "", ErrWebAuthn
	}
	return s.recordAssertion(ctx, tenantID, userID, stored, cred, parsed.Response.AuthenticatorData.Counter)
}

func (s *Service) saveCeremony(ctx context.Context, tenantID, userID, kind string, session *gowebauthn.SessionData) error {
	b, err := json.Marshal(session)
	if err != nil {
		return tutela.Wrap(err, "cannot store passkey ceremony")
	}
	c := &sqlstore.WebAuthnCeremony{Challenge: session.Challenge, UserID: userID, Kind: kind, Session: b,
		ExpiresAt: s.now().Add(ceremonyTTL)}
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).CreateCeremony(ctx, c) })
}

// takeCeremony spends the ceremony the response's challenge names. Unknown, expired, spent or
// another user's: ErrWebAuthn.
func (s *Service) takeCeremony(ctx context.Context, tenantID, userID, kind, challenge string) (*gowebauthn.SessionData, error) {
	if challenge == "" || len(challenge) > 512 {
		return nil, ErrWebAuthn
	}
	var c *sqlstore.WebAuthnCeremony
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		c, err = tx.MFA(tenantID).TakeCeremony(ctx, userID, kind, challenge)
		return err
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, ErrWebAuthn
	}
	if err != nil {
		return nil, err
	}
	var session gowebauthn.SessionData
	if err := json.Unmarshal(c.Session, &session); err != nil {
		return nil, tutela.Wrap(err, "stored passkey ceremony unreadable")
	}
	return &session, nil
}

func marshalOptions(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, tutela.Wrap(err, "cannot encode passkey options")
	}
	return b, nil
}
