package oidc

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela"
	"tutela/authz"
	"tutela/identity/token"
	"tutela/sqlstore"
)

// storage is op.Storage for one tenant, over Tutela's store, sessions and key ring.
type storage struct{ t *tenantOP }

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
)

func (s *storage) db() *sqlstore.DB { return s.t.p.d.DB }

// storedRequest is the part of a validated authorization request kept until the exchange.
type storedRequest struct {
	Scopes        []string `json:"scopes"`
	RedirectURI   string   `json:"redirect_uri"`
	State         string   `json:"state,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	ResponseMode  string   `json:"response_mode,omitempty"`
	CodeChallenge string   `json:"code_challenge"`
	Prompt        []string `json:"prompt,omitempty"`
	MaxAge        *uint    `json:"max_age,omitempty"`
	UILocales     []string `json:"ui_locales,omitempty"`
	LoginHint     string   `json:"login_hint,omitempty"`
	ACRValues     []string `json:"acr_values,omitempty"`
	HintUserID    string   `json:"hint_user_id,omitempty"`
}

// authRequest adapts a stored request to op.AuthRequest.
type authRequest struct {
	row *sqlstore.OIDCAuthRequest
	req storedRequest
	// issued is the client session the exchange made (the access token's session).
	issued string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string          { return a.row.ID }
func (a *authRequest) GetACR() string         { return a.row.ACR }
func (a *authRequest) GetAMR() []string       { return a.row.AMR }
func (a *authRequest) GetAudience() []string  { return []string{a.row.ClientID} }
func (a *authRequest) GetClientID() string    { return a.row.ClientID }
func (a *authRequest) GetNonce() string       { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() zoidc.ResponseType {
	return zoidc.ResponseTypeCode
}
func (a *authRequest) GetResponseMode() zoidc.ResponseMode {
	return zoidc.ResponseMode(a.req.ResponseMode)
}
func (a *authRequest) GetScopes() []string { return a.req.Scopes }
func (a *authRequest) GetState() string    { return a.req.State }
func (a *authRequest) GetSubject() string  { return a.row.UserID }
func (a *authRequest) Done() bool          { return a.row.Done && a.row.Denied == "" }
func (a *authRequest) GetCodeChallenge() *zoidc.CodeChallenge {
	return &zoidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: zoidc.CodeChallengeMethodS256}
}
func (a *authRequest) GetAuthTime() time.Time {
	if a.row.AuthTime == nil {
		return time.Time{}
	}
	return *a.row.AuthTime
}

// Limits on what a request may carry.
const (
	maxStateLen = 512
	maxHintLen  = 254
)

// errPKCE refuses an authorization request without a PKCE S256 challenge: every client must
// use one (RFC 9700 §2.1.1), confidential ones too, against code injection.
var errPKCE = zoidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")

// CreateAuthRequest validates what the library leaves to the provider and stores the request.
func (s *storage) CreateAuthRequest(ctx context.Context, r *zoidc.AuthRequest, hintUserID string) (op.AuthRequest, error) {
	if r.ResponseType != zoidc.ResponseTypeCode {
		return nil, zoidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	// The query response mode only: form_post needs a self-submitting script, which the
	// pages' Content-Security-Policy (no inline script) rightly blocks.
	if r.ResponseMode != "" && r.ResponseMode != zoidc.ResponseModeQuery {
		return nil, zoidc.ErrInvalidRequest().WithDescription("response_mode must be query")
	}
	if r.CodeChallenge == "" || r.CodeChallengeMethod != zoidc.CodeChallengeMethodS256 || len(r.CodeChallenge) != 43 {
		return nil, errPKCE
	}
	if len(r.State) > maxStateLen || len(r.Nonce) > maxStateLen || len(r.LoginHint) > maxHintLen {
		return nil, zoidc.ErrInvalidRequest().WithDescription("state, nonce or login_hint too long")
	}
	c, err := s.client(ctx, r.ClientID)
	if err != nil {
		return nil, zoidc.ErrInvalidClient()
	}
	for _, sc := range r.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return nil, zoidc.ErrInvalidScope().WithDescription("scope %s is not registered for this client", sc)
		}
	}
	if c.RequirePAR && !state(ctx).pushed {
		return nil, zoidc.ErrInvalidRequest().WithDescription("this client must push its authorization requests (PAR)")
	}
	if slices.Contains(r.Prompt, zoidc.PromptNone) && len(r.Prompt) > 1 {
		return nil, zoidc.ErrInvalidRequest().WithDescription("prompt=none cannot be combined")
	}
	sr := storedRequest{Scopes: r.Scopes, RedirectURI: r.RedirectURI, State: r.State, Nonce: r.Nonce,
		ResponseMode: string(r.ResponseMode), CodeChallenge: r.CodeChallenge, Prompt: r.Prompt, MaxAge: r.MaxAge,
		LoginHint: r.LoginHint, ACRValues: r.ACRValues, HintUserID: hintUserID}
	for _, l := range r.UILocales {
		sr.UILocales = append(sr.UILocales, l.String())
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return nil, err
	}
	row := &sqlstore.OIDCAuthRequest{TenantID: s.t.tenantID, ClientID: c.ID, Request: string(b), DPoPJKT: state(ctx).authJKT}
	if err := s.db().Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateOIDCAuthRequest(ctx, row) }); err != nil {
		return nil, err
	}
	return &authRequest{row: row, req: sr}, nil
}

func decodeRequest(row *sqlstore.OIDCAuthRequest) (*authRequest, error) {
	a := &authRequest{row: row}
	if err := json.Unmarshal([]byte(row.Request), &a.req); err != nil {
		return nil, tutela.Wrap(err, "authorization request unreadable")
	}
	return a, nil
}

// AuthRequestByID returns the tenant's unexpired request.
func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.authRequest(ctx, id)
}

func (s *storage) authRequest(ctx context.Context, id string) (*authRequest, error) {
	var row *sqlstore.OIDCAuthRequest
	err := s.db().View(ctx, func(tx *sqlstore.Tx) (err error) {
		row, err = tx.OIDCAuthRequest(ctx, s.t.tenantID, id)
		return err
	})
	if err != nil {
		return nil, zoidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request")
	}
	return decodeRequest(row)
}

// errInvalidCode is the one answer to every unusable code.
var errInvalidCode = zoidc.ErrInvalidGrant().WithDescription("invalid, expired or used authorization code")

// AuthRequestByCode redeems a code: it is marked used at once, so it works once. A code
// presented again revokes the client session its first exchange made, and every token of it
// (RFC 6749 §4.1.2, RFC 9700 §4.5).
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	if len(code) != 43 {
		return nil, errInvalidCode
	}
	var row *sqlstore.OIDCAuthRequest
	var replay bool
	err := s.db().Update(ctx, func(tx *sqlstore.Tx) (err error) {
		row, replay, err = tx.RedeemOIDCCode(ctx, s.t.tenantID, sqlstore.HashToken(code))
		if err != nil {
			return err
		}
		if replay {
			issued, err := tx.MarkOIDCCodeReplay(ctx, s.t.tenantID, row.ID)
			if err != nil {
				return err
			}
			if issued != "" {
				if err := tx.RevokeSessionByID(ctx, issued, "code_replay"); err != nil {
					return err
				}
			}
			row.IssuedSessionID = issued
			return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: row.TenantID, UserID: row.UserID,
				Kind: "authorization_code_replay", Details: mustJSON(map[string]string{"client_id": row.ClientID,
					"session_id": row.IssuedSessionID})})
		}
		return nil
	})
	if err != nil || replay {
		return nil, errInvalidCode
	}
	if !row.Done || row.Denied != "" {
		return nil, errInvalidCode
	}
	return decodeRequest(row)
}

// SaveAuthCode keeps the code's SHA-256 with its request.
func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.db().Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.SaveOIDCCode(ctx, s.t.tenantID, id, sqlstore.HashToken(code))
	})
}

// DeleteAuthRequest is called by the library once a code was exchanged. The row stays until
// it expires (SweepOIDCAuthRequests): its used code must still be recognised, so that a
// replay revokes what the exchange issued.
func (s *storage) DeleteAuthRequest(context.Context, string) error { return nil }

// client loads the tenant's active client.
// The library asks for the client several times in one request (authentication, the request,
// the signing key); the request's state keeps the row it read first, so one request sees one
// version of the client and pays for one read.
func (s *storage) client(ctx context.Context, id string) (*sqlstore.OIDCClient, error) {
	st := state(ctx)
	c, ok := st.clients[id]
	if !ok {
		var hashes [][]byte
		err := s.db().View(ctx, func(tx *sqlstore.Tx) (err error) {
			if c, err = tx.OIDCClients(s.t.tenantID).Get(ctx, id); err != nil {
				return err
			}
			if st.authenticatesClient && c.AuthMethod == sqlstore.ClientSecretBasic {
				hashes, err = tx.OIDCClients(s.t.tenantID).SecretHashes(ctx, id)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if st.clients == nil {
			st.clients, st.secrets = map[string]*sqlstore.OIDCClient{}, map[string][][]byte{}
		}
		st.clients[id] = c
		if hashes != nil {
			st.secrets[id] = hashes
		}
	}
	if c.Status != "active" {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	return c, nil
}

// GetClientByClientID returns the tenant's active client; the request remembers it.
func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, zoidc.ErrInvalidClient().WithDescription("unknown client")
	}
	state(ctx).clientID = c.ID
	return &client{c: c, t: s.t}, nil
}

// AuthorizeClientIDSecret checks a client_secret_basic secret (constant time, on digests).
func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.client(ctx, id)
	if err != nil || c.AuthMethod != sqlstore.ClientSecretBasic {
		return zoidc.ErrInvalidClient()
	}
	// The digests came with the client when the request is to a client-authenticating
	// endpoint; otherwise they are read now.
	hashes, ok := state(ctx).secrets[id]
	if !ok {
		err = s.db().View(ctx, func(tx *sqlstore.Tx) (err error) {
			hashes, err = tx.OIDCClients(s.t.tenantID).SecretHashes(ctx, id)
			return err
		})
		if err != nil {
			return zoidc.ErrInvalidClient()
		}
	}
	if !sqlstore.MatchClientSecret(hashes, tutela.NewSecret(secret)) {
		return zoidc.ErrInvalidClient()
	}
	state(ctx).clientID = c.ID
	return nil
}

// GetKeyByIDAndClientID returns a private_key_jwt client's public key.
func (s *storage) GetKeyByIDAndClientID(ctx context.Context, kid, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.client(ctx, clientID)
	if err != nil || c.AuthMethod != sqlstore.PrivateKeyJWT {
		return nil, zoidc.ErrInvalidClient()
	}
	var raw string
	err = s.db().View(ctx, func(tx *sqlstore.Tx) (err error) {
		raw, err = tx.OIDCClients(s.t.tenantID).ClientKey(ctx, clientID, kid)
		return err
	})
	if err != nil {
		return nil, zoidc.ErrInvalidClient()
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(raw)); err != nil || !k.IsPublic() {
		return nil, zoidc.ErrInvalidClient()
	}
	state(ctx).clientID = c.ID
	return &k, nil
}

// ValidateJWTProfileScopes: the JWT bearer grant is not offered.
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, zoidc.ErrUnsupportedGrantType()
}

// GetPrivateClaimsFromScopes is for JWT access tokens made by the library, which the provider
// does not use (its access tokens are Tutela's own).
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// Health checks the store.
func (s *storage) Health(ctx context.Context) error {
	return s.db().View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TenantBySlug(ctx, s.t.slug); return err })
}

// SigningKey is the key ID tokens are signed with: the ring's current key of the client's
// algorithm (id_token_signed_response_alg, EdDSA by default).
func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg := s.clientAlg(ctx)
	kid, key, err := s.t.p.d.Tokens.SigningKey(alg)
	if err != nil {
		return nil, err
	}
	return signingKey{kid: kid, alg: jose.SignatureAlgorithm(alg), key: key}, nil
}

// clientAlg is the ID-token algorithm of the request's client.
func (s *storage) clientAlg(ctx context.Context) token.Alg {
	if id := state(ctx).clientID; id != "" {
		if c, err := s.client(ctx, id); err == nil && c.IDTokenAlg != "" {
			return token.Alg(c.IDTokenAlg)
		}
	}
	return token.EdDSA
}

// SignatureAlgorithms are the algorithms of the ring's keys.
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	var out []jose.SignatureAlgorithm
	for _, a := range s.t.p.d.Tokens.Algs() {
		out = append(out, jose.SignatureAlgorithm(a))
	}
	return out, nil
}

// KeySet is the ring's published keys.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range s.t.p.d.Tokens.PublicKeys() {
		out = append(out, publicKey{k})
	}
	return out, nil
}

type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.kid }

type publicKey struct{ k jose.JSONWebKey }

func (k publicKey) ID() string                         { return k.k.KeyID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.SignatureAlgorithm(k.k.Algorithm) }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.k.Key }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// acrOf is the authentication context class of amr: MFA when it names a second factor.
func acrOf(amr []string) string {
	for _, m := range amr {
		if authz.SecondFactorAMR(m) {
			return authz.ACRMFA
		}
	}
	return authz.ACRPassword
}

// scopeString joins scopes for storage and claims.
func scopeString(s []string) string { return strings.Join(s, " ") }
