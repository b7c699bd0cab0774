package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"tutela"
)

// OIDCAuthRequest is an authorization request between /authorize and the code exchange.
type OIDCAuthRequest struct {
	ID       string
	TenantID string
	ClientID string
	// Request is the validated authorization request as the provider serialised it (JSON).
	Request string
	// Set when the hosted pages complete it.
	UserID    string
	SessionID string
	AuthTime  *time.Time
	AMR       []string
	ACR       string
	Done      bool
	// Denied is the error sent back instead of a code (access_denied, login_required …).
	Denied string
	// CodeUsed: the code was exchanged (a second exchange is a replay).
	CodeUsed bool
	// IssuedSessionID is the client session the code was exchanged for.
	IssuedSessionID string
	DPoPJKT         string
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

// OIDCAuthRequestTTL bounds how long a user has to sign in and the client to exchange its code.
const OIDCAuthRequestTTL = 10 * time.Minute

const oidcAuthRequestCols = `id, tenant_id, client_id, request, user_id, session_id, auth_time, amr, acr, done, denied,
	code_used_at, issued_session_id, dpop_jkt, created_at, expires_at`

func scanOIDCAuthRequest(row interface{ Scan(...any) error }) (*OIDCAuthRequest, error) {
	var r OIDCAuthRequest
	var userID, sessionID, issued, jkt sql.NullString
	var authTime, used sql.NullTime
	var amr string
	err := row.Scan(&r.ID, &r.TenantID, &r.ClientID, &r.Request, &userID, &sessionID, &authTime, &amr, &r.ACR, &r.Done,
		&r.Denied, &used, &issued, &jkt, &r.CreatedAt, &r.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
	}
	if err != nil {
		return nil, err
	}
	r.UserID, r.SessionID, r.IssuedSessionID, r.DPoPJKT = userID.String, sessionID.String, issued.String, jkt.String
	r.AuthTime, r.CodeUsed, r.AMR = optTime(authTime), used.Valid, strings.Fields(amr)
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return &r, nil
}

// CreateOIDCAuthRequest stores r (ID, CreatedAt and ExpiresAt are assigned).
func (tx *Tx) CreateOIDCAuthRequest(ctx context.Context, r *OIDCAuthRequest) error {
	r.ID, r.CreatedAt, r.ExpiresAt = tutela.NewID(), tx.now, tx.now.Add(OIDCAuthRequestTTL)
	_, err := tx.exec(ctx, `INSERT INTO oidc_auth_requests (id, tenant_id, client_id, request, dpop_jkt, created_at, expires_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, r.ID, r.TenantID, r.ClientID, r.Request, nullString(r.DPoPJKT), r.CreatedAt, r.ExpiresAt)
	return err
}

// OIDCAuthRequest returns the tenant's unexpired authorization request id.
func (tx *Tx) OIDCAuthRequest(ctx context.Context, tenantID, id string) (*OIDCAuthRequest, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
	}
	return scanOIDCAuthRequest(tx.queryRow(ctx, `SELECT `+oidcAuthRequestCols+` FROM oidc_auth_requests
		WHERE tenant_id = $1 AND id = $2 AND expires_at > $3`, tenantID, id, tx.now))
}

// errRequestSettled refuses to complete or deny a request that already was.
var errRequestSettled = tutela.Errorf(tutela.ECONFLICT, "the authorization request was already completed or refused")

// CompleteOIDCAuthRequest records who signed in for the request. It completes a request once.
func (tx *Tx) CompleteOIDCAuthRequest(ctx context.Context, r *OIDCAuthRequest) error {
	res, err := tx.exec(ctx, `UPDATE oidc_auth_requests SET user_id = $1, session_id = $2, auth_time = $3, amr = $4, acr = $5,
		done = $6 WHERE tenant_id = $7 AND id = $8 AND done = $9 AND denied = '' AND expires_at > $10`,
		r.UserID, r.SessionID, optTimeArg(r.AuthTime), strings.Join(r.AMR, " "), r.ACR, true, r.TenantID, r.ID, false, tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errRequestSettled
	}
	r.Done = true
	return nil
}

// DenyOIDCAuthRequest records that the request ends with the error reason instead of a code.
func (tx *Tx) DenyOIDCAuthRequest(ctx context.Context, tenantID, id, reason string) error {
	res, err := tx.exec(ctx, `UPDATE oidc_auth_requests SET denied = $1 WHERE tenant_id = $2 AND id = $3 AND done = $4
		AND denied = '' AND expires_at > $5`, reason, tenantID, id, false, tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errRequestSettled
	}
	return nil
}

// SaveOIDCCode gives a completed request its code (as its SHA-256), once.
func (tx *Tx) SaveOIDCCode(ctx context.Context, tenantID, id string, codeHash []byte) error {
	res, err := tx.exec(ctx, `UPDATE oidc_auth_requests SET code_hash = $1 WHERE tenant_id = $2 AND id = $3 AND done = $4
		AND code_hash IS NULL AND expires_at > $5`, codeHash, tenantID, id, true, tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errRequestSettled
	}
	return nil
}

// RedeemOIDCCode finds the request of a code and marks the code used. A code used before is
// returned with replay true and marks nothing: the caller revokes what the first exchange
// issued (RFC 6749 §4.1.2).
func (tx *Tx) RedeemOIDCCode(ctx context.Context, tenantID string, codeHash []byte) (r *OIDCAuthRequest, replay bool, err error) {
	if !tutela.ValidID(tenantID) {
		return nil, false, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
	}
	r, err = scanOIDCAuthRequest(tx.queryRow(ctx, `SELECT `+oidcAuthRequestCols+` FROM oidc_auth_requests
		WHERE tenant_id = $1 AND code_hash = $2 AND expires_at > $3`, tenantID, codeHash, tx.now))
	if err != nil {
		return nil, false, err
	}
	if r.CodeUsed {
		return r, true, nil
	}
	// Conditional: of two concurrent exchanges exactly one marks it; the other is a replay.
	res, err := tx.exec(ctx, `UPDATE oidc_auth_requests SET code_used_at = $1 WHERE id = $2 AND code_used_at IS NULL`, tx.now, r.ID)
	if err != nil {
		return nil, false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return r, true, nil
	}
	r.CodeUsed = true
	return r, false, nil
}

// SetOIDCIssuedSession records the client session a code was exchanged for, in the
// transaction that creates it. A replay of the code marked first (MarkOIDCCodeReplay) makes it
// fail, so that exchange issues nothing: whichever of the two commits first, the replay
// revokes what the code gave or the exchange gives nothing.
func (tx *Tx) SetOIDCIssuedSession(ctx context.Context, tenantID, id, sessionID string) error {
	res, err := tx.exec(ctx, `UPDATE oidc_auth_requests SET issued_session_id = $1 WHERE tenant_id = $2 AND id = $3
		AND replayed_at IS NULL AND issued_session_id IS NULL`, sessionID, tenantID, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tutela.Errorf(tutela.EUNAUTHENTICATED, "the authorization code was used twice")
	}
	return nil
}

// MarkOIDCCodeReplay records a second exchange of the request's code and returns the client
// session the first one made ("" when it has not made one yet, which it then never will).
func (tx *Tx) MarkOIDCCodeReplay(ctx context.Context, tenantID, id string) (string, error) {
	var issued sql.NullString
	err := tx.queryRow(ctx, `UPDATE oidc_auth_requests SET replayed_at = $1 WHERE tenant_id = $2 AND id = $3
		RETURNING issued_session_id`, tx.now, tenantID, id).Scan(&issued)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return issued.String, err
}

// SweepOIDCAuthRequests deletes expired authorization requests and returns how many.
func (tx *Tx) SweepOIDCAuthRequests(ctx context.Context) (int64, error) {
	res, err := tx.exec(ctx, `DELETE FROM oidc_auth_requests WHERE expires_at <= $1`, tx.now)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ClientKey returns the JWK (JSON) with kid of a private_key_jwt client, while it has not
// expired.
func (r OIDCClients) ClientKey(ctx context.Context, clientID, kid string) (string, error) {
	var jwk string
	err := r.tx.queryRow(ctx, `SELECT jwk FROM oidc_client_keys WHERE tenant_id = $1 AND client_id = $2 AND kid = $3
		AND (expires_at IS NULL OR expires_at > $4)`, r.tenantID, clientID, kid, r.tx.now).Scan(&jwk)
	if errors.Is(err, sql.ErrNoRows) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "client key not found")
	}
	return jwk, err
}

// PeekRefreshToken returns a refresh token without using it.
func (tx *Tx) PeekRefreshToken(ctx context.Context, secretHash []byte) (*RefreshToken, error) {
	var t RefreshToken
	var used sql.NullTime
	err := tx.queryRow(ctx, `SELECT id, session_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1`, secretHash).
		Scan(&t.ID, &t.SessionID, &t.ExpiresAt, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "refresh token not found")
	}
	if err != nil {
		return nil, err
	}
	t.ExpiresAt, t.UsedAt = t.ExpiresAt.UTC(), optTime(used)
	return &t, nil
}

// RevokeClientSessions ends the user's sessions of one relying party and returns how many.
func (r Users) RevokeClientSessions(ctx context.Context, userID, clientID, reason string) (int64, error) {
	ids, err := r.tx.queryStrings(ctx, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3
		AND revoked_at IS NULL`, r.tenantID, userID, clientID)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := r.tx.RevokeSessionByID(ctx, id, reason); err != nil {
			return 0, err
		}
	}
	return int64(len(ids)), nil
}
