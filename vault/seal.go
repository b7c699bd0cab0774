package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"tutela"
)

// Sealer encrypts small secrets (signing keys, TOTP seeds) for storage. aad names the context a
// ciphertext belongs to, for example "signing_key:<kid>": Open with any other aad fails, so a
// sealed value copied into another row or column of the store cannot be opened there.
//
// This is the interim local implementation's contract; envelope encryption with Tink and
// KMS/HSM-held keys will implement the same interface.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// ErrUnseal means a sealed value could not be opened: wrong master key, wrong context (aad),
// truncated or tampered data. The causes are deliberately not distinguished.
var ErrUnseal = errors.New("vault: cannot open sealed data (wrong key, wrong context or tampered)")

// sealVersion is the first byte of every sealed value, so a later format (or the Tink envelope
// that replaces this one) can be told apart and migrated.
const sealVersion byte = 1

// sealInfo separates the sealing key from any other key derived from the master key: the
// master key itself never encrypts anything directly.
const sealInfo = "tutela vault local sealer v1 aes-256-gcm"

// LocalSealer seals with AES-256-GCM under a key derived (HKDF-SHA256) from the master key.
// Layout: version (1 byte) || nonce (12 random bytes) || ciphertext || tag (16 bytes); the
// version byte is authenticated together with aad.
//
// Random 96-bit nonces are safe for up to 2^32 seals per master key (NIST SP 800-38D §8.3),
// far above the number of signing keys and seeds Tutela stores.
type LocalSealer struct {
	aead cipher.AEAD
}

var _ Sealer = (*LocalSealer)(nil)

// NewLocalSealer returns a sealer keyed by masterKey, which must be MasterKeySize bytes.
func NewLocalSealer(masterKey tutela.Secret) (*LocalSealer, error) {
	if n := len(masterKey.Bytes()); n != MasterKeySize {
		return nil, fmt.Errorf("vault: master key must be %d bytes, got %d", MasterKeySize, n)
	}
	k, err := hkdf.Key(sha256.New, masterKey.Bytes(), nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: derive sealing key: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("vault: sealing cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: sealing cipher: %w", err)
	}
	return &LocalSealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad.
func (s *LocalSealer) Seal(plaintext, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, fmt.Errorf("vault: seal: random source: %w", err)
	}
	return s.aead.Seal(out, out[1:1+ns], plaintext, versionedAAD(aad)), nil // #nosec G407 -- the nonce is fresh from crypto/rand (line above), not hardcoded
}

// Open decrypts a value sealed with the same master key and aad. Every failure is ErrUnseal.
func (s *LocalSealer) Open(ciphertext, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(ciphertext) < 1+ns+s.aead.Overhead() || ciphertext[0] != sealVersion {
		return nil, ErrUnseal
	}
	pt, err := s.aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], versionedAAD(aad))
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// String keeps the cipher state out of %v output.
func (*LocalSealer) String() string   { return "vault.LocalSealer[redacted]" }
func (*LocalSealer) GoString() string { return "vault.LocalSealer[redacted]" }

func versionedAAD(aad []byte) []byte {
	b := make([]byte, 0, 1+len(aad))
	return append(append(b, sealVersion), aad...)
}
