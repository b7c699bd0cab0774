package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"tutela"
)

// Pushed authorization requests (RFC 9126). A client posts its authorization parameters to the
// PAR endpoint and gets a request_uri it then sends the browser to /authorize with: the
// parameters never travel through the browser, where they could be read or altered.

const (
	// PushedRequestURIPrefix starts every request_uri this server issues (RFC 9126 §2.2).
	PushedRequestURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// MaxPushedRequestTTL bounds a pushed request's life: RFC 9126 §2.2 asks for a short one.
	MaxPushedRequestTTL = 10 * time.Minute
	// maxPushedParams bounds the stored parameters (the PAR endpoint's body limit is the first
	// bound; this one holds whatever the caller is).
	maxPushedParams = 32 << 10
)

// PushAuthRequest stores the pushed parameters of the tenant's active client clientID for ttl
// and returns the request_uri naming them: PushedRequestURIPrefix and 43 random characters
// (256 bits). Only its SHA-256 is stored. A client that is not the tenant's, or is disabled, is
// ENOTFOUND; parameters holding a request_uri themselves (RFC 9126 §2.1) are refused.
func (tx *Tx) PushAuthRequest(ctx context.Context, tenantID, clientID string, params url.Values, ttl time.Duration) (string, error) {
	if !tutela.ValidID(tenantID) || clientID == "" || len(clientID) > 64 {
		return "", tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	if ttl <= 0 || ttl > MaxPushedRequestTTL {
		return "", tutela.Errorf(tutela.EINVALID, "a pushed request lives between 1 s and %s", MaxPushedRequestTTL)
	}
	if params.Has("request_uri") {
		return "", tutela.FieldErrorf("request_uri", "request_uri cannot be pushed")
	}
	if params == nil {
		params = url.Values{}
	}
	js, err := json.Marshal(params)
	if err != nil {
		return "", tutela.Wrap(err, "pushed request unreadable")
	}
	if len(js) > maxPushedParams {
		return "", tutela.Errorf(tutela.EINVALID, "pushed request too large")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", tutela.Wrap(err, "random source failed")
	}
	uri := PushedRequestURIPrefix + base64.RawURLEncoding.EncodeToString(b)
	res, err := tx.exec(ctx, `INSERT INTO oidc_pushed_requests (handle_hash, tenant_id, client_id, params, created_at, expires_at)
		SELECT $1, tenant_id, id, $2, $3, $4 FROM oidc_clients WHERE tenant_id = $5 AND id = $6 AND status = 'active'`,
		HashToken(uri), string(js), tx.now, tx.now.Add(ttl), tenantID, clientID)
	if err != nil {
		return "", err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err != nil {
			return "", err
		}
		return "", tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	return uri, nil
}

// errPushedNotFound answers every request_uri that cannot be used, whatever the reason
// (unknown, used, expired, another tenant's or another client's), so none can be probed.
var errPushedNotFound = tutela.Errorf(tutela.ENOTFOUND, "request_uri not found or expired")

// TakePushedRequest returns the parameters requestURI names and deletes them: a request_uri is
// used once (RFC 9126 §4). Only the tenant's client that pushed it can take it; an expired one
// is deleted and not found.
func (tx *Tx) TakePushedRequest(ctx context.Context, tenantID, clientID, requestURI string) (url.Values, error) {
	if !tutela.ValidID(tenantID) || clientID == "" || len(clientID) > 64 ||
		!strings.HasPrefix(requestURI, PushedRequestURIPrefix) || len(requestURI) > len(PushedRequestURIPrefix)+64 {
		return nil, errPushedNotFound
	}
	var js string
	var expires time.Time
	err := tx.queryRow(ctx, `DELETE FROM oidc_pushed_requests WHERE handle_hash = $1 AND tenant_id = $2 AND client_id = $3
		RETURNING params, expires_at`, HashToken(requestURI), tenantID, clientID).Scan(&js, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errPushedNotFound
	}
	if err != nil {
		return nil, mapErr(err)
	}
	if !expires.After(tx.now) {
		return nil, errPushedNotFound
	}
	var params url.Values
	if err := json.Unmarshal([]byte(js), &params); err != nil {
		return nil, tutela.Wrap(err, "pushed request unreadable")
	}
	return params, nil
}

// SweepPushedRequests deletes the pushed requests that expired unused and reports how many.
func (tx *Tx) SweepPushedRequests(ctx context.Context) (int64, error) {
	scope, args := tx.regionScope("tenant_id", false, tx.now)
	res, err := tx.exec(ctx, `DELETE FROM oidc_pushed_requests WHERE expires_at <= $1`+scope, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
