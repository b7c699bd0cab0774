package sqlstore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"

	"tutela"
)

// Limits on a client's credentials.
const (
	// MaxClientSecrets is how many unexpired secrets a client may hold at once: enough for a
	// few rotations inside one overlap, few enough that a forgotten secret cannot pile up.
	MaxClientSecrets = 5
	// MaxClientKeys is how many public keys a private_key_jwt client may register.
	MaxClientKeys = 10
	// MaxSecretOverlap bounds how long a rotated secret keeps working.
	MaxSecretOverlap = 30 * 24 * time.Hour
	// MinClientRSABits: NIST SP 800-131A; RSA below 2048 bits is factorable in reach.
	MinClientRSABits = 2048
	maxJWKBytes      = 8 << 10
)

// OIDCClientSecret describes one of a client's secrets; the secret itself exists only in the
// answer that created it, and its hash never leaves the store.
type OIDCClientSecret struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// OIDCClientKey is a public key a private_key_jwt client signs its assertions with (RFC 7523).
type OIDCClientKey struct {
	ID        string          `json:"id"`
	KeyID     string          `json:"kid"`
	JWK       json.RawMessage `json:"jwk"`
	CreatedAt time.Time       `json:"created_at"`
}

// lockClient locks the client's row for the rest of the transaction and returns the client.
func (r OIDCClients) lockClient(ctx context.Context, clientID string) (*OIDCClient, error) {
	if !ValidClientID(clientID) || !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "client not found")
	}
	// Serialises rotations of one client, so two cannot both pass the cap.
	if err := r.tx.lockRow(ctx, "client not found", `SELECT id FROM oidc_clients WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, clientID); err != nil {
		return nil, err
	}
	return r.Get(ctx, clientID)
}

// RotateSecret adds a new secret and returns it (once). Every unexpired secret the client had
// now expires within overlap: a fleet of relying-party nodes can switch to the new one in that
// time. An expiry already sooner is kept: rotation never extends the life of a secret.
func (r OIDCClients) RotateSecret(ctx context.Context, clientID string, overlap time.Duration) (tutela.Secret, string, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return tutela.Secret{}, "", tutela.FieldErrorf("overlap_seconds", "overlap must be between 0 and 30 days")
	}
	c, err := r.lockClient(ctx, clientID)
	if err != nil {
		return tutela.Secret{}, "", err
	}
	if c.AuthMethod != ClientSecretBasic {
		return tutela.Secret{}, "", tutela.Errorf(tutela.ECONFLICT, "the client authenticates with %s and has no secret", c.AuthMethod)
	}
	cut := r.tx.now.Add(overlap)
	if _, err := r.tx.exec(ctx, `UPDATE oidc_client_secrets SET expires_at = $1 WHERE tenant_id = $2 AND client_id = $3
		AND (expires_at IS NULL OR expires_at > $1)`, cut, r.tenantID, clientID); err != nil {
		return tutela.Secret{}, "", err
	}
	n, err := r.tx.count(ctx, `SELECT count(*) FROM oidc_client_secrets WHERE tenant_id = $1 AND client_id = $2
		AND (expires_at IS NULL OR expires_at > $3)`, r.tenantID, clientID, r.tx.now)
	if err != nil {
		return tutela.Secret{}, "", err
	}
	if n >= MaxClientSecrets {
		return tutela.Secret{}, "", tutela.Errorf(tutela.ECONFLICT,
			"a client has at most %d unexpired secrets; revoke one or rotate with a shorter overlap", MaxClientSecrets)
	}
	s := tutela.RandomToken(32)
	id := tutela.NewID()
	if _, err := r.tx.exec(ctx, `INSERT INTO oidc_client_secrets (id, tenant_id, client_id, secret_hash, created_at)
		VALUES ($1,$2,$3,$4,$5)`, id, r.tenantID, clientID, HashToken(s), r.tx.now); err != nil {
		return tutela.Secret{}, "", err
	}
	return tutela.NewSecret(s), id, r.tx.Record(ctx, "oidc_client.secret_rotate", r.tenantID, "oidc_client", clientID, "",
		map[string]any{"secret_id": id, "overlap_seconds": int64(overlap / time.Second)})
}

// Secrets lists the client's secrets, newest first, expired ones included (their history).
func (r OIDCClients) Secrets(ctx context.Context, clientID string) ([]OIDCClientSecret, error) {
	if _, err := r.Get(ctx, clientID); err != nil {
		return nil, err
	}
	rows, err := r.tx.query(ctx, `SELECT id, created_at, expires_at FROM oidc_client_secrets WHERE tenant_id = $1
		AND client_id = $2 ORDER BY created_at DESC, id`, r.tenantID, clientID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []OIDCClientSecret{}
	for rows.Next() {
		var s OIDCClientSecret
		var exp sql.NullTime
		if err := rows.Scan(&s.ID, &s.CreatedAt, &exp); err != nil {
			return nil, err
		}
		s.CreatedAt = s.CreatedAt.UTC()
		if exp.Valid {
			t := exp.Time.UTC()
			s.ExpiresAt = &t
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// RevokeSecret ends one secret now. Revoking an already expired one is not found.
func (r OIDCClients) RevokeSecret(ctx context.Context, clientID, secretID string) error {
	if _, err := r.lockClient(ctx, clientID); err != nil {
		return err
	}
	if !tutela.ValidID(secretID) {
		return tutela.Errorf(tutela.ENOTFOUND, "secret not found")
	}
	res, err := r.tx.exec(ctx, `UPDATE oidc_client_secrets SET expires_at = $1 WHERE id = $2 AND tenant_id = $3
		AND client_id = $4 AND (expires_at IS NULL OR expires_at > $1)`, r.tx.now, secretID, r.tenantID, clientID)
	if err := affectedOne(res, err, "secret not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "oidc_client.secret_revoke", r.tenantID, "oidc_client", clientID, "", map[string]any{"secret_id": secretID})
}

// ParseClientJWK checks a client's public signing key and returns it in the form stored: only
// the public part, use "sig", the key's algorithm, and a kid (the RFC 7638 thumbprint when
// kid is ""). Accepted: Ed25519 (EdDSA), EC P-256 (ES256) and P-384 (ES384), RSA of at least
// 2048 bits (RS256 or PS256). A private key is refused, not stripped: it has left its owner
// and must be replaced, not registered.
func ParseClientJWK(kid string, raw []byte) (jose.JSONWebKey, error) {
	bad := func(format string, args ...any) (jose.JSONWebKey, error) {
		return jose.JSONWebKey{}, tutela.FieldErrorf("jwk", format, args...)
	}
	if len(raw) > maxJWKBytes {
		return bad("jwk is too large")
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return bad("jwk is not a valid JSON Web Key")
	}
	if !k.IsPublic() {
		return bad("send only the public key; a private key that left its owner must be replaced")
	}
	if !k.Valid() {
		return bad("jwk is not a valid JSON Web Key")
	}
	// Only the algorithms the provider's assertion verifier takes (the zitadel library checks
	// client assertions with RS256, ES256 and PS256 alone): a key it could never verify is
	// refused here rather than failing every sign-in later.
	var algs []string
	switch pk := k.Key.(type) {
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return bad("EC keys must be on P-256 (ES256)")
		}
		algs = []string{string(jose.ES256)}
	case *rsa.PublicKey:
		if pk.N.BitLen() < MinClientRSABits {
			return bad("RSA keys must have at least %d bits", MinClientRSABits)
		}
		algs = []string{string(jose.RS256), string(jose.PS256)}
	default:
		return bad("only EC P-256 (ES256) and RSA (RS256, PS256) keys are accepted")
	}
	alg := k.Algorithm
	if alg == "" {
		alg = algs[0]
	}
	ok := false
	for _, a := range algs {
		ok = ok || a == alg
	}
	if !ok {
		return bad("alg %q does not match the key type", alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return bad("use must be sig")
	}
	if kid == "" {
		kid = k.KeyID
	}
	if kid == "" {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return bad("jwk is not a valid JSON Web Key")
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	if k.KeyID != "" && k.KeyID != kid {
		return bad("kid %q differs from the key's own kid", kid)
	}
	if len(kid) > 128 || !tutela.ValidText(kid) {
		return bad("kid must be at most 128 characters of plain text")
	}
	return jose.JSONWebKey{Key: k.Key, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
}

// AddKey registers a public key (a JWK) of a private_key_jwt client and returns its kid.
func (r OIDCClients) AddKey(ctx context.Context, clientID, kid string, jwk []byte) (string, error) {
	c, err := r.lockClient(ctx, clientID)
	if err != nil {
		return "", err
	}
	if c.AuthMethod != PrivateKeyJWT {
		return "", tutela.Errorf(tutela.ECONFLICT, "the client authenticates with %s; keys are for private_key_jwt clients", c.AuthMethod)
	}
	k, err := ParseClientJWK(kid, jwk)
	if err != nil {
		return "", err
	}
	n, err := r.tx.count(ctx, `SELECT count(*) FROM oidc_client_keys WHERE tenant_id = $1 AND client_id = $2`, r.tenantID, clientID)
	if err != nil {
		return "", err
	}
	if n >= MaxClientKeys {
		return "", tutela.Errorf(tutela.ECONFLICT, "a client has at most %d keys; remove one first", MaxClientKeys)
	}
	stored, err := k.MarshalJSON()
	if err != nil {
		return "", tutela.Wrap(err, "cannot encode key")
	}
	_, err = r.tx.exec(ctx, `INSERT INTO oidc_client_keys (id, tenant_id, client_id, kid, jwk, created_at) VALUES ($1,$2,$3,$4,$5,$6)`,
		tutela.NewID(), r.tenantID, clientID, k.KeyID, string(stored), r.tx.now)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return "", &tutela.Error{Code: tutela.ECONFLICT, Field: "kid", Message: "the client already has a key with this kid"}
	}
	if err != nil {
		return "", err
	}
	return k.KeyID, r.tx.Record(ctx, "oidc_client.key_add", r.tenantID, "oidc_client", clientID, "",
		map[string]any{"kid": k.KeyID, "alg": k.Algorithm})
}

// Keys lists the client's registered public keys.
func (r OIDCClients) Keys(ctx context.Context, clientID string) ([]OIDCClientKey, error) {
	if _, err := r.Get(ctx, clientID); err != nil {
		return nil, err
	}
	rows, err := r.tx.query(ctx, `SELECT id, kid, jwk, created_at FROM oidc_client_keys WHERE tenant_id = $1 AND client_id = $2
		AND (expires_at IS NULL OR expires_at > $3) ORDER BY created_at, kid`, r.tenantID, clientID, r.tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []OIDCClientKey{}
	for rows.Next() {
		var k OIDCClientKey
		var jwk string
		if err := rows.Scan(&k.ID, &k.KeyID, &jwk, &k.CreatedAt); err != nil {
			return nil, err
		}
		k.JWK, k.CreatedAt = json.RawMessage(jwk), k.CreatedAt.UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}

// RemoveKey deletes the client's key kid.
func (r OIDCClients) RemoveKey(ctx context.Context, clientID, kid string) error {
	if _, err := r.lockClient(ctx, clientID); err != nil {
		return err
	}
	if kid == "" || len(kid) > 128 {
		return tutela.Errorf(tutela.ENOTFOUND, "key not found")
	}
	res, err := r.tx.exec(ctx, `DELETE FROM oidc_client_keys WHERE tenant_id = $1 AND client_id = $2 AND kid = $3`,
		r.tenantID, clientID, kid)
	if err := affectedOne(res, err, "key not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "oidc_client.key_remove", r.tenantID, "oidc_client", clientID, "", map[string]any{"kid": kid})
}

// KeySet returns the client's current public keys for verifying its private_key_jwt
// assertions (RFC 7523 §3). Each is parsed again, so a row that no longer passes
// ParseClientJWK's rules fails the whole set rather than being trusted.
func (r OIDCClients) KeySet(ctx context.Context, clientID string) ([]jose.JSONWebKey, error) {
	keys, err := r.Keys(ctx, clientID)
	if err != nil {
		return nil, err
	}
	out := make([]jose.JSONWebKey, 0, len(keys))
	for _, k := range keys {
		jwk, err := ParseClientJWK(k.KeyID, k.JWK)
		if err != nil {
			return nil, tutela.Wrap(errors.New(tutela.ErrorMessage(err)), "stored client key unreadable")
		}
		out = append(out, jwk)
	}
	return out, nil
}
