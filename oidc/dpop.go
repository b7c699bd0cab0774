package oidc

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
)

// DPoP (RFC 9449): a public client proves, on every token request and every use of a
// sender-constrained access token, that it holds the private key the token is bound to. A
// stolen token is useless without the key.

const (
	// MaxDPoPProof bounds a proof's size before any parsing: a header holding a JWK and a few
	// short claims is well under 2 KiB even with an RSA key (8 KiB leaves room for RSA 4096).
	MaxDPoPProof = 8 << 10
	// DPoPLeeway is how far a proof's iat may be from the server's clock (either way).
	DPoPLeeway = 60 * time.Second
	// maxJTI bounds the proof identifier the replay cache keys on.
	maxJTI = 64
	// minRSABits refuses RSA keys too weak to bind a token to.
	minRSABits = 2048
)

// DPoPAlgs are the proof signature algorithms accepted: asymmetric only. "none" and the HS*
// family are never in the list, so go-jose refuses them while parsing (a proof must be signed
// by a key whose public half is in the proof, RFC 9449 §4.2).
var DPoPAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

// DPoPAlgsValue is DPoPAlgs as the WWW-Authenticate algs parameter and the discovery
// document's dpop_signing_alg_values_supported list them.
const DPoPAlgsValue = "ES256 EdDSA RS256 PS256"

// ErrInvalidDPoPProof is what every refused proof wraps: it maps to the OAuth error code
// invalid_dpop_proof (RFC 9449 §7.1). The reasons below wrap it; errors.Is finds either.
var ErrInvalidDPoPProof = errors.New("invalid_dpop_proof")

// Reasons a proof is refused.
var (
	ErrDPoPMalformed = fmt.Errorf("%w: not a compact JWS with an accepted algorithm", ErrInvalidDPoPProof)
	ErrDPoPTooLarge  = fmt.Errorf("%w: proof too large", ErrInvalidDPoPProof)
	ErrDPoPType      = fmt.Errorf("%w: typ must be dpop+jwt", ErrInvalidDPoPProof)
	ErrDPoPKey       = fmt.Errorf("%w: jwk must be an asymmetric public key", ErrInvalidDPoPProof)
	ErrDPoPSignature = fmt.Errorf("%w: signature does not verify with the embedded key", ErrInvalidDPoPProof)
	ErrDPoPClaims    = fmt.Errorf("%w: claims unreadable", ErrInvalidDPoPProof)
	ErrDPoPJTI       = fmt.Errorf("%w: jti missing or longer than 64 characters", ErrInvalidDPoPProof)
	ErrDPoPMethod    = fmt.Errorf("%w: htm does not match the request method", ErrInvalidDPoPProof)
	ErrDPoPURL       = fmt.Errorf("%w: htu does not match the request URL", ErrInvalidDPoPProof)
	ErrDPoPTime      = fmt.Errorf("%w: iat missing or too far from now", ErrInvalidDPoPProof)
	ErrDPoPATH       = fmt.Errorf("%w: ath does not match the access token", ErrInvalidDPoPProof)
	ErrDPoPNonce     = fmt.Errorf("%w: nonce missing or not the server's", ErrInvalidDPoPProof)
)

// DPoPVerifier checks proofs. The zero value uses DPoPLeeway and asks for no nonce.
type DPoPVerifier struct {
	// Leeway bounds |iat - now| (default DPoPLeeway).
	Leeway time.Duration
	// Nonce, when set, is the server nonce (RFC 9449 §8) every proof must carry.
	Nonce string
}

// VerifyDPoP checks proof with the default verifier (DPoPVerifier{}.Verify).
func VerifyDPoP(proof, method, url, accessToken string, now time.Time) (jkt, jti string, err error) {
	return DPoPVerifier{}.Verify(proof, method, url, accessToken, now)
}

// ReplayWindow is how long a proof's jti must be remembered: no proof whose iat is within the
// leeway of one clock reading is still acceptable that long after it.
func (v DPoPVerifier) ReplayWindow() time.Duration { return 2 * v.leeway() }

func (v DPoPVerifier) leeway() time.Duration {
	if v.Leeway <= 0 {
		return DPoPLeeway
	}
	return v.Leeway
}

type dpopClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   *int64 `json:"iat"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`
}

