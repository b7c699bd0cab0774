package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeKMS is a minimal AWS KMS (JSON 1.1 protocol, X-Amz-Target TrentService.Encrypt/Decrypt)
// with one symmetric key held in memory. It checks the SigV4 access key ID and binds the
// encryption context as GCM associated data, as KMS does.
type fakeKMS struct {
	keyARN, accessKey string
	gcm               cipher.AEAD
	mu                sync.Mutex
	log               [][]byte
}

func newFakeKMS(t *testing.T, keyARN, accessKey string) *fakeKMS {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(b)
	return &fakeKMS{keyARN: keyARN, accessKey: accessKey, gcm: g}
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.log = append(f.log, body)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(typ, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if !strings.Contains(r.Header.Get("Authorization"), "Credential="+f.accessKey+"/") {
		fail("UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	var req struct {
		KeyId             string
		Plaintext         []byte
		CiphertextBlob    []byte
		EncryptionContext map[string]string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		fail("SerializationException", err.Error())
		return
	}
	if req.KeyId != f.keyARN {
		fail("NotFoundException", "key not found")
		return
	}
	ec, _ := json.Marshal(req.EncryptionContext) // sorted keys: deterministic
	switch r.Header.Get("X-Amz-Target") {
	case "TrentService.Encrypt":
		nonce := make([]byte, f.gcm.NonceSize())
		rand.Read(nonce)
		json.NewEncoder(w).Encode(map[string]any{"KeyId": f.keyARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
			"CiphertextBlob": f.gcm.Seal(nonce, nonce, req.Plaintext, ec)})
	case "TrentService.Decrypt":
		ct := req.CiphertextBlob
		if len(ct) < f.gcm.NonceSize() {
			fail("InvalidCiphertextException", "")
			return
		}
		pt, err := f.gcm.Open(nil, ct[:f.gcm.NonceSize()], ct[f.gcm.NonceSize():], ec)
		if err != nil {
			fail("InvalidCiphertextException", "")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"KeyId": f.keyARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "Plaintext": pt})
	default:
		fail("UnknownOperationException", r.Header.Get("X-Amz-Target"))
	}
}

func (f *fakeKMS) bodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.log...)
}

func TestAWSKMSKEK_FakeKMS(t *testing.T) {
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	const accessKey = "AKIATUTELATEST000001"
	f := newFakeKMS(t, arn, accessKey)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	// Only the environment configures the SDK: no shared files, no instance metadata.
	dir := t.TempDir()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": "test-secret",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_EC2_METADATA_DISABLED": "true",
		"TUTELA_KMS_ENDPOINT": srv.URL} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	uri := "aws-kms://" + arn
	kek, err := OpenKEK(ctx, KEKConfig{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	if kek.URI() != uri {
		t.Errorf("URI() = %q", kek.URI())
	}
	secret := []byte("keyset-plaintext-marker-aws-51e2")
	ad := []byte("tenant-a/totp")
	ct, err := kek.Encrypt(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kek.Decrypt(ct, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := kek.Decrypt(ct, []byte("tenant-b/totp")); err == nil {
		t.Error("Decrypt with other associated data succeeded")
	}
	tampered := bytes.Clone(ct)
	tampered[8] ^= 1 // inside the KMS-wrapped data key
	if _, err := kek.Decrypt(tampered, ad); err == nil {
		t.Error("Decrypt with tampered wrapped DEK succeeded")
	}

	st := newMemStore()
	v, err := New(ctx, kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("JBSWY3DPEHPK3PXP")
	c, err := v.Encrypt(ctx, "t1", "totp", msg, AAD("mfa", "secret", "m1"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := New(ctx, kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2.Decrypt(ctx, "t1", "totp", c, AAD("mfa", "secret", "m1")); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("second vault Decrypt = %q, %v", got, err)
	}
	ks, _ := st.GetKeyset(ctx, "t1", "totp")
	if len(f.bodies()) == 0 {
		t.Fatal("fake KMS received no request")
	}
	for i, b := range f.bodies() {
		if bytes.Contains(b, secret) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(secret))) ||
			bytes.Contains(b, msg) || bytes.Contains(b, ks.Wrapped) || bytes.Contains(b, []byte("test-secret")) {
			t.Errorf("request %d to KMS carries the payload or the secret key: %s", i, b)
		}
	}

	// Other credentials: every call fails, the vault refuses to start.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAWRONG00000000000")
	bad, err := OpenKEK(ctx, KEKConfig{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Decrypt(ct, ad); err == nil {
		t.Error("Decrypt with wrong credentials succeeded")
	}
	if _, err := New(ctx, bad, st, Options{}); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("New with wrong credentials: err = %v, want ErrWrongKEK", err)
	}
}
