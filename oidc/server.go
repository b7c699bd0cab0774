package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela/authz"
	"tutela/sqlstore"
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
	// The algorithms the library verifies client assertions with (and the only keys a client
	// can register: sqlstore.ParseClientJWK).
	assertionAlgs := []string{"ES256", "RS256", "PS256"}
	d.TokenEndpointAuthSigningAlgValuesSupported = assertionAlgs
	d.RevocationEndpointAuthSigningAlgValuesSupported = assertionAlgs
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = assertionAlgs
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

// verifyAuthRequest is the library's check of an authorization request's client, with native
// clients' loopback redirect URIs held to RFC 8252 §7.3 and RFC 9700 §4.1.3: exact string
// matching except for the port. The library matches them on path and query alone, so it let
// through a fragment (RFC 6749 §3.1.2 forbids one), userinfo, https for a registered http,
// and localhost for a registered 127.0.0.1, which may resolve elsewhere (RFC 8252 §8.3).
// Refused here, before any redirect, as an unregistered URI. (VerifyAuthRequest, in par.go,
// calls it once a pushed request is resolved.)
func (s *server) verifyAuthRequest(ctx context.Context, r *op.Request[zoidc.AuthRequest]) (*op.ClientRequest[zoidc.AuthRequest], error) {
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if cr.Client.ApplicationType() == op.ApplicationTypeNative && !nativeRedirectRegistered(cr.Client.RedirectURIs(), r.Data.RedirectURI) {
		return nil, zoidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not registered for this client")
	}
	return cr, nil
}

// nativeRedirectRegistered reports whether uri is registered, or is a registered plain-http
// loopback URI with a port added.
func nativeRedirectRegistered(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || strings.Contains(uri, "#") || u.Port() == "" {
		return false
	}
	host := u.Hostname()
	if host != "127.0.0.1" && host != "::1" && host != "localhost" {
		return false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return slices.Contains(registered, "http://"+host+strings.TrimPrefix(uri, "http://"+u.Host))
}

// verifyRegisteredClient is the library's authentication of a registered client (VerifyClient,
// in client_credentials.go, for every grant but client_credentials). A failed one is answered
// 401 (RFC 6749 §5.2: MUST when the client authenticated with the Authorization header); the
// library answers 400. A secret in the request body (client_secret_post) is refused:
// discovery does not offer it, and the library would otherwise take it for
// client_secret_basic.
func (s *server) verifyRegisteredClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Form.Has("client_secret") {
		return nil, op.NewStatusError(zoidc.ErrInvalidClient().WithDescription("client_secret_post is not supported: use HTTP Basic"),
			http.StatusUnauthorized)
	}
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	var e *zoidc.Error
	if errors.As(err, &e) && e.ErrorType == zoidc.InvalidClient {
		return nil, op.NewStatusError(err, http.StatusUnauthorized)
	}
	// A refused client assertion (private_key_jwt) is a failed client authentication too; the
	// library reports it as invalid_grant with 400. An accepted one works once: the library
	// keeps no record of its jti.
	if r.Data.ClientAssertion != "" {
		if err == nil {
			err = s.spendAssertion(ctx, c.GetID(), r.Data.ClientAssertion)
		}
		if err != nil {
			return nil, op.NewStatusError(zoidc.ErrInvalidClient().WithDescription("client assertion refused").WithParent(err),
				http.StatusUnauthorized)
		}
	}
	return c, err
}

// spendAssertion records a verified client assertion's jti until it expires; a jti seen before
// is a replay.
func (s *server) spendAssertion(ctx context.Context, clientID, assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("malformed assertion")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return errors.New("malformed assertion")
	}
	var c struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.JTI == "" || c.Exp == 0 {
		return errors.New("the assertion needs jti and exp")
	}
	var fresh bool
	err = s.t.p.d.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		// Kept until the assertion could no longer be accepted: its exp, or the library's
		// one-hour bound on its iat, whichever comes first.
		until := time.Unix(c.Exp, 0).Add(time.Minute)
		if limit := tx.Now().Add(2 * time.Hour); until.After(limit) {
			until = limit
		}
		fresh, err = tx.UseOIDCClientAssertion(ctx, s.t.tenantID, clientID, c.JTI, until)
		return err
	})
	if err == nil && !fresh {
		err = errors.New("client assertion already used")
	}
	return err
}

// Introspect holds the introspecting client to what the token endpoint asks (RFC 7662 §2.1):
// no secret in the body (client_secret_post is not offered), and a failed authentication is
// invalid_client with 401 (§2.3), where the library says unauthorized_client with 400.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	if r.Form.Has("client_secret") {
		return nil, op.NewStatusError(zoidc.ErrInvalidClient().WithDescription("client_secret_post is not supported: use HTTP Basic"),
			http.StatusUnauthorized)
	}
	resp, err := s.LegacyServer.Introspect(ctx, r)
	var e *zoidc.Error
	if errors.As(err, &e) && (e.ErrorType == zoidc.UnauthorizedClient || e.ErrorType == zoidc.InvalidClient) {
		return nil, op.NewStatusError(zoidc.ErrInvalidClient().WithParent(err), http.StatusUnauthorized)
	}
	return resp, err
}

