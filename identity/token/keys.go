package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/vault"
)

// StoredKey is a signing key as kept in the store. Rows are only ever added, never updated:
// a key stops signing when a newer key activates or at RetireAt, whichever comes first, so
// nodes racing to rotate never need to coordinate an update.
type StoredKey struct {
	ID            string // kid: 128 random bits, hex
	Alg           Alg
	Public        []byte // the public key as a JWK (JSON), with kid, alg and use
	SealedPrivate []byte // PKCS #8 private key sealed with aad "signing_key:<kid>:<alg>"
	CreatedAt     time.Time
	ActivateAt    time.Time // first instant the key may sign; it is published from CreatedAt
	RetireAt      time.Time // hard end of signing (ActivateAt + 2×RotateEvery) should rotation stall
}

// KeyStore persists signing keys. Implementations must return every key added (in any order)
// and refuse a duplicate ID.
type KeyStore interface {
	ListSigningKeys(ctx context.Context) ([]StoredKey, error)
	AddSigningKey(ctx context.Context, k StoredKey) error
}

// MemKeyStore is an in-memory KeyStore for tests and single-process tools.
type MemKeyStore struct {
	mu   sync.Mutex
	keys []StoredKey
}

// ListSigningKeys returns copies of all keys.
func (m *MemKeyStore) ListSigningKeys(context.Context) ([]StoredKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]StoredKey, len(m.keys))
	for i, k := range m.keys {
		out[i] = k.clone()
	}
	return out, nil
}

// AddSigningKey stores a copy of k; a duplicate ID is ECONFLICT.
func (m *MemKeyStore) AddSigningKey(_ context.Context, k StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.keys {
		if e.ID == k.ID {
			return tutela.Errorf(tutela.ECONFLICT, "signing key exists")
		}
	}
	m.keys = append(m.keys, k.clone())
	return nil
}

func (k StoredKey) clone() StoredKey {
	k.Public = bytes.Clone(k.Public)
	k.SealedPrivate = bytes.Clone(k.SealedPrivate)
	return k
}

func sealAAD(kid string, alg Alg) []byte { return []byte("signing_key:" + kid + ":" + string(alg)) }

// newStoredKey generates a key pair and seals its private half.
func newStoredKey(alg Alg, sealer vault.Sealer, now, activate time.Time, rotateEvery time.Duration) (StoredKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, RSABits)
	default:
		err = fmt.Errorf("unsupported alg %q", alg)
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("token: generate signing key: %w", err)
	}
	kid := tutela.RandomToken(16)
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"}.MarshalJSON()
	if err != nil {
		return StoredKey{}, fmt.Errorf("token: encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, fmt.Errorf("token: encode private key: %w", err)
	}
	sealed, err := sealer.Seal(der, sealAAD(kid, alg))
	clear(der)
	if err != nil {
		return StoredKey{}, fmt.Errorf("token: seal signing key: %w", err)
	}
	return StoredKey{
		ID: kid, Alg: alg, Public: pub, SealedPrivate: sealed,
		CreatedAt: now, ActivateAt: activate, RetireAt: activate.Add(2 * rotateEvery),
	}, nil
}

// key is a parsed signing key. Immutable once built.
type key struct {
	stored  StoredKey
	id      string
	alg     Alg
	edPub   ed25519.PublicKey
	ecPub   *ecdsa.PublicKey
	rsaPub  *rsa.PublicKey
	priv    crypto.Signer // nil when the key can no longer sign
	pubJWK  jose.JSONWebKey
	jwk     json.RawMessage
	header  string    // base64url of the access-token header for the key; "" for RSA keys
	retire  time.Time // effective end of signing: min(RetireAt, successor's ActivateAt)
	publish time.Time // end of publication and verification: retire + TTL + Leeway
}

