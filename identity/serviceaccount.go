package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"

	"tutela"
	"tutela/identity/token"
	"tutela/sqlstore"
)

// CreateServiceAccount makes an integration account in the tenant and returns it with its
// secret, which exists only in the return value (only a SHA-256 of it is stored: the secret is
// 256 random bits, so a fast hash is enough).
func (s *Service) CreateServiceAccount(ctx context.Context, tenantSlug, name string) (*sqlstore.ServiceAccount, tutela.Secret, error) {
	var sa *sqlstore.ServiceAccount
	var secret tutela.Secret
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.TenantBySlug(ctx, tenantSlug)
		if err != nil {
			return err
		}
		sa = &sqlstore.ServiceAccount{TenantID: t.ID, Name: name}
		secret, err = s.CreateServiceAccountTx(ctx, tx, sa)
		return err
	})
	if err != nil {
		return nil, tutela.Secret{}, err
	}
	return sa, secret, nil
}

// NewClientSecret returns a fresh service-account secret: 256 random bits.
func NewClientSecret() tutela.Secret { return tutela.NewSecret("tss_" + newSecret()) }

// CreateServiceAccountTx creates sa (its TenantID, Name and optional permission set, clearance,
// IP allowlist and expiry set by the caller) in tx and returns its first secret.
func (s *Service) CreateServiceAccountTx(ctx context.Context, tx *sqlstore.Tx, sa *sqlstore.ServiceAccount) (tutela.Secret, error) {
	secret := NewClientSecret()
	if err := tx.CreateServiceAccount(ctx, sa, sqlstore.HashToken(secret.Reveal())); err != nil {
		return tutela.Secret{}, err
	}
	return secret, nil
}

var errClient = tutela.Errorf(tutela.EUNAUTHENTICATED, "client authentication failed")

// AuthenticateClient checks a service account's client ID and secret. Every stored secret is
// compared (in constant time), so the time taken does not reveal which one matched.
//
// A refusal is a *Refusal saying why (malformed, unknown_client, bad_secret, disabled, expired,
// tenant_inactive, ip_not_allowed) and, when the account exists, naming it, for the audit log.
func (s *Service) AuthenticateClient(ctx context.Context, clientID string, secret tutela.Secret, ip string) (*sqlstore.ServiceAccount, error) {
	sa, _, err := s.authenticateClient(ctx, clientID, secret, ip)
	return sa, err
}

// authenticateClient is AuthenticateClient that also says whether the account's tenant allows
// private_key_jwt only (secretClient refuses the secret then). A successful check is cached by
// client ID with the secret's SHA-256 (never the secret); the next request with the same secret
// is answered from the cache while the epochs stand, any other secret reads the database.
func (s *Service) authenticateClient(ctx context.Context, clientID string, secret tutela.Secret, ip string) (*sqlstore.ServiceAccount, bool, error) {
	if clientID == "" || len(clientID) > 64 || secret.IsZero() || len(secret.Bytes()) > 128 {
		return nil, false, refuse(errClient, "malformed")
	}
	got := sha256.Sum256(secret.Bytes())
	now := s.db.Now()
	if e, ok := s.cache.clients.Get(clientID, now); ok && subtle.ConstantTimeCompare(got[:], e.secret[:]) == 1 &&
		(e.secretUntil.IsZero() || now.Before(e.secretUntil)) && ClientUnusable(&e.sa, s.now(), e.tenantActive) == "" &&
		e.sa.AllowsIP(ip) {
		sa := e.sa
		return &sa, e.pkOnly, nil
	}
	var sa *sqlstore.ServiceAccount
	var secrets []sqlstore.SecretHash
	var tenantActive, pkOnly bool
	var ticket sqlstore.AuthTicket
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if sa, secrets, err = tx.ServiceAccountSecrets(ctx, clientID); err != nil {
			return err
		}
		if tenantActive, err = TenantActive(ctx, tx, sa.TenantID); err != nil {
			return err
		}
		if tenantActive {
			if pkOnly, err = tx.TenantRequiresPrivateKeyJWT(ctx, sa.TenantID); err != nil {
				return err
			}
		}
		ticket = tx.CacheTicket()
		return nil
	})
	if err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, false, refuse(errClient, "unknown_client")
		}
		return nil, false, err
	}
	match, matched := 0, -1
	for i, h := range secrets {
		m := subtle.ConstantTimeCompare(got[:], h.Hash)
		match |= m
		matched = subtle.ConstantTimeSelect(m, i, matched)
	}
	// The allowlist, expiry and tenant status are checked after the secret, and fail the same
	// way, so they reveal nothing to someone without it.
	if match != 1 {
		return nil, false, RefuseClient(errClient, "bad_secret", sa)
	}
	if reason := ClientUnusable(sa, s.now(), tenantActive); reason != "" {
		return nil, false, RefuseClient(errClient, reason, sa)
	}
	if !sa.AllowsIP(ip) {
		return nil, false, RefuseClient(errClient, "ip_not_allowed", sa)
	}
	e := clientEntry{sa: *sa, tenantActive: tenantActive, pkOnly: pkOnly, secret: got}
	if exp := secrets[matched].ExpiresAt; exp != nil {
		e.secretUntil = *exp
	}
	s.cache.clients.Put(ticket, clientID, sa.TenantID, e, time.Time{})
	return sa, pkOnly, nil
}

