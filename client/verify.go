package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// algorithms are the only JWS algorithms Tutela signs with. Anything else ("none", HMAC with
// the public key as secret, RSA) is refused before a key is looked up.
var algorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// typAccessToken is the JWT type of access tokens (RFC 9068 §2.1).
const typAccessToken = "at+jwt"

// maxJWKSSize bounds the JWK Set response; Tutela publishes a handful of keys.
const maxJWKSSize = 256 << 10

// keySet is an immutable view of the JWK Set; requests read it without locks.
type keySet struct {
	byID map[string]verifyKey
	// byHeader maps the protected header Tutela writes for each key, base64url-encoded, to the
	// key's ID: the fast path that skips decoding the header of a well-formed token. Any other
	// encoding takes the slow path, which checks it field by field.
	byHeader map[string]string
	fetched  time.Time
}

type verifyKey struct {
	alg jose.SignatureAlgorithm
	pub any // ed25519.PublicKey or *ecdsa.PublicKey (P-256)
}

// Refresh fetches the JWK Set now. Call it at startup to fail fast on a wrong BaseURL; after
// that the client refreshes by itself.
func (c *Client) Refresh(ctx context.Context) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.lastAttempt.Store(c.cfg.Clock().UnixNano())
	ks, err := c.fetchJWKS(ctx)
	if err != nil {
		return err
	}
	c.keys.Store(ks)
	return nil
}

// key returns the verification key named kid, from the cached set when it is fresh and knows
// kid; otherwise it refetches, rate-limited to one fetch per JWKSMinInterval.
func (c *Client) key(ctx context.Context, kid string) (verifyKey, error) {
	ks := c.keys.Load()
	if ks != nil {
		if k, ok := ks.byID[kid]; ok {
			if c.cfg.Clock().Sub(ks.fetched) < c.cfg.JWKSRefresh {
				return k, nil
			}
			// Stale but known: one request refreshes, the others go on with the old set
			// rather than queue behind the fetch.
			ks = c.refetch(ctx, ks, false)
		} else {
			// Unknown kid: perhaps a key published since the last fetch (rotation).
			ks = c.refetch(ctx, ks, true)
		}
	} else {
		ks = c.refetch(ctx, nil, true)
	}
	if ks == nil {
		return verifyKey{}, unavailable(errors.New("no JWK Set: Tutela's jwks.json could not be fetched"))
	}
	k, ok := ks.byID[kid]
	if !ok {
		return verifyKey{}, unauthenticated(fmt.Errorf("%w: %.64q", ErrUnknownKey, kid))
	}
	return k, nil
}

// refetch fetches the JWK Set unless another request did since seen was loaded or a fetch was
// attempted less than JWKSMinInterval ago; with wait false it also gives up when a fetch is in
// progress. A failed fetch keeps the previous set: tokens keep verifying against the keys last
// published while Tutela is unreachable, and those keys' tokens still expire on time.
func (c *Client) refetch(ctx context.Context, seen *keySet, wait bool) *keySet {
	// With a set in hand, a recent attempt means there is nothing to wait for. Without one, a
	// fetch may be in progress: wait for it below.
	if seen != nil && c.recentAttempt() {
		return c.keys.Load()
	}
	if wait {
		c.fetchMu.Lock()
	} else if !c.fetchMu.TryLock() {
		return seen
	}
	defer c.fetchMu.Unlock()
	if cur := c.keys.Load(); cur != seen {
		return cur
	}
	if c.recentAttempt() {
		return seen
	}
	c.lastAttempt.Store(c.cfg.Clock().UnixNano())
	ks, err := c.fetchJWKS(ctx)
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "tutela client: JWKS fetch failed", "err", err)
		return seen
	}
	c.keys.Store(ks)
	return ks
}

func (c *Client) recentAttempt() bool {
	last := c.lastAttempt.Load()
	return last != 0 && c.cfg.Clock().Sub(time.Unix(0, last)) < JWKSMinInterval
}

