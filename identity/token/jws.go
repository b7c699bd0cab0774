package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// JWS compact serialization (RFC 7515 §7.1) for the two algorithms we sign with. go-jose
// encodes and parses the JWKs; signing and verifying a compact JWS is done here because the
// general-purpose go-jose path (header map, merged unprotected headers, re-encoding) cost about
// half as much again as the Ed25519 verification itself, and because a verifier that knows
// exactly one header shape has less to get wrong.

// typAccessToken is the JWT type of access tokens (RFC 9068 §2.1).
const typAccessToken = "at+jwt"

var b64 = base64.RawURLEncoding.Strict()

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// wireClaims is the JSON payload. NumericDates are whole seconds (RFC 7519 §2).
type wireClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      []string `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Jti      string   `json:"jti"`
	Sid      string   `json:"sid,omitempty"`
	Tenant   string   `json:"tenant,omitempty"`
	Tv       int64    `json:"tv"`
	Amr      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Acr      string   `json:"acr,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// cnf is the confirmation claim of a sender-constrained token (RFC 9449 §6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

// sign returns the compact JWS of payload under k's precomputed header.
func (k *key) sign(payload []byte) (string, error) {
	var sb strings.Builder
	sb.Grow(len(k.header) + 1 + b64.EncodedLen(len(payload)) + 1 + b64.EncodedLen(64))
	sb.WriteString(k.header)
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(payload))
	input := sb.String()

	var sig []byte
	switch priv := k.priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, []byte(input))
	case *ecdsa.PrivateKey:
		// RFC 7518 §3.4: R and S as fixed-size 32-byte big-endian integers, not ASN.1.
		h := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
		if err != nil {
			return "", fmt.Errorf("token: sign: %w", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		return "", errors.New("token: key cannot sign")
	}
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(sig))
	return sb.String(), nil
}

// verifySignature checks sig over input with k's public key and algorithm; the algorithm comes
// from the key, never from the token.
func (k *key) verifySignature(input string, sigSeg string) bool {
	if len(sigSeg) != b64.EncodedLen(64) { // both algorithms have 64-byte signatures
		return false
	}
	sig, err := b64.DecodeString(sigSeg)
	if err != nil || len(sig) != 64 {
		return false
	}
	switch k.alg {
	case EdDSA:
		return ed25519.Verify(k.edPub, []byte(input), sig)
	case ES256:
		h := sha256.Sum256([]byte(input))
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ecPub, h[:], r, s)
	}
	return false
}

// parseHeader decodes a protected header that is not byte-identical to one this ring writes,
// to find the key it names or say precisely why it is refused.
func parseHeader(seg string) (alg Alg, kid string, err error) {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return "", "", fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", "", fmt.Errorf("%w: header JSON", ErrMalformed)
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", "", fmt.Errorf("%w: header fields", ErrMalformed)
	}
	// Refuse none, every HMAC algorithm (which would take a public key as the secret) and RSA
	// before anything else.
	if a := Alg(h.Alg); !a.valid() {
		return "", "", fmt.Errorf("%w: %.20q", ErrAlgorithm, h.Alg)
	}
	for name := range m {
		switch name {
		case "alg", "kid", "typ":
		default:
			// jwk, jku, x5c, x5u would let the token choose its own key; crit and b64 change
			// how the signature is computed. None has a use in our tokens.
			return "", "", fmt.Errorf("%w: header parameter %.20q not allowed", ErrMalformed, name)
		}
	}
	// RFC 9068 §4: the type must be at+jwt (media type comparison is case-insensitive), so an
	// ID token or other JWT signed by the same key cannot be replayed as an access token.
	if !strings.EqualFold(h.Typ, typAccessToken) && !strings.EqualFold(h.Typ, "application/"+typAccessToken) {
		return "", "", fmt.Errorf("%w: typ %.20q is not %s", ErrMalformed, h.Typ, typAccessToken)
	}
	if h.Kid == "" {
		return "", "", fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	return Alg(h.Alg), h.Kid, nil
}
