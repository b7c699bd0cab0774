package identitytest

import (
	"crypto/ecdsa"
	"crypto/x509"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// NewPasskeyCredential returns a virtual passkey whose public key encodes correctly. The virtual
// authenticator writes the EC point coordinates with big.Int.Bytes, which drops leading zero
// bytes, so about one key in 128 has a 31-byte coordinate that go-webauthn rightly rejects (a
// defect of the test authenticator): such keys are skipped so tests do not flake.
func NewPasskeyCredential(t testing.TB) virtualwebauthn.Credential {
	t.Helper()
	for range 100 {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ec, ok := k.(*ecdsa.PrivateKey); ok && len(ec.X.Bytes()) == 32 && len(ec.Y.Bytes()) == 32 {
			return c
		}
	}
	t.Fatal("no well-formed virtual credential in 100 tries")
	return virtualwebauthn.Credential{}
}