func (c *Client) fetchJWKS(ctx context.Context) (*keySet, error) {
	// Detached from the request that triggered it: that request being cancelled must not
	// leave every other request without keys for JWKSMinInterval.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, fmt.Errorf("client: JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req, maxJWKSSize)
	if err != nil {
		return nil, fmt.Errorf("client: JWKS: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("client: JWKS: status %d", status)
	}
	ks, err := parseJWKS(body, c.cfg.Clock())
	if err != nil {
		return nil, fmt.Errorf("client: JWKS: %w", err)
	}
	return ks, nil
}

// parseJWKS keeps the keys this client can use: public signature keys of the two algorithms,
// each of the type its alg names. Other keys are skipped rather than failing the set, so a key
// type added to Tutela later does not stop verification of the others.
func parseJWKS(body []byte, now time.Time) (*keySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	ks := &keySet{byID: make(map[string]verifyKey, len(raw.Keys)), byHeader: map[string]string{}, fetched: now}
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil {
			continue
		}
		k, ok := usableKey(&jwk)
		if !ok {
			continue
		}
		if _, dup := ks.byID[jwk.KeyID]; dup {
			// Two keys under one kid: which one signed is ambiguous, so neither is trusted.
			delete(ks.byID, jwk.KeyID)
			continue
		}
		ks.byID[jwk.KeyID] = k
	}
	if len(ks.byID) == 0 {
		return nil, errors.New("no usable key")
	}
	for kid, k := range ks.byID {
		h, err := json.Marshal(struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			Typ string `json:"typ"`
		}{string(k.alg), kid, typAccessToken})
		if err != nil {
			return nil, err
		}
		ks.byHeader[base64.RawURLEncoding.EncodeToString(h)] = kid
	}
	return ks, nil
}

func usableKey(jwk *jose.JSONWebKey) (verifyKey, bool) {
	if jwk.KeyID == "" || len(jwk.KeyID) > 64 || !jwk.IsPublic() || (jwk.Use != "" && jwk.Use != "sig") {
		return verifyKey{}, false
	}
	switch pub := jwk.Key.(type) {
	case ed25519.PublicKey:
		if jwk.Algorithm == string(jose.EdDSA) && len(pub) == ed25519.PublicKeySize {
			return verifyKey{alg: jose.EdDSA, pub: pub}, true
		}
	case *ecdsa.PublicKey:
		if jwk.Algorithm == string(jose.ES256) && pub.Curve == elliptic.P256() {
			return verifyKey{alg: jose.ES256, pub: pub}, true
		}
	}
	return verifyKey{}, false
}

// wireClaims is the JSON payload of an access token.
type wireClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Jti      string   `json:"jti"`
	Sid      string   `json:"sid"`
	Tenant   string   `json:"tenant"`
	Tv       int64    `json:"tv"`
	Amr      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Scope    string   `json:"scope"`
}

// audience accepts both forms RFC 7519 §4.1.3 allows: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

var b64 = base64.RawURLEncoding.Strict()

