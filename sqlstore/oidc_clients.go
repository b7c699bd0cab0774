package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"tutela"
)

// OIDCClient is a relying party registered with a tenant's OpenID Provider (issue 15).
type OIDCClient struct {
	ID                     string    `json:"client_id"`
	TenantID               string    `json:"tenant_id"`
	Name                   string    `json:"name"`
	AppType                string    `json:"application_type"` // web, native, user_agent
	AuthMethod             string    `json:"token_endpoint_auth_method"`
	RedirectURIs           []string  `json:"redirect_uris"`
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string    `json:"backchannel_logout_uri,omitempty"`
	Scopes                 []string  `json:"scopes"`
	GrantTypes             []string  `json:"grant_types"`
	IDTokenAlg             string    `json:"id_token_signed_response_alg"`
	RequireDPoP            bool      `json:"dpop_bound_access_tokens"`
	RequirePAR             bool      `json:"require_pushed_authorization_requests"`
	SkipConsent            bool      `json:"skip_consent"`
	AccessTokenTTL         int64     `json:"access_token_ttl_seconds,omitempty"`
	Status                 string    `json:"status"` // active, disabled
	CreatedBy              string    `json:"created_by"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// Client authentication methods and application types.
const (
	ClientSecretBasic = "client_secret_basic"
	PrivateKeyJWT     = "private_key_jwt"
	AuthNone          = "none"

	AppWeb       = "web"
	AppNative    = "native"
	AppUserAgent = "user_agent"
)

// Public reports whether the client cannot keep a secret (PKCE is its only proof).
func (c *OIDCClient) Public() bool { return c.AuthMethod == AuthNone }

// OIDCClients is the tenant's client registry.
type OIDCClients struct {
	tx       *Tx
	tenantID string
}

// OIDCClients scopes client queries to one tenant.
func (tx *Tx) OIDCClients(tenantID string) OIDCClients {
	return OIDCClients{tx: tx, tenantID: tenantID}
}

const oidcClientCols = `id, tenant_id, name, app_type, auth_method, redirect_uris, post_logout_redirect_uris,
	backchannel_logout_uri, scopes, grant_types, id_token_alg, require_dpop, require_par, skip_consent, access_token_ttl_s,
	status, created_by, created_at, updated_at`

func scanOIDCClient(row interface{ Scan(...any) error }) (*OIDCClient, error) {
	var c OIDCClient
	var redirects, logouts, scopes, grants string
	err := row.Scan(&c.ID, &c.TenantID, &c.Name, &c.AppType, &c.AuthMethod, &redirects, &logouts, &c.BackchannelLogoutURI,
		&scopes, &grants, &c.IDTokenAlg, &c.RequireDPoP, &c.RequirePAR, &c.SkipConsent, &c.AccessTokenTTL, &c.Status,
		&c.CreatedBy, &c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s   string
		dst *[]string
	}{{redirects, &c.RedirectURIs}, {logouts, &c.PostLogoutRedirectURIs}, {scopes, &c.Scopes}, {grants, &c.GrantTypes}} {
		if err := json.Unmarshal([]byte(f.s), f.dst); err != nil {
			return nil, tutela.Wrap(err, "client row unreadable")
		}
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return &c, nil
}

// Get returns the tenant's client by its client_id.
func (r OIDCClients) Get(ctx context.Context, clientID string) (*OIDCClient, error) {
	if clientID == "" || len(clientID) > 64 || !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	return scanOIDCClient(r.tx.queryRow(ctx, `SELECT `+oidcClientCols+` FROM oidc_clients WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, clientID))
}

// Create stores c (ID, TenantID, CreatedAt, UpdatedAt and Status are assigned) and, for a
// confidential client, a first secret, returned once; only its SHA-256 is kept. The caller
// validates c (oidc.ValidateClient).
func (r OIDCClients) Create(ctx context.Context, c *OIDCClient) (tutela.Secret, error) {
	c.ID, c.TenantID, c.CreatedAt, c.UpdatedAt, c.Status = tutela.RandomToken(16), r.tenantID, r.tx.now, r.tx.now, "active"
	js := func(v []string) string {
		if v == nil {
			v = []string{}
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	_, err := r.tx.exec(ctx, `INSERT INTO oidc_clients (`+oidcClientCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		c.ID, c.TenantID, c.Name, c.AppType, c.AuthMethod, js(c.RedirectURIs), js(c.PostLogoutRedirectURIs),
		c.BackchannelLogoutURI, js(c.Scopes), js(c.GrantTypes), c.IDTokenAlg, c.RequireDPoP, c.RequirePAR, c.SkipConsent,
		c.AccessTokenTTL, c.Status, c.CreatedBy, c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return tutela.Secret{}, err
	}
	var secret tutela.Secret
	if c.AuthMethod == ClientSecretBasic {
		if secret, err = r.addSecret(ctx, c.ID); err != nil {
			return tutela.Secret{}, err
		}
	}
	return secret, r.tx.Record(ctx, "oidc_client.create", r.tenantID, "oidc_client", c.ID, "",
		map[string]any{"name": c.Name, "auth_method": c.AuthMethod, "redirect_uris": c.RedirectURIs})
}

// addSecret stores a new random secret (256 bits) for the client and returns it.
func (r OIDCClients) addSecret(ctx context.Context, clientID string) (tutela.Secret, error) {
	s := tutela.RandomToken(32)
	_, err := r.tx.exec(ctx, `INSERT INTO oidc_client_secrets (id, tenant_id, client_id, secret_hash, created_at)
		VALUES ($1,$2,$3,$4,$5)`, tutela.NewID(), r.tenantID, clientID, HashToken(s), r.tx.now)
	return tutela.NewSecret(s), err
}

// VerifySecret reports whether secret is a current secret of the client: one whose overlap has
// not ended. The comparison is of SHA-256 digests, in constant time.
func (r OIDCClients) VerifySecret(ctx context.Context, clientID string, secret tutela.Secret) (bool, error) {
	if secret.IsZero() || len(secret.Bytes()) > 256 {
		return false, nil
	}
	rows, err := r.tx.query(ctx, `SELECT secret_hash FROM oidc_client_secrets WHERE tenant_id = $1 AND client_id = $2
		AND (expires_at IS NULL OR expires_at > $3)`, r.tenantID, clientID, r.tx.now)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	want := HashToken(secret.Reveal())
	ok := false
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return false, err
		}
		if subtle.ConstantTimeCompare(h, want) == 1 {
			ok = true
		}
	}
	return ok, rows.Err()
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