// validKID bounds what a store row can put into headers and logs.
func validKID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parsePublic checks a stored key's public JWK and precomputes what verification needs. It
// re-encodes the JWK from the parsed key, so a stored JWK carrying private or extra members
// can never reach the JWKS.
func parsePublic(s StoredKey) (*key, error) {
	if !validKID(s.ID) {
		return nil, errors.New("invalid key ID")
	}
	if !s.Alg.supported() {
		return nil, fmt.Errorf("unsupported alg %q", s.Alg)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(s.Public); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if !jwk.IsPublic() || jwk.KeyID != s.ID || jwk.Algorithm != string(s.Alg) {
		return nil, errors.New("public key JWK does not match the stored key")
	}
	k := &key{stored: s, id: s.ID, alg: s.Alg}
	switch pub := jwk.Key.(type) {
	case ed25519.PublicKey:
		if s.Alg != EdDSA || len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("public key type does not match alg")
		}
		k.edPub = pub
	case *ecdsa.PublicKey:
		if s.Alg != ES256 || pub.Curve != elliptic.P256() {
			return nil, errors.New("public key type does not match alg")
		}
		k.ecPub = pub
	case *rsa.PublicKey:
		// Only keys as strong as the ring makes: a row with a weaker modulus was not made here.
		if s.Alg != RS256 || pub.N.BitLen() < RSABits || pub.N.BitLen() > 8192 {
			return nil, errors.New("public key type does not match alg")
		}
		k.rsaPub = pub
	default:
		return nil, errors.New("public key type does not match alg")
	}
	k.pubJWK = jose.JSONWebKey{Key: jwk.Key, KeyID: s.ID, Algorithm: string(s.Alg), Use: "sig"}
	jwkJSON, err := k.pubJWK.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k.jwk = jwkJSON
	if !s.Alg.valid() {
		// RSA keys never sign access tokens, so no access-token header leads to them.
		return k, nil
	}
	h, err := json.Marshal(header{Alg: string(s.Alg), Kid: s.ID, Typ: typAccessToken})
	if err != nil {
		return nil, err
	}
	k.header = base64.RawURLEncoding.EncodeToString(h)
	return k, nil
}

// unsealPrivate opens the private key and checks it is the pair of the stored public key, so a
// row whose halves were swapped cannot sign tokens nobody can verify (or vice versa).
func (k *key) unsealPrivate(sealer vault.Sealer) error {
	der, err := sealer.Open(k.stored.SealedPrivate, sealAAD(k.id, k.alg))
	if err != nil {
		return fmt.Errorf("cannot unseal private key (wrong master key?): %w", err)
	}
	defer clear(der)
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	switch p := p.(type) {
	case ed25519.PrivateKey:
		if k.edPub == nil || !k.edPub.Equal(p.Public()) {
			return errors.New("private key does not match public key")
		}
		k.priv = p
	case *ecdsa.PrivateKey:
		if k.ecPub == nil || !k.ecPub.Equal(p.Public()) {
			return errors.New("private key does not match public key")
		}
		k.priv = p
	case *rsa.PrivateKey:
		if k.rsaPub == nil || !k.rsaPub.Equal(p.Public()) {
			return errors.New("private key does not match public key")
		}
		k.priv = p
	default:
		return errors.New("private key type does not match alg")
	}
	return nil
}

// sameStored reports whether a and b are the same row, so a parsed key can be reused across
// refreshes without unsealing again.
func sameStored(a, b StoredKey) bool {
	return a.ID == b.ID && a.Alg == b.Alg && bytes.Equal(a.Public, b.Public) &&
		bytes.Equal(a.SealedPrivate, b.SealedPrivate) && a.CreatedAt.Equal(b.CreatedAt) &&
		a.ActivateAt.Equal(b.ActivateAt) && a.RetireAt.Equal(b.RetireAt)
}

// byActivation orders keys by ActivateAt, then ID, so every node derives the same succession
// from the same rows even when two nodes rotated at once.
func byActivation(a, b StoredKey) int {
	if c := a.ActivateAt.Compare(b.ActivateAt); c != 0 {
		return c
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}
