package oidc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela"
	"tutela/audit"
	"tutela/identity"
	"tutela/sqlstore"
)

// Service accounts get access tokens at their tenant's token endpoint with the client
// credentials grant (RFC 6749 §4.4), authenticated by private_key_jwt or client_secret_basic.
// The exchange is identity's (AuthenticateServiceAccount, GrantClientCredentials), the one
// POST /v1/oauth/token uses too: the same account rules, the same token, the same audit event.
// Registered OpenID clients have no such grant; only service accounts do.

var _ op.ClientCredentialsStorage = (*storage)(nil)

// tokenEndpoint is the tenant's token endpoint URL, the audience of client assertions made
// for it.
func (t *tenantOP) tokenEndpoint() string { return t.issuer + endpoints.Token.Relative() }

// errClientAuth is the one answer to a refused service account: which check failed is only
// in the audit log (the account exists or not, its secret, tenant, status, address).
var errClientAuth = op.AsStatusError(zoidc.ErrInvalidClient().WithDescription("client authentication failed"),
	http.StatusUnauthorized)

// ClientCredentials authenticates a service account of this tenant by its client ID and
// secret (client_secret_basic).
func (s *storage) ClientCredentials(ctx context.Context, clientID, secret string) (op.Client, error) {
	ip, _ := clientInfo(ctx)
	return s.serviceAccount(ctx, identity.ClientAuth{ClientID: clientID, Secret: tutela.NewSecret(secret), IP: ip})
}

// serviceAccount authenticates a service account of this tenant and keeps it in the request
// state for ClientCredentialsTokenRequest. A refusal is recorded (auth.client) and answered
// invalid_client whatever the reason; an account of another tenant is refused like an
// unknown one.
func (s *storage) serviceAccount(ctx context.Context, a identity.ClientAuth) (op.Client, error) {
	a.TenantID, a.Endpoint = s.t.tenantID, s.t.tokenEndpoint()
	sa, err := s.ident().AuthenticateServiceAccount(ctx, a)
	if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
		s.recordClientRefusal(ctx, a, err)
		return nil, errClientAuth
	}
	if err != nil {
		return nil, zoidc.ErrServerError().WithParent(err)
	}
	state(ctx).account = sa
	return &serviceClient{sa: sa}, nil
}

// recordClientRefusal writes the auth.client event of a refused service account (ASVS 5.0
// 16.3.1), as /v1 does for its calls: the method, the reason, the account when it exists and
// the presented client ID when it has the form of one; never a secret or an assertion.
func (s *storage) recordClientRefusal(ctx context.Context, a identity.ClientAuth, err error) {
	details := map[string]any{"method": a.Method(), "reason": "invalid", "endpoint": "oidc_token"}
	if id := a.PresentedClientID(); identity.ValidClientID(id) {
		details["client_id"] = id
	}
	var tenantID, targetType, targetID string
	if r := identity.RefusalOf(err); r != nil {
		details["reason"], tenantID, targetType, targetID = r.Reason, r.TenantID, r.TargetType, r.TargetID
	}
	actx, cancel := s.t.p.recordContext(ctx)
	defer cancel()
	rerr := s.db().AuditCommit(actx, sqlstore.EventFromContext(actx, "auth.client", tenantID, targetType, targetID,
		audit.OutcomeFailure, details))
	if rerr != nil {
		s.t.p.d.Log.Error("record a refused service account", "err", rerr)
	}
}

// recordContext is the context of a record of ctx's request: its values, not its cancellation
// (the refusal happened even if the client has gone), and a deadline of its own, DBTimeout.
func (p *Provider) recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.d.DBTimeout)
}

// ClientCredentialsTokenRequest is the grant of the account the request authenticated, with
// the resource it named. The requested scope is not used: the token's scope is the account's
// permission set, which the response states (RFC 6749 §3.3).
func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, _ []string) (op.TokenRequest, error) {
	st := state(ctx)
	if st.account == nil || st.account.ClientID != clientID {
		return nil, zoidc.ErrInvalidClient()
	}
	return &ccRequest{sa: st.account, resources: st.resources}, nil
}

