package oidc

import (
	"context"
	"strings"

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
// implicit or hybrid response types, client credentials for service accounts, the authentication methods and algorithms it accepts,
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
	d.GrantTypesSupported = []zoidc.GrantType{zoidc.GrantTypeCode, zoidc.GrantTypeRefreshToken, zoidc.GrantTypeClientCredentials}
	d.CodeChallengeMethodsSupported = []zoidc.CodeChallengeMethod{zoidc.CodeChallengeMethodS256}
	methods := []zoidc.AuthMethod{zoidc.AuthMethodBasic, zoidc.AuthMethodPrivateKeyJWT, zoidc.AuthMethodNone}
	d.TokenEndpointAuthMethodsSupported = methods
	d.RevocationEndpointAuthMethodsSupported = methods
	d.IntrospectionEndpointAuthMethodsSupported = []zoidc.AuthMethod{zoidc.AuthMethodBasic, zoidc.AuthMethodPrivateKeyJWT}
	d.ACRValuesSupported = []string{authz.ACRPassword, authz.ACRMFA}
	d.SubjectTypesSupported = []string{"public"}
	d.RequestURIParameterSupported = false
	return op.NewResponse(discovery{DiscoveryConfiguration: d,
		PAREndpoint:           s.t.issuer + parPath,
		DPoPAlgs:              strings.Fields(DPoPAlgsValue),
		ISSParameterSupported: true,
		RequirePAR:            false,
	}), nil
}

// discovery adds what the library's document has no field for: PAR (RFC 9126 §5), DPoP
// (RFC 9449 §5.1) and the iss authorization response parameter (RFC 9207 §3).
type discovery struct {
	*zoidc.DiscoveryConfiguration
	PAREndpoint           string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR            bool     `json:"require_pushed_authorization_requests"`
	DPoPAlgs              []string `json:"dpop_signing_alg_values_supported"`
	ISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// CodeExchange requires the PKCE verifier of every client: the library checks it only for
// public clients or when one is sent, and a confidential client leaving it out would make
// PKCE optional again (RFC 9700 §2.1.1).
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[zoidc.AccessTokenRequest]) (*op.Response, error) {
	if r.Data.CodeVerifier == "" {
		return nil, zoidc.ErrInvalidGrant().WithDescription("code_verifier is required")
	}
	if c, ok := r.Client.(*client); ok {
		if err := requireDPoP(ctx, c); err != nil {
			return nil, err
		}
	}
	resp, err := s.LegacyServer.CodeExchange(ctx, r)
	if err == nil {
		if tr, ok := resp.Data.(*zoidc.AccessTokenResponse); ok {
			dpopType(ctx, tr)
		}
	}
	return resp, err
}

// RefreshToken marks DPoP-bound responses; identity's refresh checks a bound session's key.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[zoidc.RefreshTokenRequest]) (*op.Response, error) {
	if c, ok := r.Client.(*client); ok {
		if err := requireDPoP(ctx, c); err != nil {
			return nil, err
		}
	}
	resp, err := s.LegacyServer.RefreshToken(ctx, r)
	if err == nil {
		if tr, ok := resp.Data.(*zoidc.AccessTokenResponse); ok {
			dpopType(ctx, tr)
		}
	}
	return resp, err
}
