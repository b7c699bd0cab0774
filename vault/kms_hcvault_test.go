package vault

import (
	"context"
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
	"sync/atomic"
	"testing"

	"tutela"
)

// fakeTransit is a minimal HashiCorp Vault transit engine: encrypt/decrypt for one key under
// mount "transit", with its own in-memory AES-256-GCM key, and a token check.
type fakeTransit struct {
	kmsFake
	token string
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := f.read(r)
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
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(f.seal(pt, nil))}
	case "/v1/transit/decrypt/tutela-kek":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.Ciphertext, "vault:v1:"))
		if err != nil || !strings.HasPrefix(req.Ciphertext, "vault:v1:") {
			fail(http.StatusBadRequest, "invalid ciphertext")
			return
		}
		pt, err := f.open(raw, nil)
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
	f := &fakeTransit{kmsFake: newKMSFake(t), token: token}
	uri, ca := startFakeVault(t, f)
	ctx := context.Background()

	kek, ct, secret, ad := exerciseKMSKEK(t, &f.kmsFake, func() (KEK, error) {
		return OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token), VaultCACert: ca})
	}, token)
	if kek.URI() != uri {
		t.Errorf("URI() = %q, want %q", kek.URI(), uri)
	}
	st := storeWrappedBy(t, kek)

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

	// VAULT_SKIP_VERIFY cannot switch certificate checks off.
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	if _, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token), VaultCACert: ca}); err == nil ||
		!strings.Contains(err.Error(), "VAULT_SKIP_VERIFY") {
		t.Errorf("OpenKEK with VAULT_SKIP_VERIFY: err = %v", err)
	}
	t.Setenv("VAULT_SKIP_VERIFY", "")
	// Nor can VAULT_AGENT_ADDR redirect the token and the wraps elsewhere.
	var agentHits atomic.Int32
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { agentHits.Add(1) }))
	t.Cleanup(agent.Close)
	t.Setenv("VAULT_AGENT_ADDR", agent.URL)
	if k, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultToken: tutela.NewSecret(token), VaultCACert: ca}); err == nil {
		_, _ = k.Encrypt([]byte("x"), nil)
		t.Error("OpenKEK with VAULT_AGENT_ADDR succeeded")
	}
	if agentHits.Load() != 0 {
		t.Errorf("VAULT_AGENT_ADDR received %d requests", agentHits.Load())
	}
	t.Setenv("VAULT_AGENT_ADDR", "")

	// No token at all: refused before any call.
	if _, err := OpenKEK(ctx, KEKConfig{URI: uri, VaultCACert: ca}); err == nil {
		t.Error("OpenKEK without a token succeeded")
	}
}
