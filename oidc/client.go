package oidc

import (
	"slices"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela/sqlstore"
)

// client adapts a registered client to op.Client.
type client struct {
	c *sqlstore.OIDCClient
	t *tenantOP
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return slices.Clone(c.c.RedirectURIs) }
func (c *client) PostLogoutRedirectURIs() []string { return slices.Clone(c.c.PostLogoutRedirectURIs) }
func (c *client) LoginURL(id string) string        { return c.t.loginURL(id) }

// AccessTokenType is Bearer for the library: it then asks storage.CreateAccessToken for the
// token's ID, which is Tutela's own signed token (see tokenCrypto).
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return 10 * time.Minute }
func (c *client) DevMode() bool                       { return false }
func (c *client) ClockSkew() time.Duration            { return 0 }

// The ID token carries the claims of its scopes only when no access token comes with it; the
// userinfo endpoint gives them otherwise (OIDC Core §5.4).
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed: only the scopes the client was registered with.
func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.c.Scopes, scope) }

func (c *client) ApplicationType() op.ApplicationType {
	switch c.c.AppType {
	case sqlstore.AppNative:
		return op.ApplicationTypeNative
	case sqlstore.AppUserAgent:
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() zoidc.AuthMethod {
	switch c.c.AuthMethod {
	case sqlstore.AuthNone:
		return zoidc.AuthMethodNone
	case sqlstore.PrivateKeyJWT:
		return zoidc.AuthMethodPrivateKeyJWT
	}
	return zoidc.AuthMethodBasic
}

// ResponseTypes: the authorization code flow only (no implicit or hybrid: RFC 9700 §2.1.2).
func (c *client) ResponseTypes() []zoidc.ResponseType {
	return []zoidc.ResponseType{zoidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []zoidc.GrantType {
	out := []zoidc.GrantType{}
	for _, g := range c.c.GrantTypes {
		switch g {
		case "authorization_code":
			out = append(out, zoidc.GrantTypeCode)
		case "refresh_token":
			out = append(out, zoidc.GrantTypeRefreshToken)
		}
	}
	return out
}
