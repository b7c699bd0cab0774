package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeKMS is a minimal AWS KMS (JSON 1.1 protocol, X-Amz-Target TrentService.Encrypt/Decrypt)
// with one symmetric key held in memory. It checks the SigV4 access key ID and binds the
// encryption context as GCM associated data, as KMS does.
type fakeKMS struct {
	kmsFake
	keyARN, accessKey string
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := f.read(r)
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
		json.NewEncoder(w).Encode(map[string]any{"KeyId": f.keyARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
			"CiphertextBlob": f.seal(req.Plaintext, ec)})
	case "TrentService.Decrypt":
		pt, err := f.open(req.CiphertextBlob, ec)
		if err != nil {
			fail("InvalidCiphertextException", "")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"KeyId": f.keyARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "Plaintext": pt})
	default:
		fail("UnknownOperationException", r.Header.Get("X-Amz-Target"))
	}
}

func TestAWSKMSKEK_FakeKMS(t *testing.T) {
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	const accessKey = "AKIATUTELATEST000001"
	f := &fakeKMS{kmsFake: newKMSFake(t), keyARN: arn, accessKey: accessKey}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	// Only the environment configures the SDK: no shared files, no instance metadata.
	dir := t.TempDir()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": "test-secret",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	uri := "aws-kms://" + arn
	kek, ct, _, ad := exerciseKMSKEK(t, &f.kmsFake, func() (KEK, error) { return OpenKEK(ctx, KEKConfig{URI: uri, KMSEndpoint: srv.URL}) }, "test-secret")
	if kek.URI() != uri {
		t.Errorf("URI() = %q", kek.URI())
	}
	st := storeWrappedBy(t, kek)

	// Other credentials: every call fails, the vault refuses to start.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAWRONG00000000000")
	bad, err := OpenKEK(ctx, KEKConfig{URI: uri, KMSEndpoint: srv.URL})
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