// Verify checks proof (the DPoP header) for a request with method to url, presenting
// accessToken ("" at the token endpoint), per RFC 9449 §4.3, and returns the JWK SHA-256
// thumbprint (RFC 7638) of the key that signed it and the proof's jti. The caller must then
// refuse a jti it has seen within ReplayWindow (sqlstore Tx.UseDPoPProof) and, for a bound
// token, compare jkt with the token's cnf.jkt. Errors are EUNAUTHENTICATED and wrap
// ErrInvalidDPoPProof.
func (v DPoPVerifier) Verify(proof, method, url, accessToken string, now time.Time) (jkt, jti string, err error) {
	fail := func(reason error) (string, string, error) {
		return "", "", &tutela.Error{Code: tutela.EUNAUTHENTICATED, Message: "invalid DPoP proof", Err: reason}
	}
	if len(proof) > MaxDPoPProof {
		return fail(ErrDPoPTooLarge)
	}
	if err := checkHeaderJWK(proof); err != nil {
		return fail(err)
	}
	jws, err := jose.ParseSignedCompact(proof, DPoPAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return fail(ErrDPoPMalformed)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return fail(ErrDPoPType)
	}
	key := h.JSONWebKey
	if key == nil || !key.Valid() || !key.IsPublic() {
		return fail(ErrDPoPKey)
	}
	if rk, ok := key.Key.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
		return fail(ErrDPoPKey)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return fail(ErrDPoPSignature)
	}
	var c dpopClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fail(ErrDPoPClaims)
	}
	if c.JTI == "" || len(c.JTI) > maxJTI {
		return fail(ErrDPoPJTI)
	}
	if c.HTM == "" || c.HTM != method {
		return fail(ErrDPoPMethod)
	}
	want, err := NormalizeHTU(url)
	if err != nil {
		return fail(ErrDPoPURL)
	}
	if got, err := NormalizeHTU(c.HTU); err != nil || got != want {
		return fail(ErrDPoPURL)
	}
	if c.IAT == nil {
		return fail(ErrDPoPTime)
	}
	iat, lw := time.Unix(*c.IAT, 0), v.leeway()
	if iat.Before(now.Add(-lw)) || iat.After(now.Add(lw)) {
		return fail(ErrDPoPTime)
	}
	// ath binds the proof to the access token it accompanies (§4.3 check 11), so a proof
	// captured with one token cannot be replayed with another; a proof made for a resource
	// request is not one for the token endpoint either.
	if accessToken != "" || c.ATH != "" {
		if accessToken == "" || subtle.ConstantTimeCompare([]byte(c.ATH), []byte(ATH(accessToken))) != 1 {
			return fail(ErrDPoPATH)
		}
	}
	if v.Nonce != "" && subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(v.Nonce)) != 1 {
		return fail(ErrDPoPNonce)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return fail(ErrDPoPKey)
	}
	return base64.RawURLEncoding.EncodeToString(tp), c.JTI, nil
}

// checkHeaderJWK refuses, before go-jose reads the proof, a header jwk that is missing, symmetric
// or carries private members (RFC 9449 §4.3 check 6): a client that put its private key in a
// proof has leaked it, and a symmetric key would let anyone who saw the proof forge the next.
// go-jose refuses these too; checking here names the reason.
func checkHeaderJWK(proof string) error {
	seg, _, ok := strings.Cut(proof, ".")
	if !ok {
		return ErrDPoPMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ErrDPoPMalformed
	}
	var h struct {
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return ErrDPoPMalformed
	}
	if h.JWK == nil {
		return ErrDPoPKey
	}
	var kty string
	if err := json.Unmarshal(h.JWK["kty"], &kty); err != nil || (kty != "EC" && kty != "OKP" && kty != "RSA") {
		return ErrDPoPKey
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, ok := h.JWK[private]; ok {
			return ErrDPoPKey
		}
	}
	return nil
}

// NormalizeHTU returns the form of an absolute http(s) URL that htu comparisons use (RFC 9449
// §4.3 check 9, RFC 3986 §6.2.2-6.2.3): scheme and host lower-case, the scheme's default port
// dropped, an empty path as "/", query and fragment removed. A URL with user information, or
// one that is not absolute http(s), is refused.
func NormalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("htu must be an absolute http(s) URL without user information")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]" // an IPv6 literal
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// ATH is the ath claim value for an access token: base64url(SHA-256(token)).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