// VerifySignature checks tok's signature, header and claims against the cached JWK Set, with
// no network call once the set is cached, and returns its claims. It does not check
// revocation; Verify does. Every refusal is a *tutela.Error with code EUNAUTHENTICATED whose
// Err says why (ErrExpired, ErrAlgorithm, …); a JWK Set that cannot be fetched is EUNAVAILABLE.
func (c *Client) VerifySignature(ctx context.Context, tok string) (*Claims, error) {
	if len(tok) > maxTokenLen {
		return nil, unauthenticated(fmt.Errorf("%w: too long", ErrMalformed))
	}
	if strings.Count(tok, ".") != 2 {
		return nil, unauthenticated(fmt.Errorf("%w: not a compact JWS", ErrMalformed))
	}
	hdr := tok[:strings.IndexByte(tok, '.')]
	var alg jose.SignatureAlgorithm
	kid, known := "", false
	if ks := c.keys.Load(); ks != nil {
		if kid, known = ks.byHeader[hdr]; known {
			alg = ks.byID[kid].alg
		}
	}
	if !known {
		var err error
		if alg, kid, err = parseHeader(hdr); err != nil {
			return nil, unauthenticated(err)
		}
	}
	k, err := c.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	// The algorithm comes from the key, never from the token: a token cannot make an Ed25519
	// key verify as anything else.
	if k.alg != alg {
		return nil, unauthenticated(fmt.Errorf("%w: key %s is %s, token says %s", ErrAlgorithm, kid, k.alg, alg))
	}
	jws, err := jose.ParseSignedCompact(tok, algorithms)
	if err != nil || len(jws.Signatures) != 1 || jws.Signatures[0].Header.Algorithm != string(k.alg) {
		return nil, unauthenticated(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	payload, err := jws.Verify(k.pub)
	if err != nil {
		return nil, unauthenticated(ErrBadSignature)
	}
	cl, err := c.checkClaims(payload)
	if err != nil {
		return nil, unauthenticated(err)
	}
	return cl, nil
}

// parseHeader accepts exactly the protected header Tutela writes: alg, kid and typ. Header
// keys (jwk, jku, x5c, x5u) would let a token choose its own key, and crit or b64 change how
// the signature is computed; none has a use in these tokens.
func parseHeader(seg string) (jose.SignatureAlgorithm, string, error) {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return "", "", fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", "", fmt.Errorf("%w: header JSON", ErrMalformed)
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", "", fmt.Errorf("%w: header fields", ErrMalformed)
	}
	alg := jose.SignatureAlgorithm(h.Alg)
	if !slices.Contains(algorithms, alg) {
		return "", "", fmt.Errorf("%w: %.20q", ErrAlgorithm, h.Alg)
	}
	for name := range m {
		if name != "alg" && name != "kid" && name != "typ" {
			return "", "", fmt.Errorf("%w: header parameter %.20q not allowed", ErrMalformed, name)
		}
	}
	// RFC 9068 §4: an ID token or other JWT signed by the same key is not an access token.
	if !strings.EqualFold(h.Typ, typAccessToken) && !strings.EqualFold(h.Typ, "application/"+typAccessToken) {
		return "", "", fmt.Errorf("%w: typ %.20q is not %s", ErrMalformed, h.Typ, typAccessToken)
	}
	if h.Kid == "" {
		return "", "", fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	return alg, h.Kid, nil
}

// checkClaims applies RFC 9068 §4 and RFC 7519 §4.1 to a verified payload.
func (c *Client) checkClaims(payload []byte) (*Claims, error) {
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: claims JSON", ErrMalformed)
	}
	if w.Sub == "" || w.Jti == "" || w.Exp == 0 || w.Iat == 0 || w.Nbf == 0 {
		return nil, fmt.Errorf("%w: missing required claim", ErrMalformed)
	}
	if w.Iss != c.cfg.Issuer {
		return nil, ErrIssuer
	}
	if !slices.Contains(w.Aud, c.cfg.Audience) {
		return nil, ErrAudience
	}
	exp, iat, nbf := time.Unix(w.Exp, 0).UTC(), time.Unix(w.Iat, 0).UTC(), time.Unix(w.Nbf, 0).UTC()
	if !exp.After(iat) || exp.Sub(iat) > maxTokenLifetime {
		return nil, fmt.Errorf("%w: lifetime longer than Tutela issues", ErrMalformed)
	}
	now := c.cfg.Clock()
	if !now.Before(exp.Add(leeway)) {
		return nil, ErrExpired
	}
	if earliest := now.Add(leeway); earliest.Before(nbf) || earliest.Before(iat) {
		return nil, ErrNotYetValid
	}
	cl := &Claims{
		Issuer: w.Iss, Subject: w.Sub, Audience: w.Aud, Expiry: exp, IssuedAt: iat, NotBefore: nbf, ID: w.Jti,
		SessionID: w.Sid, Tenant: w.Tenant, TokenVersion: w.Tv, AMR: w.Amr, Scope: w.Scope,
	}
	if w.AuthTime != 0 {
		cl.AuthTime = time.Unix(w.AuthTime, 0).UTC()
	}
	return cl, nil
}

// Verify is VerifySignature followed by the revocation check (see Config.ClientID): the full
// check the middleware runs.
func (c *Client) Verify(ctx context.Context, tok string) (*Claims, error) {
	cl, err := c.VerifySignature(ctx, tok)
	if err != nil {
		return nil, err
	}
	if err := c.checkRevocation(ctx, tok, cl); err != nil {
		return nil, err
	}
	return cl, nil
}
