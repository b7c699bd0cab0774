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
	_, err := r.tx.exec(ctx, `INSERT INTO oidc_clients (`+oidcClientCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		c.ID, c.TenantID, c.Name, c.AppType, c.AuthMethod, jsonList(c.RedirectURIs), jsonList(c.PostLogoutRedirectURIs),
		c.BackchannelLogoutURI, jsonList(c.Scopes), jsonList(c.GrantTypes), c.IDTokenAlg, c.RequireDPoP, c.RequirePAR, c.SkipConsent,
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
	hashes, err := r.SecretHashes(ctx, clientID)
	if err != nil {
		return false, err
	}
	return MatchClientSecret(hashes, secret), nil
}

// SecretHashes returns the SHA-256 digests of the client's secrets that are in force now (a
// rotated one until its overlap ends), for MatchClientSecret.
func (r OIDCClients) SecretHashes(ctx context.Context, clientID string) ([][]byte, error) {
	rows, err := r.tx.query(ctx, `SELECT secret_hash FROM oidc_client_secrets WHERE tenant_id = $1 AND client_id = $2
		AND (expires_at IS NULL OR expires_at > $3)`, r.tenantID, clientID, r.tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// MatchClientSecret reports whether secret is one of the secrets whose digests are hashes,
// comparing every digest in constant time.
func MatchClientSecret(hashes [][]byte, secret tutela.Secret) bool {
	if secret.IsZero() || len(secret.Bytes()) > 256 {
		return false
	}
	want := HashToken(secret.Reveal())
	ok := false
	for _, h := range hashes {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			ok = true
		}
	}
	return ok
}

// ValidClientID reports whether s has the form of a client_id Create assigns: 32 lowercase hex
// digits. Paths and cursors are checked against it before any query.
func ValidClientID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// List returns up to limit of the tenant's clients ordered by client_id, after cursor (a
// client_id; "" = start).
func (r OIDCClients) List(ctx context.Context, cursor string, limit int) ([]*OIDCClient, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, nil
	}
	if !ValidClientID(cursor) {
		cursor = ""
	}
	rows, err := r.tx.query(ctx, `SELECT `+oidcClientCols+` FROM oidc_clients WHERE tenant_id = $1 AND id > $2
		ORDER BY id LIMIT $3`, r.tenantID, cursor, clampLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*OIDCClient{}
	for rows.Next() {
		c, err := scanOIDCClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Update saves c's mutable settings (name, redirect and logout URIs, scopes, grant types, ID
// token algorithm, DPoP, PAR, consent, token lifetime) and sets UpdatedAt. The application type
// and authentication method are fixed at creation: changing them would turn a public client
// into a confidential one (or back) under relying parties already deployed. The caller
// validates c (oidc.ValidateClient). The audit event names the fields that changed.
func (r OIDCClients) Update(ctx context.Context, c *OIDCClient) error {
	old, err := r.Get(ctx, c.ID)
	if err != nil {
		return err
	}
	if c.AppType != old.AppType || c.AuthMethod != old.AuthMethod {
		return tutela.FieldErrorf("application_type", "the application type and authentication method cannot change; register a new client")
	}
	c.UpdatedAt = r.tx.now
	_, err = r.tx.exec(ctx, `UPDATE oidc_clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3,
		backchannel_logout_uri = $4, scopes = $5, grant_types = $6, id_token_alg = $7, require_dpop = $8, require_par = $9,
		skip_consent = $10, access_token_ttl_s = $11, updated_at = $12 WHERE tenant_id = $13 AND id = $14`,
		c.Name, jsonList(c.RedirectURIs), jsonList(c.PostLogoutRedirectURIs), c.BackchannelLogoutURI, jsonList(c.Scopes),
		jsonList(c.GrantTypes), c.IDTokenAlg, c.RequireDPoP, c.RequirePAR, c.SkipConsent, c.AccessTokenTTL, c.UpdatedAt,
		r.tenantID, c.ID)
	if err != nil {
		return err
	}
	c.TenantID, c.Status, c.CreatedBy, c.CreatedAt = old.TenantID, old.Status, old.CreatedBy, old.CreatedAt
	changed := []string{}
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"name", old.Name, c.Name}, {"redirect_uris", jsonList(old.RedirectURIs), jsonList(c.RedirectURIs)},
		{"post_logout_redirect_uris", jsonList(old.PostLogoutRedirectURIs), jsonList(c.PostLogoutRedirectURIs)},
		{"backchannel_logout_uri", old.BackchannelLogoutURI, c.BackchannelLogoutURI},
		{"scopes", jsonList(old.Scopes), jsonList(c.Scopes)}, {"grant_types", jsonList(old.GrantTypes), jsonList(c.GrantTypes)},
		{"id_token_alg", old.IDTokenAlg, c.IDTokenAlg}, {"require_dpop", old.RequireDPoP, c.RequireDPoP},
		{"require_par", old.RequirePAR, c.RequirePAR}, {"skip_consent", old.SkipConsent, c.SkipConsent},
		{"access_token_ttl", old.AccessTokenTTL, c.AccessTokenTTL},
	} {
		if f.a != f.b {
			changed = append(changed, f.name)
		}
	}
	return r.tx.Record(ctx, "oidc_client.update", r.tenantID, "oidc_client", c.ID, "",
		map[string]any{"changed": changed, "redirect_uris": c.RedirectURIs})
}

// Client statuses.
const (
	ClientActive   = "active"
	ClientDisabled = "disabled"
)

// SetStatus enables or disables a client. Disabling ends the client's sessions, so its refresh
// tokens stop working at once rather than when they expire.
func (r OIDCClients) SetStatus(ctx context.Context, clientID, status string) error {
	if status != ClientActive && status != ClientDisabled {
		return tutela.FieldErrorf("status", "status must be active or disabled")
	}
	if !ValidClientID(clientID) {
		return tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	res, err := r.tx.exec(ctx, `UPDATE oidc_clients SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4`,
		status, r.tx.now, r.tenantID, clientID)
	if err := affectedOne(res, err, "client not found"); err != nil {
		return err
	}
	if status == ClientDisabled {
		if err := r.endSessions(ctx, clientID, "client_disabled"); err != nil {
			return err
		}
	}
	return r.tx.Record(ctx, "oidc_client.status", r.tenantID, "oidc_client", clientID, "", map[string]any{"status": status})
}

// Delete removes a client with its secrets, keys, pending requests and consents, and ends its
// sessions.
func (r OIDCClients) Delete(ctx context.Context, clientID string) error {
	if !ValidClientID(clientID) {
		return tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	if _, err := r.Get(ctx, clientID); err != nil {
		return err
	}
	if err := r.endSessions(ctx, clientID, "client_deleted"); err != nil {
		return err
	}
	res, err := r.tx.exec(ctx, `DELETE FROM oidc_clients WHERE tenant_id = $1 AND id = $2`, r.tenantID, clientID)
	if err := affectedOne(res, err, "client not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "oidc_client.delete", r.tenantID, "oidc_client", clientID, "", nil)
}

// endSessions revokes the client's live sessions (and with them their refresh tokens).
func (r OIDCClients) endSessions(ctx context.Context, clientID, reason string) error {
	ids, err := r.tx.queryStrings(ctx, `SELECT id FROM sessions WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL`,
		r.tenantID, clientID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := r.tx.RevokeSessionByID(ctx, id, reason); err != nil {
			return err
		}
	}
	return nil
}

// jsonList encodes a string list column (nil as []).
func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
