package identity

import (
	"context"
	"errors"
	"time"

	"tutela"
	"tutela/mfa"
	"tutela/sqlstore"
)

// The client-credentials grant (RFC 6749 §4.4) has one implementation, here: the /v1 token
// endpoint and each tenant's OpenID Provider token endpoint both authenticate the service
// account with AuthenticateServiceAccount and exchange with GrantClientCredentials; they only
// parse the HTTP request their own way.

// ClientAuth is what a service account presents to authenticate at an endpoint.
type ClientAuth struct {
	// ClientID is the client_id sent (HTTP Basic or the form); with an assertion it may be
	// empty, and when not it must name the assertion's account.
	ClientID string
	// Secret is the client secret (client_secret_basic or client_secret_post).
	Secret tutela.Secret
	// Assertion and AssertionType are a private_key_jwt client assertion (RFC 7523 §2.2).
	Assertion, AssertionType string
	// Endpoint is the URL of the endpoint the request was made to: the audience a client
	// assertion must name, so that one made for another server cannot be replayed here.
	Endpoint string
	// TenantID, when set, is the only tenant whose accounts may authenticate: an OpenID
	// Provider is one tenant's, and another tenant's account is an unknown client to it.
	TenantID string
	// IP is the caller's address, for the account's allowlist.
	IP string
}

// Method is the authentication method a tried: private_key_jwt when it carries an assertion.
func (a ClientAuth) Method() string {
	if a.Assertion != "" || a.AssertionType != "" {
		return "private_key_jwt"
	}
	return "client_secret"
}

// PresentedClientID is the client ID a names: ClientID, or else the unverified issuer of its
// assertion. It is for the audit log of a refusal only and must not be trusted.
func (a ClientAuth) PresentedClientID() string {
	if a.ClientID == "" && a.Method() == "private_key_jwt" {
		return mfa.AssertionClientID(a.Assertion)
	}
	return a.ClientID
}

// AuthenticateServiceAccount authenticates a service account by a private_key_jwt assertion
// when one is given (no shared secret on the wire), else by its secret, and returns the whole
// account with AuthMethod set. Either way the account must be active and unexpired, its tenant
// active (and a.TenantID when set), and the caller's address on its allowlist; a tenant that
// requires private_key_jwt refuses secrets.
//
// Every refusal is a *Refusal (EUNAUTHENTICATED, "client authentication failed") saying why
// and, when the account exists, naming it, for the audit log; a client of another data region
// is EWRONGREGION.
func (s *Service) AuthenticateServiceAccount(ctx context.Context, a ClientAuth) (*sqlstore.ServiceAccount, error) {
	var sa *sqlstore.ServiceAccount
	var err error
	if a.Method() == "private_key_jwt" {
		sa, err = s.assertionClient(ctx, a)
	} else {
		sa, err = s.secretClient(ctx, a)
	}
	if err != nil {
		return nil, err
	}
	// After the credential, like every other check: an account of another tenant is refused
	// as an unknown client would be, revealing nothing to someone without its credential.
	if a.TenantID != "" && sa.TenantID != a.TenantID {
		return nil, RefuseClient(errClient, "wrong_tenant", sa)
	}
	sa.AuthMethod = a.Method()
	return sa, nil
}

// secretClient is AuthenticateClient where the tenant allows shared secrets.
func (s *Service) secretClient(ctx context.Context, a ClientAuth) (*sqlstore.ServiceAccount, error) {
	sa, pkOnly, err := s.authenticateClient(ctx, a.ClientID, a.Secret, a.IP)
	if err != nil {
		return nil, err
	}
	if pkOnly {
		// The tenant allows no shared secrets; fail exactly like a wrong secret.
		return nil, RefuseClient(errClient, "secret_not_allowed", sa)
	}
	return sa, nil
}

