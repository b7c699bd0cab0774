package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tutela"
)

// fakeTransit is a minimal HashiCorp Vault transit engine: encrypt/decrypt for one key under
// mount "transit", with its own in-memory AES-256-GCM key, and a token check.
type fakeTransit struct {
	token string
	gcm   cipher.AEAD
	mu    sync.Mutex
	log   [][]byte // every request body
}

func newFakeTransit(t *testing.T, token string) *fakeTransit {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(b)
	return &fakeTransit{token: token, gcm: g}
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.log = append(f.log, body)
	f.mu.Unlock()
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
	}
	if r.Header.Get("X-Vault-Token") != f.token {
		fail(http.StatusForbidden, "permission denied")
		return
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "method")
		return
	}
	var req struct{ Plaintext, Ciphertext, Context string }
	if err := json.Unmarshal(body, &req); err != nil {
		fail(http.StatusBadRequest, "bad json")
		return
	}
	if req.Context != "" { // non-derived key: Vault would reject a context here
		fail(http.StatusBadRequest, "context given for a non-derived key")
		return
	}
	var data map[string]string
	switch r.URL.Path {
	case "/v1/transit/encrypt/tutela-kek":
		pt, err := base64.StdEncoding.DecodeString(req.Plaintext)
		if err != nil {
			fail(http.StatusBadRequest, "bad plaintext")
			return
		}
		nonce := make([]byte, f.gcm.NonceSize())
		rand.Read(nonce)
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(f.gcm.Seal(nonce, nonce, pt, nil))}
	case "/v1/transit/decrypt/tutela-kek":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.Ciphertext, "vault:v1:"))
		if err != nil || !strings.HasPrefix(req.Ciphertext, "vault:v1:") || len(raw) < f.gcm.NonceSize() {
			fail(http.StatusBadRequest, "invalid ciphertext")
			return
		}
		pt, err := f.gcm.Open(nil, raw[:f.gcm.NonceSize()], raw[f.gcm.NonceSize():], nil)
		if err != nil {
			fail(http.StatusBadRequest, "cipher: message authentication failed")
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)}
	default:
		fail(http.StatusNotFound, "no handler for route")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func (f *fakeTransit) bodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.log...)
}

// startFakeVault serves f over TLS and returns the hcvault:// key URI and a CA file for it.
func startFakeVault(t *testing.T, f *fakeTransit) (uri, caFile string) {
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-CA case logs a handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return "hcvault://" + srv.Listener.Addr().String() + "/transit/keys/tutela-kek", caFile
}

func TestHCVaultKEK_FakeTransit(t *testing.T) {
	const token = "s.test-token-0123456789"
	f := newFakeTransit(t, token)
	uri, ca := startFakeVault(t, f)
	ctx := context.Background()

	kek, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token), VaultCACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if kek.URI() != uri {
		t.Errorf("URI() = %q, want %q", kek.URI(), uri)
	}

	// Direct wrap/unwrap with associated data, which binds even though transit ignores it.
	secret := []byte("keyset-plaintext-marker-7f3a9c")
	ad := []byte("tenant-a/personal_data")
	ct, err := kek.Encrypt(secret, ad)
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
		t.Error("Decrypt of tampered payload succeeded")
	}
	tampered = bytes.Clone(ct)
	tampered[10] ^= 1 // inside the transit-wrapped data key
	if _, err := kek.Decrypt(tampered, ad); err == nil {
		t.Error("Decrypt with tampered wrapped DEK succeeded")
	}

	// Through the vault: keysets are wrapped by the transit KEK; a second node reads them.
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
	kek2, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token), VaultCACert: ca})
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

	// The server saw only wrap requests for data keys: never the payload or the keyset.
	ks, _ := st.GetKeyset(ctx, "t1", "personal_data")
	for i, b := range f.bodies() {
		if bytes.Contains(b, secret) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(secret))) ||
			bytes.Contains(b, msg) || bytes.Contains(b, ks.Wrapped) {
			t.Errorf("request %d to Vault carries the payload: %s", i, b)
		}
		if bytes.Contains(b, []byte(token)) {
			t.Errorf("request %d body carries the token", i)
		}
	}
	if len(f.bodies()) == 0 {
		t.Fatal("fake Vault received no request")
	}

	// Wrong token: the KEK opens (no call yet) but every wrap/unwrap fails; the vault refuses to start.
	bad, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret("s.wrong"), VaultCACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Encrypt(secret, ad); err == nil {
		t.Error("Encrypt with a wrong token succeeded")
	}
	if _, err := bad.Decrypt(ct, ad); err == nil {
		t.Error("Decrypt with a wrong token succeeded")
	} else if strings.Contains(err.Error(), "s.wrong") {
		t.Errorf("error leaks the token: %v", err)
	}
	if _, err := New(ctx, bad, st, Options{}); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("New with wrong token: err = %v, want ErrWrongKEK", err)
	}

	// Without the test CA the server's certificate is not trusted: TLS is verified.
	untrusted, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Encrypt(secret, ad); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Encrypt against an untrusted certificate: err = %v, want a certificate error", err)
	}

	// No token at all: refused before any call.
	t.Setenv("TUTELA_VAULT_TOKEN", "")
	t.Setenv("VAULT_TOKEN", "")
	if _, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultCACert: ca}); err == nil {
		t.Error("OpenKEK without a token succeeded")
	}
	// Token and CA from the environment.
	t.Setenv("TUTELA_VAULT_TOKEN", token)
	t.Setenv("TUTELA_VAULT_CACERT", ca)
	envKEK, err := OpenKEK(ctx, KEKConfig{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := envKEK.Decrypt(ct, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("env-configured Decrypt = %q, %v", got, err)
	}
}