// TenantActive reports whether the tenant is active. A disabled tenant's service accounts stop
// authenticating, and their tokens stop working, exactly like its users' (principal).
func TenantActive(ctx context.Context, tx *sqlstore.Tx, tenantID string) (bool, error) {
	t, err := tx.Tenant(ctx, tenantID)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return t.Status == tutela.StatusActive, nil
}

// ClientCredentials issues an access token for a service account (OAuth 2.0 client
// credentials, RFC 6749 §4.4). Its scope is the account's permission set, and nothing more; its
// audience is resource (RFC 8707: a registered resource server), or Tutela's own API when
// empty; any other resource is ErrInvalidTarget.
func (s *Service) ClientCredentials(ctx context.Context, sa *sqlstore.ServiceAccount, resource string) (tutela.Secret, time.Time, string, error) {
	aud, err := s.audienceFor(resource)
	if err != nil {
		return tutela.Secret{}, time.Time{}, "", err
	}
	scope := make([]string, len(sa.Permissions))
	for i, p := range sa.Permissions {
		scope[i] = p.String()
	}
	method := sa.AuthMethod
	if method == "" {
		method = "client_secret"
	}
	if len(scope) == 0 {
		// An empty scope would read as a user's token; an account always has a permission set.
		return tutela.Secret{}, time.Time{}, "", tutela.Errorf(tutela.EINTERNAL, "service account has no permissions")
	}
	c := token.Claims{Subject: sa.ID, Audience: aud, Tenant: sa.TenantID, AMR: []string{method},
		Scope: strings.Join(scope, " ")}
	if sa.ExpiresAt != nil {
		c.Expiry = *sa.ExpiresAt // never outlive the account
	}
	if err := s.ensureSigner(ctx); err != nil {
		return tutela.Secret{}, time.Time{}, "", err
	}
	at, exp, err := s.Tokens.Issue(ctx, c)
	if err != nil {
		return tutela.Secret{}, time.Time{}, "", err
	}
	return tutela.NewSecret(at), exp, c.Scope, nil
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
	// Resource servers introspect the tokens presented to them, so any audience this service
	// issues for is accepted; the answer names it (aud) for the caller to check.
	c, err := s.Tokens.VerifyAny(ctx, tok, s.audiences())
	if err != nil || c.Tenant != caller.TenantID {
		return Introspection{}
	}
	if c.Service() {
		// A service account's token: the caller is a resource server, not the account, so the
		// account's IP allowlist (checked where the account itself calls) does not apply.
		if _, err := s.serviceAccountPrincipal(ctx, c, false); err != nil {
			return Introspection{}
		}
	} else if p, err := s.bearerPrincipal(ctx, c); err != nil || p.MustChangePassword || p.MustEnrollMFA {
		// A user who must first change their password or enrol a factor may use only Tutela.
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
