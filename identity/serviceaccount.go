package identity

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// CreateServiceAccount makes an integration account in the tenant and returns it with its
// secret, which exists only in the return value (only a SHA-256 of it is stored: the secret is
// 256 random bits, so a fast hash is enough).
func (s *Service) CreateServiceAccount(ctx context.Context, tenantSlug, name string) (*sqlstore.ServiceAccount, tutela.Secret, error) {
	secret := "tss_" + newSecret()
	var sa *sqlstore.ServiceAccount
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.TenantBySlug(ctx, tenantSlug)
		if err != nil {
			return err
		}
		sa = &sqlstore.ServiceAccount{TenantID: t.ID, Name: name}
		return tx.CreateServiceAccount(ctx, sa, sqlstore.HashToken(secret))
	})
	if err != nil {
		return nil, tutela.Secret{}, err
	}
	return sa, tutela.NewSecret(secret), nil
}

var errClient = tutela.Errorf(tutela.EUNAUTHENTICATED, "client authentication failed")

// AuthenticateClient checks a service account's client ID and secret. Every stored secret is
// compared (in constant time), so the time taken does not reveal which one matched.
func (s *Service) AuthenticateClient(ctx context.Context, clientID string, secret tutela.Secret) (*sqlstore.ServiceAccount, error) {
	if clientID == "" || len(clientID) > 64 || secret.IsZero() || len(secret.Bytes()) > 128 {
		return nil, errClient
	}
	var sa *sqlstore.ServiceAccount
	var hashes [][]byte
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		sa, hashes, err = tx.ServiceAccountSecretHashes(ctx, clientID)
		return err
	})
	if err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, errClient
		}
		return nil, err
	}
	got := sqlstore.HashToken(secret.Reveal())
	match := 0
	for _, h := range hashes {
		match |= subtle.ConstantTimeCompare(got, h)
	}
	if match != 1 || sa.Status != tutela.StatusActive {
		return nil, errClient
	}
	return sa, nil
}

// Introspection is an RFC 7662 response.
type Introspection struct {
	Active    bool     `json:"active"`
	Subject   string   `json:"sub,omitempty"`
	Tenant    string   `json:"tenant,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	Scope     string   `json:"scope,omitempty"`
}

// Introspect reports whether an access token is active right now — signature, expiry, the
// user's token version and the session's state all checked — for a caller of the same tenant.
// Anything else is {"active": false} with no reason (RFC 7662 §2.2), including a valid token
// of another tenant.
func (s *Service) Introspect(ctx context.Context, caller *sqlstore.ServiceAccount, tok string) Introspection {
	tok = strings.TrimSpace(tok)
	c, err := s.Tokens.Verify(ctx, tok, s.cfg.Audience)
	if err != nil || c.Tenant != caller.TenantID {
		return Introspection{}
	}
	if _, err := s.AuthenticateBearer(ctx, tok); err != nil {
		return Introspection{}
	}
	unix := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	}
	return Introspection{Active: true, Subject: c.Subject, Tenant: c.Tenant, TokenType: "Bearer", Issuer: c.Issuer,
		Audience: c.Audience, Expiry: unix(c.Expiry), IssuedAt: unix(c.IssuedAt), SessionID: c.SessionID, AMR: c.AMR,
		AuthTime: unix(c.AuthTime), Scope: c.Scope}
}