// assertionClient authenticates by a client assertion and reloads the whole account: its
// permission set, clearance, allowlist and expiry, and its tenant's status (a disabled
// tenant's accounts are refused like its users).
func (s *Service) assertionClient(ctx context.Context, a ClientAuth) (*sqlstore.ServiceAccount, error) {
	if a.AssertionType != mfa.ClientAssertionType || s.MFA == nil {
		return nil, &Refusal{Reason: "bad_assertion", Err: errClient}
	}
	verified, err := s.MFA.VerifyClientAssertion(ctx, a.Assertion, a.Endpoint)
	if tutela.ErrorCode(err) == tutela.EWRONGREGION {
		return nil, err
	}
	if err != nil {
		return nil, s.assertionRefusal(ctx, a.PresentedClientID(), err)
	}
	var sa *sqlstore.ServiceAccount
	var tenantActive bool
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if sa, err = tx.ServiceAccount(ctx, verified.TenantID, verified.ID); err != nil {
			return err
		}
		tenantActive, err = TenantActive(ctx, tx, sa.TenantID)
		return err
	}); tutela.ErrorCode(err) == tutela.EWRONGREGION {
		return nil, err
	} else if err != nil {
		return nil, RefuseClient(errClient, "unknown_client", verified)
	}
	if a.ClientID != "" && a.ClientID != sa.ClientID {
		return nil, RefuseClient(errClient, "bad_assertion", sa)
	}
	if reason := ClientUnusable(sa, s.now(), tenantActive); reason != "" {
		return nil, RefuseClient(errClient, reason, sa)
	}
	if !sa.AllowsIP(a.IP) {
		return nil, RefuseClient(errClient, "ip_not_allowed", sa)
	}
	return sa, nil
}

// assertionRefusal explains a refused client assertion for the audit log. The assertion
// verifier says only that it was refused (or replayed), so the account it names is looked up
// here: for unknown and known clients alike, so the lookup's cost says nothing either.
func (s *Service) assertionRefusal(ctx context.Context, clientID string, err error) error {
	reason := "bad_assertion"
	if errors.Is(err, mfa.ErrAssertionReplayed) {
		reason = "assertion_replayed"
	}
	if !ValidClientID(clientID) {
		return &Refusal{Reason: reason, Err: errClient}
	}
	var sa *sqlstore.ServiceAccount
	lerr := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		sa, _, err = tx.ServiceAccountKeys(ctx, clientID)
		return err
	})
	switch {
	case lerr != nil:
		return &Refusal{Reason: "unknown_client", Err: errClient}
	case sa.Status != tutela.StatusActive:
		reason = "disabled" // refused before any signature was checked
	}
	return RefuseClient(errClient, reason, sa)
}

// ValidClientID reports whether id has the form of a client ID, sa_ and 32 lowercase hex
// digits: only such a string from a request is copied into the audit log.
func ValidClientID(id string) bool {
	if len(id) != 35 || id[:3] != "sa_" {
		return false
	}
	for _, c := range id[3:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ErrOneResource refuses a client-credentials request naming more than one resource: a token
// has one audience (RFC 8707 §2).
var ErrOneResource = tutela.FieldErrorf("resource", "ask for one resource per token")

// ClientToken is what the client-credentials grant gives a service account.
type ClientToken struct {
	AccessToken tutela.Secret
	Expiry      time.Time
	Scope       string
}

// GrantClientCredentials is the client-credentials exchange of an authenticated account: at
// most one resource (ErrOneResource; one that is not a registered resource server is
// ErrInvalidTarget), the access token ClientCredentials issues, and the service_account.token
// audit event naming its scope.
func (s *Service) GrantClientCredentials(ctx context.Context, sa *sqlstore.ServiceAccount, resources []string) (*ClientToken, error) {
	if len(resources) > 1 {
		return nil, ErrOneResource
	}
	resource := ""
	if len(resources) == 1 {
		resource = resources[0]
	}
	at, exp, scope, err := s.ClientCredentials(ctx, sa, resource)
	if err != nil {
		return nil, err
	}
	// The token is handed out only once its record is durable; the record goes with other
	// callers' in the store's next group commit.
	err = s.db.AuditCommit(ctx, sqlstore.EventFromContext(ctx, "service_account.token", sa.TenantID, "service_account", sa.ID, "",
		map[string]any{"scope": scope}))
	if err != nil {
		return nil, err
	}
	return &ClientToken{AccessToken: at, Expiry: exp, Scope: scope}, nil
}
