package token

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// What the OpenID Provider needs from the ring: the current private key of an algorithm (its
// library signs with it), the published public keys (its key set, for discovery and for
// verifying its own id_token_hint), and SignJWT for ID and logout tokens.

// Algs are the algorithms the ring keeps keys for, the primary (access tokens) first.
func (r *Ring) Algs() []Alg { return slices.Clone(r.cfg.Algs) }

// SigningKey returns the key of alg that signs now. The error wraps ErrNoSigningKey when alg is
// not configured or none of its keys may sign (Rotate has not run recently enough).
func (r *Ring) SigningKey(alg Alg) (kid string, key crypto.Signer, err error) {
	if !slices.Contains(r.cfg.Algs, alg) {
		return "", nil, fmt.Errorf("%w: algorithm %.20q is not configured", ErrNoSigningKey, alg)
	}
	k := r.snap.Load().signingKey(alg, r.cfg.Clock())
	if k == nil {
		return "", nil, fmt.Errorf("%w (%s)", ErrNoSigningKey, alg)
	}
	return k.id, k.priv, nil
}

// PublicKeys are the keys JWKS publishes, as go-jose JWKs: every key of every algorithm that
// is pre-published, signing, or retired less than TTL+Leeway ago, newest first, each with kid,
// alg and use "sig" and public members only. Callers must not modify the keys.
func (r *Ring) PublicKeys() []jose.JSONWebKey {
	s := r.snap.Load()
	now := r.cfg.Clock()
	var out []jose.JSONWebKey
	for _, k := range slices.Backward(s.keys) {
		if now.Before(k.publish) {
			out = append(out, k.pubJWK)
		}
	}
	return out
}

// maxTypLen bounds the typ header SignJWT writes.
const maxTypLen = 64

// SignJWT signs claims (anything encoding to a JSON object) as a compact JWS with the current
// key of alg and a protected header {alg, kid, typ}, for the OpenID Provider's ID tokens
// (typ "JWT") and logout tokens (typ "logout+jwt", OIDC Back-Channel Logout §2.4). The claims
// must carry iss, aud, iat and exp, exp after iat: a JWT without them, signed by a published
// key, would be accepted by any relying party forever. Access tokens come only from Issue, so
// typ at+jwt is refused: the access-token verifier must never see a token whose claims the ring
// did not compose.
func (r *Ring) SignJWT(alg Alg, typ string, claims any) (string, error) {
	if !validTyp(typ) {
		return "", fmt.Errorf("token: sign JWT: typ %.20q is not a media type", typ)
	}
	if strings.EqualFold(typ, typAccessToken) || strings.EqualFold(typ, "application/"+typAccessToken) {
		return "", errors.New("token: sign JWT: access tokens are issued by Issue only")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("token: sign JWT: %w", err)
	}
	if err := checkJWTClaims(payload); err != nil {
		return "", fmt.Errorf("token: sign JWT: %w", err)
	}
	kid, priv, err := r.SigningKey(alg)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", fmt.Errorf("token: sign JWT: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: sign JWT: %w", err)
	}
	return jws.CompactSerialize()
}

// validTyp accepts the characters of a media type (RFC 6838 §4.2 restricted names and "/").
func validTyp(typ string) bool {
	if typ == "" || len(typ) > maxTypLen {
		return false
	}
	for _, c := range []byte(typ) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&-^_.+/", c) >= 0) {
			return false
		}
	}
	return true
}

// checkJWTClaims requires a JSON object with a non-empty iss and aud and a NumericDate iat and
// exp (RFC 7519 §4.1), exp after iat.
func checkJWTClaims(payload []byte) error {
	var c struct {
		Iss *string          `json:"iss"`
		Aud *json.RawMessage `json:"aud"`
		Iat *json.Number     `json:"iat"`
		Exp *json.Number     `json:"exp"`
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return errors.New("claims are not a JSON object")
	}
	if c.Iss == nil || *c.Iss == "" {
		return errors.New("claims need iss")
	}
	if c.Aud == nil || !nonEmptyAudience(*c.Aud) {
		return errors.New("claims need aud")
	}
	if c.Iat == nil || c.Exp == nil {
		return errors.New("claims need iat and exp")
	}
	iat, err1 := c.Iat.Float64()
	exp, err2 := c.Exp.Float64()
	if err1 != nil || err2 != nil || iat <= 0 || exp <= iat {
		return errors.New("claims need iat and exp as NumericDates, exp after iat")
	}
	return nil
}

// nonEmptyAudience accepts aud as a non-empty string or a non-empty array of non-empty strings.
func nonEmptyAudience(raw json.RawMessage) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one != ""
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) == 0 {
		return false
	}
	return !slices.Contains(many, "")
}
