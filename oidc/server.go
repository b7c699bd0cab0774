package oidc

import (
	"context"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela/authz"
)

// server is the library's legacy server with Tutela's stricter rules where the library is
// more permissive than RFC 9700 asks.
type server struct {
	*op.LegacyServer
	t *tenantOP
}

// Discovery advertises what the provider really does: the code flow with PKCE S256 only, no
// implicit or hybrid response types, the authentication methods and algorithms it accepts,
// PAR, DPoP and the RFC 9207 iss parameter.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	d, ok := resp.Data.(*zoidc.DiscoveryConfiguration)
	if !ok {
		return resp, nil
	}
	d.ResponseTypesSupported = []string{string(zoidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(zoidc.ResponseModeQuery)}
	d.GrantTypesSupported = []zoidc.GrantType{zoidc.GrantTypeCode, zoidc.GrantTypeRefreshToken}
	d.CodeChallengeMethodsSupported = []zoidc.CodeChallengeMethod{zoidc.CodeChallengeMethodS256}
	methods := []zoidc.AuthMethod{zoidc.AuthMethodBasic, zoidc.AuthMethodPrivateKeyJWT, zoidc.AuthMethodNone}
	d.TokenEndpointAuthMethodsSupported = methods
	d.RevocationEndpointAuthMethodsSupported = methods
	d.IntrospectionEndpointAuthMethodsSupported = []zoidc.AuthMethod{zoidc.AuthMethodBasic, zoidc.AuthMethodPrivateKeyJWT}
	d.ACRValuesSupported = []string{authz.ACRPassword, authz.ACRMFA}
	d.SubjectTypesSupported = []string{"public"}
	d.RequestURIParameterSupported = false
	return op.NewResponse(d), nil
}

// CodeExchange requires the PKCE verifier of every client: the library checks it only for
// public clients or when one is sent, and a confidential client leaving it out would make
// PKCE optional again (RFC 9700 §2.1.1).
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[zoidc.AccessTokenRequest]) (*op.Response, error) {
	if r.Data.CodeVerifier == "" {
		return nil, zoidc.ErrInvalidGrant().WithDescription("code_verifier is required")
	}
	return s.LegacyServer.CodeExchange(ctx, r)
}
