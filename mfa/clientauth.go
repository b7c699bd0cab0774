package mfa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"tutela"
	"tutela/sqlstore"
)

// ClientAssertionType is the client_assertion_type of private_key_jwt (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client-assertion limits. An assertion is meant for one token request: it may live at most
// maxAssertionLifetime from now, and its jti is remembered until it expires.
const (
	maxAssertionLifetime = 5 * time.Minute
	assertionLeeway      = 30 * time.Second // clock skew between client and us
	maxAssertionLen      = 8 << 10
	maxJTILen            = 256
)

// assertionAlgs is the only list of algorithms a client assertion may use. HMAC (a shared
// secret, the thing private_key_jwt exists to avoid) and none are refused by go-jose before any
// key is consulted.
var assertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// RegisterClientKey registers a public key (a JWK) the tenant's service account signs client
// assertions with and returns its kid. Only P-256 (ES256) and Ed25519 (EdDSA) public keys are
// accepted; a JWK carrying private material is refused rather than stored. Without a "kid" the
// RFC 7638 thumbprint becomes the kid.
func (s *Service) RegisterClientKey(ctx context.Context, tenantID, serviceAccountID string, jwkJSON []byte) (string, error) {
	if len(jwkJSON) > 8<<10 {
		return "", tutela.FieldErrorf("jwk", "jwk is too large")
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(jwkJSON, &jwk); err != nil {
		return "", tutela.FieldErrorf("jwk", "jwk is not a valid JSON Web Key")
	}
	if !jwk.IsPublic() {
		return "", tutela.FieldErrorf("jwk", "send only the public key")
	}
	if !jwk.Valid() {
		return "", tutela.FieldErrorf("jwk", "jwk is not a valid JSON Web Key")
	}
	var alg jose.SignatureAlgorithm
	switch k := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", tutela.FieldErrorf("jwk", "EC keys must be on P-256 (ES256)")
		}
		alg = jose.ES256
	case ed25519.PublicKey:
		alg = jose.EdDSA
	default:
		return "", tutela.FieldErrorf("jwk", "only ES256 (P-256) and EdDSA (Ed25519) keys are accepted")
	}
	if jwk.Algorithm != "" && jwk.Algorithm != string(alg) {
		return "", tutela.FieldErrorf("jwk", "alg %q does not match the key type", jwk.Algorithm)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return "", tutela.FieldErrorf("jwk", "use must be sig")
	}
	kid := jwk.KeyID
	if kid == "" {
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", tutela.FieldErrorf("jwk", "jwk is not a valid JSON Web Key")
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	if len(kid) > 128 {
		return "", tutela.FieldErrorf("jwk", "kid must be at most 128 characters")
	}
	pub := jose.JSONWebKey{Key: jwk.Key, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	stored, err := pub.MarshalJSON()
	if err != nil {
		return "", tutela.Wrap(err, "cannot encode key")
	}
	k := &sqlstore.ServiceAccountKey{ServiceAccountID: serviceAccountID, KeyID: kid, Alg: string(alg), PublicJWK: stored}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AddServiceAccountKey(ctx, tenantID, k) }); err != nil {
		return "", err
	}
	return kid, nil
}

// RemoveClientKey removes a registered key by its ID (ServiceAccountKey.ID, not its kid).
func (s *Service) RemoveClientKey(ctx context.Context, tenantID, serviceAccountID, keyID string) error {
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.RemoveServiceAccountKey(ctx, tenantID, serviceAccountID, keyID)
	})
}

type assertionClaims struct {
	jwt.Claims
}

// parseAssertion parses a client assertion with one signature by an allowed algorithm and
// returns it with the client ID it claims (iss, which must equal sub), or nil. It verifies
// nothing: the unverified claims only name the account whose keys to try.
func parseAssertion(assertion string) (*jwt.JSONWebToken, string) {
	if assertion == "" || len(assertion) > maxAssertionLen {
		return nil, ""
	}
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ""
	}
	var unverified assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, ""
	}
	clientID := unverified.Issuer
	if clientID == "" || len(clientID) > 64 || unverified.Subject != clientID {
		return nil, ""
	}
	return tok, clientID
}

// AssertionClientID is the client ID a client assertion claims to come from, or "". It
// verifies nothing: it names the client in the audit log of a refused assertion and must never
// be trusted for anything else.
func AssertionClientID(assertion string) string {
	_, id := parseAssertion(assertion)
	return id
}

// VerifyClientAssertion authenticates a service account by a private_key_jwt client assertion
// (RFC 7523 §2.2 and §3, OIDC Core §9) presented at the endpoint whose URL is audience, and
// returns the account (its TenantID says which tenant is calling). It checks: an allowed
// algorithm (ES256, EdDSA; the registered key's own), the signature with a key registered for
// the account named by iss, iss == sub == client_id, audience among aud, exp present, in the
// future and at most 5 minutes ahead, iat and nbf not in the future, a jti, and that this jti
// was never accepted before (it is remembered until exp). If the token request also carries a
// client_id, the caller checks it equals the returned account's ClientID.
//
// Every refusal is ErrClientAuth except a replayed jti, ErrAssertionReplayed (same client-facing
// code and message; distinct so the caller can record a security event).
func (s *Service) VerifyClientAssertion(ctx context.Context, assertion, audience string) (*sqlstore.ServiceAccount, error) {
	if audience == "" {
		return nil, tutela.Errorf(tutela.EINTERNAL, "token endpoint audience not configured")
	}
	tok, clientID := parseAssertion(assertion)
	if tok == nil {
		return nil, ErrClientAuth
	}
	hdr := tok.Headers[0]
	var (
		sa   *sqlstore.ServiceAccount
		keys []sqlstore.ServiceAccountKey
	)
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if sa, keys, err = tx.ServiceAccountKeys(ctx, clientID); err != nil {
			return err
		}
		// A client of another data region is refused (wrong_region) before its assertion's
		// jti is recorded on this node.
		if _, err := tx.Tenant(ctx, sa.TenantID); tutela.ErrorCode(err) == tutela.EWRONGREGION {
			return err
		}
		return nil
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, ErrClientAuth
	}
	if err != nil {
		return nil, err
	}
	if sa.Status != tutela.StatusActive {
		return nil, ErrClientAuth
	}
	var claims assertionClaims
	verified := false
	for _, k := range keys {
		// The header's alg must be the registered key's, and a kid, when given, must name it.
		if k.Alg != hdr.Algorithm || (hdr.KeyID != "" && hdr.KeyID != k.KeyID) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
			continue
		}
		if err := tok.Claims(jwk.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, ErrClientAuth
	}
	now := s.now()
	switch {
	case claims.Issuer != sa.ClientID || claims.Subject != sa.ClientID:
		return nil, ErrClientAuth
	case !slices.Contains([]string(claims.Audience), audience):
		return nil, ErrClientAuth
	case claims.Expiry == nil || !now.Before(claims.Expiry.Time().Add(assertionLeeway)):
		return nil, ErrClientAuth
	case claims.Expiry.Time().After(now.Add(maxAssertionLifetime + assertionLeeway)):
		return nil, ErrClientAuth
	case claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(assertionLeeway)):
		return nil, ErrClientAuth
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(assertionLeeway)):
		return nil, ErrClientAuth
	case claims.ID == "" || len(claims.ID) > maxJTILen:
		return nil, ErrClientAuth
	}
	var fresh bool
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		fresh, err = tx.UseClientAssertionJTI(ctx, sa.TenantID, sa.ID, claims.ID, claims.Expiry.Time().Add(assertionLeeway))
		return err
	})
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, ErrAssertionReplayed
	}
	return sa, nil
}
