package vault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fakeCloudKMS is a minimal Google Cloud KMS REST API (v1 cryptoKeys encrypt/decrypt) for one
// key. Callers authenticate as a service account: the bearer token must be a JWT signed by the
// account's key (Google's self-signed JWT flow) or an access token the fake's OAuth token
// endpoint issued for such a JWT. It checks and sets the CRC32C integrity fields as Cloud KMS
// does, and binds additionalAuthenticatedData as GCM associated data.
type fakeCloudKMS struct {
	kmsFake
	keyName string
	saEmail string
	saKey   *rsa.PublicKey
	issued  string // the access token handed out by /token
	// corrupt makes the next answers' CRC32C fields wrong, as a corruption in transit would.
	corrupt atomic.Bool
}

// sum is the CRC32C of b as Cloud KMS spells it, off by one when the fake is corrupting.
func (f *fakeCloudKMS) sum(b []byte) string {
	c := uint64(crc32.Checksum(b, crc32c))
	if f.corrupt.Load() {
		c ^= 1
	}
	return strconv.FormatUint(c, 10)
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func (f *fakeCloudKMS) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	if tok == f.issued {
		return true
	}
	return f.validAssertion(tok)
}

// validAssertion checks a JWT signed with the service account's key and issued by it.
func (f *fakeCloudKMS) validAssertion(tok string) bool {
	j, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return false
	}
	var c jwt.Claims
	if err := j.Claims(f.saKey, &c); err != nil {
		return false
	}
	return c.Issuer == f.saEmail && c.Validate(jwt.Expected{}) == nil
}

func (f *fakeCloudKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := f.read(r)
	fail := func(code int, status, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "status": status, "message": msg}})
	}
	if r.URL.Path == "/token" { // OAuth 2.0 JWT bearer grant (RFC 7523)
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" ||
			!f.validAssertion(form.Get("assertion")) {
			fail(http.StatusBadRequest, "invalid_grant", "bad assertion")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": f.issued, "token_type": "Bearer", "expires_in": 3600})
		return
	}
	if !f.authorized(r) {
		fail(http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
		return
	}
	name, op, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/"), ":")
	if name != f.keyName {
		fail(http.StatusNotFound, "NOT_FOUND", "CryptoKey not found.")
		return
	}
	var req struct {
		Plaintext, Ciphertext, AdditionalAuthenticatedData                   string
		PlaintextCrc32c, CiphertextCrc32c, AdditionalAuthenticatedDataCrc32c string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "bad json")
		return
	}
	decode := func(s, sum string) ([]byte, bool) {
		b, err := base64.URLEncoding.DecodeString(s)
		if err != nil {
			return nil, false
		}
		want, err := strconv.ParseUint(sum, 10, 32)
		return b, err == nil && uint64(crc32.Checksum(b, crc32c)) == want
	}
	aad, ok := decode(req.AdditionalAuthenticatedData, req.AdditionalAuthenticatedDataCrc32c)
	if !ok {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "additional_authenticated_data checksum")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch op {
	case "encrypt":
		pt, ok := decode(req.Plaintext, req.PlaintextCrc32c)
		if !ok {
			fail(http.StatusBadRequest, "INVALID_ARGUMENT", "plaintext checksum")
			return
		}
		ct := f.seal(pt, aad)
		json.NewEncoder(w).Encode(map[string]any{"name": f.keyName + "/cryptoKeyVersions/1",
			"ciphertext": ct, "ciphertextCrc32c": f.sum(ct),
			"verifiedPlaintextCrc32c": true, "verifiedAdditionalAuthenticatedDataCrc32c": true})
	case "decrypt":
		ct, ok := decode(req.Ciphertext, req.CiphertextCrc32c)
		if !ok {
			fail(http.StatusBadRequest, "INVALID_ARGUMENT", "ciphertext checksum")
			return
		}
		pt, err := f.open(ct, aad)
		if err != nil {
			fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"plaintext": pt,
			"plaintextCrc32c": f.sum(pt)})
	default:
		fail(http.StatusNotFound, "NOT_FOUND", "no such method")
	}
}

// writeServiceAccount writes a service-account key file (the JSON `gcloud iam service-accounts
// keys create` produces) whose token endpoint is tokenURI, and returns its path.
func writeServiceAccount(t *testing.T, dir, email, tokenURI string, key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "tutela-test",
		"private_key_id": "k1", "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1", "token_uri": tokenURI})
	p := filepath.Join(dir, strings.Split(email, "@")[0]+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGCPKMSKEK_FakeCloudKMS(t *testing.T) {
	const keyName = "projects/tutela-test/locations/europe-west1/keyRings/tutela/cryptoKeys/kek"
	const email = "tutela@tutela-test.iam.gserviceaccount.com"
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCloudKMS{kmsFake: newKMSFake(t), keyName: keyName, saEmail: email, saKey: &saKey.PublicKey,
		issued: "ya29." + rand.Text()}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	creds := writeServiceAccount(t, dir, email, srv.URL+"/token", saKey)
	// Only the key file configures the client: no gcloud config, no metadata server.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", creds)
	t.Setenv("CLOUDSDK_CONFIG", dir)

	ctx := context.Background()
	uri := "gcp-kms://" + keyName
	keyPEM, _ := os.ReadFile(creds)
	kek, ct, _, ad := exerciseKMSKEK(t, &f.kmsFake, func() (KEK, error) { return OpenKEK(ctx, KEKConfig{URI: uri, KMSEndpoint: srv.URL + "/"}) }, f.issued,
		string(keyPEM[strings.Index(string(keyPEM), "MII"):strings.Index(string(keyPEM), "MII")+64]))
	if kek.URI() != uri {
		t.Errorf("URI() = %q", kek.URI())
	}
	st := storeWrappedBy(t, kek)

	// An answer whose integrity fields do not match its data (corrupted in transit) is refused,
	// both ways: the client checks the CRC32C of every answer.
	f.corrupt.Store(true)
	if _, err := kek.Encrypt([]byte("keyset"), ad); err == nil {
		t.Error("Encrypt accepted a ciphertext whose CRC32C does not match")
	}
	if _, err := kek.Decrypt(ct, ad); err == nil {
		t.Error("Decrypt accepted a plaintext whose CRC32C does not match")
	}
	f.corrupt.Store(false)

	// Another service account, unknown to the KMS: every call fails, the vault refuses to start.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", writeServiceAccount(t, dir, "intruder@evil.iam.gserviceaccount.com", srv.URL+"/token", other))
	bad, err := OpenKEK(ctx, KEKConfig{URI: uri, KMSEndpoint: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Decrypt(ct, ad); err == nil {
		t.Error("Decrypt with another service account succeeded")
	}
	if _, err := New(ctx, bad, st, Options{}); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("New with another service account: err = %v, want ErrWrongKEK", err)
	}

	// Another key in the same project: not found, refused.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", creds)
	wrongKey, err := OpenKEK(ctx, KEKConfig{URI: "gcp-kms://projects/tutela-test/locations/europe-west1/keyRings/tutela/cryptoKeys/other",
		KMSEndpoint: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, wrongKey, st, Options{}); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("New with another key: err = %v, want ErrWrongKEK", err)
	}
}