// UserInfo answers a token that is invalid, expired or revoked with 401 (RFC 6750 §3.1,
// OIDC Core §5.3.3); the library says 403 when the storage refuses the token.
func (s *server) UserInfo(ctx context.Context, r *op.Request[zoidc.UserInfoRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.UserInfo(ctx, r)
	var e *zoidc.Error
	if errors.As(err, &e) && e.ErrorType == zoidc.AccessDenied {
		return nil, op.NewStatusError(err, http.StatusUnauthorized)
	}
	return resp, err
}

// withResponseFixes completes responses of the library. It adds iss to the error responses
// the authorize endpoint sends the client (RFC 9207 §2: in error responses too; a client of
// several providers needs it to tell whose refusal it got, the mix-up of RFC 9700 §4.4);
// codes come from the provider's own callback, which sets iss itself. And it adds the
// WWW-Authenticate challenge a 401 must carry: Basic from the client-authenticated endpoints
// (RFC 6749 §5.2), Bearer from userinfo (RFC 6750 §3).
func withResponseFixes(issuer string, next http.Handler) http.Handler {
	rel := func(e *op.Endpoint) string { return "/" + strings.TrimPrefix(e.Relative(), "/") }
	authorize, userinfo := rel(endpoints.Authorization), rel(endpoints.Userinfo)
	clientAuth := []string{rel(endpoints.Token), rel(endpoints.Introspection), rel(endpoints.Revocation)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == authorize:
			w = &fixWriter{ResponseWriter: w, issuer: issuer}
		case r.URL.Path == userinfo:
			w = &fixWriter{ResponseWriter: w, challenge: `Bearer error="invalid_token"`}
		case slices.Contains(clientAuth, r.URL.Path):
			w = &fixWriter{ResponseWriter: w, challenge: `Basic realm="tutela"`}
		}
		next.ServeHTTP(w, r)
	})
}

type fixWriter struct {
	http.ResponseWriter
	issuer    string
	challenge string
}

func (w *fixWriter) WriteHeader(status int) {
	h := w.Header()
	if loc := h.Get("Location"); loc != "" && w.issuer != "" && status >= 300 && status < 400 {
		h.Set("Location", withIss(loc, w.issuer))
	}
	if w.challenge != "" && status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", w.challenge)
	}
	w.ResponseWriter.WriteHeader(status)
}

// withIss appends iss to an error response in loc's fragment or, without one, its query.
func withIss(loc, issuer string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	params, sep := u.Query(), "?"
	if u.Fragment != "" {
		params, err = url.ParseQuery(u.Fragment)
		if err != nil {
			return loc
		}
		sep = "#"
	}
	if !params.Has("error") || params.Has("iss") {
		return loc
	}
	if strings.Contains(loc, sep) {
		sep = "&"
	}
	return loc + sep + "iss=" + url.QueryEscape(issuer)
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

// EndSession holds post_logout_redirect_uri to the same exact matching as redirect URIs: the
// library matches a native client's loopback URIs on path and query alone. The client is the
// one named by client_id or, without it, the audience of the id_token_hint (whose signature
// the library then checks: a forged hint ends nothing).
func (s *server) EndSession(ctx context.Context, r *op.Request[zoidc.EndSessionRequest]) (*op.Redirect, error) {
	if uri := r.Data.PostLogoutRedirectURI; uri != "" {
		id := r.Data.ClientID
		if id == "" {
			id = unverifiedAudience(r.Data.IdTokenHint)
		}
		st := &storage{t: s.t}
		c, err := st.client(ctx, id)
		if err != nil {
			return nil, zoidc.ErrInvalidRequest().WithDescription("unknown client")
		}
		ok := slices.Contains(c.PostLogoutRedirectURIs, uri)
		if c.AppType == sqlstore.AppNative {
			ok = nativeRedirectRegistered(c.PostLogoutRedirectURIs, uri)
		}
		if !ok {
			return nil, zoidc.ErrInvalidRequest().WithDescription("post_logout_redirect_uri is not registered for this client")
		}
	}
	return s.LegacyServer.EndSession(ctx, r)
}

// unverifiedAudience is the single aud of a JWT, read without verifying it (only to pick the
// client whose registration is checked).
func unverifiedAudience(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Aud any `json:"aud"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	switch a := c.Aud.(type) {
	case string:
		return a
	case []any:
		if len(a) == 1 {
			s, _ := a[0].(string)
			return s
		}
	}
	return ""
}
