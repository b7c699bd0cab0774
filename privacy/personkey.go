// Package privacy holds the privacy vault's rules: each person's own data key (so erasure is
// crypto-shredding), blind indexes for exact-value search over encrypted data, and the
// schema, tokenization and minimization built on them. Like authz it does no I/O of its own:
// keys come wrapped from the store and go back to it.
package privacy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	tinksubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/tink"

	"tutela/vault"
)

// keyLen is a person data key's size: AES-256.
const keyLen = 32

// ErrErased means a person's key is gone: they were erased, and their data with it.
var ErrErased = errors.New("privacy: this person was erased; their data no longer exists")

// ErrDecrypt means a value did not open under the person's key: it belongs to another person,
// field or tenant, or was altered.
var ErrDecrypt = errors.New("privacy: cannot decrypt (another person, field or tenant, or tampered data)")

// Keys makes and opens person data keys. A key is 256 random bits, wrapped by the tenant's
// person_keys keyset under associated data naming the tenant and person, so a wrapped key
// copied to another person's row does not open.
type Keys struct{ Vault *vault.Vault }

// New makes a data key for person in tenant and returns it with its wrapped form (to store in
// person_keys).
func (k Keys) New(ctx context.Context, tenantID, personID string) (*PersonKey, []byte, error) {
	raw := make([]byte, keyLen)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	wrapped, err := k.Vault.Encrypt(ctx, tenantID, vault.PurposePersonKeys, raw, vault.AAD("person_keys", "wrapped", personID))
	if err != nil {
		return nil, nil, err
	}
	pk, err := newPersonKey(tenantID, personID, raw)
	clear(raw)
	return pk, wrapped, err
}

// Open unwraps a stored person key. A nil wrapped key (no row: the person was erased) is
// ErrErased.
func (k Keys) Open(ctx context.Context, tenantID, personID string, wrapped []byte) (*PersonKey, error) {
	if wrapped == nil {
		return nil, ErrErased
	}
	raw, err := k.Vault.Decrypt(ctx, tenantID, vault.PurposePersonKeys, wrapped, vault.AAD("person_keys", "wrapped", personID))
	if err != nil {
		return nil, fmt.Errorf("privacy: person key of %s: %w", personID, err)
	}
	pk, err := newPersonKey(tenantID, personID, raw)
	clear(raw)
	return pk, err
}

// PersonKey encrypts one person's data. Every value is bound to (tenant, person, field): a
// ciphertext moved to another person, field or tenant does not decrypt.
type PersonKey struct {
	tenantID, personID string
	aead               tink.AEAD
}

func newPersonKey(tenantID, personID string, raw []byte) (*PersonKey, error) {
	a, err := tinksubtle.NewAESGCM(raw)
	if err != nil {
		return nil, err
	}
	return &PersonKey{tenantID: tenantID, personID: personID, aead: a}, nil
}

// PersonID is whose key this is.
func (p *PersonKey) PersonID() string { return p.personID }

// aad binds a value to its tenant, person and field ("table.column" or a schema field name).
func (p *PersonKey) aad(field string) []byte {
	return vault.LengthPrefixed("tutela/person/v1", p.tenantID, p.personID, field)
}

// Seal encrypts plaintext as field of this person.
func (p *PersonKey) Seal(field string, plaintext []byte) ([]byte, error) {
	return p.aead.Encrypt(plaintext, p.aad(field))
}

// Open decrypts what Seal made for the same field. Any failure is ErrDecrypt.
func (p *PersonKey) Open(field string, ciphertext []byte) ([]byte, error) {
	pt, err := p.aead.Decrypt(ciphertext, p.aad(field))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// String and GoString keep the key out of logs and %v.
func (*PersonKey) String() string   { return "privacy.PersonKey[redacted]" }
func (*PersonKey) GoString() string { return "privacy.PersonKey[redacted]" }

func isNoKeyset(err error) bool { return errors.Is(err, vault.ErrNoKeyset) }

// Rekey moves a value sealed as field of one person to another: it opens ct under from and
// seals the plaintext under to, for the same field, so the plaintext never leaves this package
// (an identity merge hands the merged subject's values, tokens and files to the survivor). A
// value that does not open under from is ErrDecrypt.
func Rekey(from, to *PersonKey, field string, ct []byte) ([]byte, error) {
	pt, err := from.Open(field, ct)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return to.Seal(field, pt)
}

// EqualSealed reports whether a's and b's values of field, each sealed under its own person's key,
// hold the same plaintext (compared in constant time): what an identity merge's preview asks
// of every field, without handing either value out. A value that does not open is ErrDecrypt.
func EqualSealed(a, b *PersonKey, field string, cta, ctb []byte) (bool, error) {
	pa, err := a.Open(field, cta)
	if err != nil {
		return false, err
	}
	defer clear(pa)
	pb, err := b.Open(field, ctb)
	if err != nil {
		return false, err
	}
	defer clear(pb)
	return subtle.ConstantTimeCompare(pa, pb) == 1, nil
}
