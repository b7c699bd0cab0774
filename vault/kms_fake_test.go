package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
)

// kmsFake is what the fake KMS servers (AWS KMS, GCP KMS, Vault transit) share: an in-memory
// AES-256-GCM key standing in for the provider's key, and a log of every request body so a test
// can prove what crossed the wire.
type kmsFake struct {
	gcm cipher.AEAD
	mu  sync.Mutex
	log [][]byte
}

func newKMSFake(t *testing.T) kmsFake {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(b)
	return kmsFake{gcm: g}
}

// read reads and logs the request body.
func (f *kmsFake) read(r *http.Request) []byte {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.log = append(f.log, body)
	f.mu.Unlock()
	return body
}

func (f *kmsFake) seal(pt, ad []byte) []byte {
	nonce := make([]byte, f.gcm.NonceSize())
	rand.Read(nonce)
	return f.gcm.Seal(nonce, nonce, pt, ad)
}

func (f *kmsFake) open(ct, ad []byte) ([]byte, error) {
	if len(ct) < f.gcm.NonceSize() {
		return nil, errors.New("short ciphertext")
	}
	return f.gcm.Open(nil, ct[:f.gcm.NonceSize()], ct[f.gcm.NonceSize():], ad)
}

func (f *kmsFake) bodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.log...)
}

// exerciseKMSKEK runs what every cloud KEK must do against its fake server f: wrap and unwrap
// under associated data; refuse other associated data, a tampered payload and a tampered wrapped
// data key; carry a vault whose keysets a second node (open called again) can read; and never
// send the payload, the keyset or any of the secrets to the server. It returns a ciphertext of
// secret under ad for the caller's provider-specific checks.
func exerciseKMSKEK(t *testing.T, f *kmsFake, open func() (KEK, error), secrets ...string) (kek KEK, ct, secret, ad []byte) {
	t.Helper()
	ctx := context.Background()
	kek, err := open()
	if err != nil {
		t.Fatal(err)
	}
	secret = []byte("keyset-plaintext-marker-" + rand.Text())
	ad = []byte("tenant-a/personal_data")
	ct, err = kek.Encrypt(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kek.Decrypt(ct, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := kek.Decrypt(ct, []byte("tenant-b/personal_data")); err == nil {
		t.Error("Decrypt with other associated data succeeded")
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	if _, err := kek.Decrypt(tampered, ad); err == nil {
		t.Error("Decrypt of a tampered payload succeeded")
	}
	tampered = bytes.Clone(ct)
	tampered[8] ^= 1 // inside the KMS-wrapped data key (after Tink's 4-byte length prefix)
	if _, err := kek.Decrypt(tampered, ad); err == nil {
		t.Error("Decrypt with a tampered wrapped data key succeeded")
	}

	// Through the vault: keysets are wrapped by the KMS KEK; a second node reads them.
	st := newMemStore()
	v, err := New(ctx, kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("alice@example.com")
	c, err := v.Encrypt(ctx, "t1", "personal_data", msg, AAD("users", "email", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	kek2, err := open()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := New(ctx, kek2, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2.Decrypt(ctx, "t1", "personal_data", c, AAD("users", "email", "u1")); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("second node Decrypt = %q, %v", got, err)
	}

	// The server saw only wrap requests for data keys: never the payload, the keyset or a secret.
	ks, _ := st.GetKeyset(ctx, "t1", "personal_data")
	if len(f.bodies()) == 0 {
		t.Fatal("the fake KMS received no request")
	}
	for i, b := range f.bodies() {
		if bytes.Contains(b, secret) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(secret))) ||
			bytes.Contains(b, []byte(base64.URLEncoding.EncodeToString(secret))) ||
			bytes.Contains(b, msg) || bytes.Contains(b, ks.Wrapped) {
			t.Errorf("request %d to the KMS carries the payload: %s", i, b)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("request %d body carries a credential", i)
			}
		}
	}
	return kek, ct, secret, ad
}

// storeWrappedBy returns a store holding one keyset wrapped by kek, for checking that another
// KEK is refused at start.
func storeWrappedBy(t *testing.T, kek KEK) *memStore {
	t.Helper()
	ctx := context.Background()
	st := newMemStore()
	v, err := New(ctx, kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Encrypt(ctx, "t1", "totp", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	return st
}