// clientCredentialsToken is CreateAccessToken for the client credentials grant.
func (s *storage) clientCredentialsToken(ctx context.Context, r *ccRequest) (string, time.Time, error) {
	tok, err := s.ident().GrantClientCredentials(ctx, r.sa, r.resources)
	switch {
	case errors.Is(err, identity.ErrOneResource):
		return "", time.Time{}, zoidc.ErrInvalidTarget().WithDescription("ask for one resource per token")
	case errors.Is(err, identity.ErrInvalidTarget):
		return "", time.Time{}, zoidc.ErrInvalidTarget().WithDescription("resource is not a registered resource server")
	case err != nil:
		return "", time.Time{}, zoidc.ErrServerError().WithParent(err)
	}
	r.scope = tok.Scope
	return tok.AccessToken.Reveal(), tok.Expiry, nil
}

// VerifyClient authenticates service accounts for the client credentials grant at the token
// endpoint, by private_key_jwt or client_secret_basic, through the shared identity code; other
// grants and endpoints are the library's (registered clients). Credentials in the query string
// are refused: URLs end up in logs and histories (RFC 6749 §2.3.1).
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if zoidc.GrantType(r.Form.Get("grant_type")) != zoidc.GrantTypeClientCredentials {
		return s.verifyRegisteredClient(ctx, r)
	}
	if r.URL.Path != endpoints.Token.Relative() {
		return nil, zoidc.ErrInvalidRequest().WithDescription("client_credentials is a grant of the token endpoint")
	}
	if r.URL.RawQuery != "" {
		return nil, zoidc.ErrInvalidRequest().WithDescription("send the parameters in the request body")
	}
	if _, _, basic := (&http.Request{Header: r.Header}).BasicAuth(); r.Data.ClientSecret != "" && !basic {
		// client_secret_post is not offered here (discovery says so): secrets go in the header.
		return nil, zoidc.ErrInvalidRequest().WithDescription("send the client secret with HTTP Basic (client_secret_basic)")
	}
	ip, _ := clientInfo(ctx)
	st := &storage{t: s.t}
	return st.serviceAccount(ctx, identity.ClientAuth{ClientID: r.Data.ClientID, Secret: tutela.NewSecret(r.Data.ClientSecret),
		Assertion: r.Data.ClientAssertion, AssertionType: r.Data.ClientAssertionType, IP: ip})
}

// ClientCredentialsExchange passes the resource parameters (RFC 8707) to the grant.
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[zoidc.ClientCredentialsRequest]) (*op.Response, error) {
	if _, ok := r.Client.(*serviceClient); !ok {
		return nil, zoidc.ErrUnauthorizedClient()
	}
	state(ctx).resources = r.PostForm["resource"]
	resp, err := s.LegacyServer.ClientCredentialsExchange(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.Header = http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}
	return resp, nil
}

// ccRequest is a client credentials grant: the authenticated account and the resource it
// asked for; scope is the granted scope once the token is made.
type ccRequest struct {
	sa        *sqlstore.ServiceAccount
	resources []string
	scope     string
}

var _ op.TokenRequest = (*ccRequest)(nil)

func (r *ccRequest) GetSubject() string    { return r.sa.ID }
func (r *ccRequest) GetAudience() []string { return r.resources }
func (r *ccRequest) GetScopes() []string   { return strings.Fields(r.scope) }

// serviceClient is a service account as the library's client: it may use the client
// credentials grant and nothing else (no redirect URIs, no response types, no scopes).
type serviceClient struct{ sa *sqlstore.ServiceAccount }

var _ op.Client = (*serviceClient)(nil)

func (c *serviceClient) GetID() string                        { return c.sa.ClientID }
func (c *serviceClient) RedirectURIs() []string               { return nil }
func (c *serviceClient) PostLogoutRedirectURIs() []string     { return nil }
func (c *serviceClient) ApplicationType() op.ApplicationType  { return op.ApplicationTypeWeb }
func (c *serviceClient) ResponseTypes() []zoidc.ResponseType  { return nil }
func (c *serviceClient) LoginURL(string) string               { return "" }
func (c *serviceClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *serviceClient) IDTokenLifetime() time.Duration       { return 0 }
func (c *serviceClient) DevMode() bool                        { return false }
func (c *serviceClient) ClockSkew() time.Duration             { return 0 }
func (c *serviceClient) IsScopeAllowed(string) bool           { return false }
func (c *serviceClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *serviceClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}
func (c *serviceClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}

func (c *serviceClient) AuthMethod() zoidc.AuthMethod {
	if c.sa.AuthMethod == "private_key_jwt" {
		return zoidc.AuthMethodPrivateKeyJWT
	}
	return zoidc.AuthMethodBasic
}

func (c *serviceClient) GrantTypes() []zoidc.GrantType {
	return []zoidc.GrantType{zoidc.GrantTypeClientCredentials}
}
