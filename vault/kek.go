package vault

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"

	"tutela"
)

// KEK is a key-encryption key: an AEAD that wraps data-encryption keysets and nothing else. It
// has Tink's tink.AEAD shape, so keyset.Handle can be written and read with it directly. A KEK
// held by an HSM or KMS never exposes its key bytes to Tutela; only Encrypt/Decrypt calls cross.
type KEK interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
	// URI says where the KEK lives ("local:", "pkcs11:…", "aws-kms://…"); it never contains
	// secrets (a PIN or token) and is shown by GET /v1/keys.
	URI() string
}

// KEK URI schemes.
const (
	SchemeLocal   = "local"
	SchemePKCS11  = "pkcs11"
	SchemeAWSKMS  = "aws-kms"
	SchemeGCPKMS  = "gcp-kms"
	SchemeHCVault = "hcvault"
)

// KEKSpec is a parsed KEK URI.
type KEKSpec struct {
	Scheme string
	// PKCS#11 (RFC 7512 subset): token label and key (object) label.
	Token, Object string
	// KMS: the key URI exactly as Tink's KMS clients expect it (aws-kms://arn…, gcp-kms://projects/…,
	// hcvault://host[:port]/transit/keys/NAME).
	KeyURI string
}

// ParseKEKURI parses where the KEK lives:
//
//	local:                                    the data-directory master key (development)
//	pkcs11:token=TOKEN;object=LABEL           an AES key in an HSM, found by token and key label
//	aws-kms://arn:aws:kms:REGION:ACCT:key/ID  AWS KMS
//	gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K
//	hcvault://HOST[:PORT]/transit/keys/NAME   HashiCorp Vault transit
//
// The empty string means local:.
func ParseKEKURI(uri string) (KEKSpec, error) {
	if uri == "" || uri == "local:" || uri == "local" {
		return KEKSpec{Scheme: SchemeLocal}, nil
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return KEKSpec{}, fmt.Errorf("vault: KEK URI %q has no scheme (want local:, pkcs11:, aws-kms://, gcp-kms:// or hcvault://)", uri)
	}
	switch scheme {
	case SchemePKCS11:
		spec := KEKSpec{Scheme: SchemePKCS11}
		for _, attr := range strings.Split(strings.SplitN(rest, "?", 2)[0], ";") {
			k, v, _ := strings.Cut(attr, "=")
			v, err := url.PathUnescape(v)
			if err != nil {
				return KEKSpec{}, fmt.Errorf("vault: KEK URI %s: bad escape in %s", scheme, k)
			}
			switch k {
			case "token":
				spec.Token = v
			case "object":
				spec.Object = v
			case "pin-value", "pin-source":
				return KEKSpec{}, errors.New("vault: pkcs11 KEK URI must not carry the PIN; set TUTELA_HSM_PIN")
			}
		}
		if spec.Token == "" || spec.Object == "" {
			return KEKSpec{}, errors.New("vault: pkcs11 KEK URI needs token=… and object=… (the key label)")
		}
		return spec, nil
	case SchemeAWSKMS:
		if !strings.HasPrefix(rest, "//arn:") || !strings.Contains(rest, ":kms:") {
			return KEKSpec{}, fmt.Errorf("vault: %s URI must be aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID", scheme)
		}
	case SchemeGCPKMS:
		p := strings.TrimPrefix(rest, "//")
		parts := strings.Split(p, "/")
		if !strings.HasPrefix(rest, "//") || len(parts) != 8 || parts[0] != "projects" || parts[2] != "locations" ||
			parts[4] != "keyRings" || parts[6] != "cryptoKeys" {
			return KEKSpec{}, fmt.Errorf("vault: %s URI must be gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K", scheme)
		}
	case SchemeHCVault:
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" || !strings.Contains(u.Path, "/keys/") || u.User != nil {
			return KEKSpec{}, fmt.Errorf("vault: %s URI must be hcvault://HOST[:PORT]/MOUNT/keys/NAME (token from TUTELA_VAULT_TOKEN)", scheme)
		}
	default:
		return KEKSpec{}, fmt.Errorf("vault: unknown KEK URI scheme %q (want local:, pkcs11:, aws-kms://, gcp-kms:// or hcvault://)", scheme)
	}
	return KEKSpec{Scheme: scheme, KeyURI: uri}, nil
}

// KEKConfig says how to reach the KEK; config.Vault and the secrets beside it fill it. The
// vault package reads no environment variable of its own (the cloud SDKs still read theirs:
// AWS_*, GOOGLE_APPLICATION_CREDENTIALS, VAULT_NAMESPACE, …).
type KEKConfig struct {
	URI       string        // vault.kek_uri; empty = local:
	MasterKey tutela.Secret // local: the 32-byte master key (data-dir file or TUTELA_MASTER_KEY)
	// PKCS11Module is the path of the HSM's PKCS#11 library (vault.pkcs11_module), for example
	// /usr/lib/softhsm/libsofthsm2.so.
	PKCS11Module string
	PKCS11PIN    tutela.Secret // TUTELA_HSM_PIN
	// KMSEndpoint replaces the public endpoint of an aws-kms:// or gcp-kms:// KEK
	// (vault.kms_endpoint).
	KMSEndpoint string
	VaultToken  tutela.Secret // TUTELA_VAULT_TOKEN, for an hcvault:// KEK
	// VaultCACert is a PEM file of CAs trusted for Vault's HTTPS (vault.hcvault_ca_file); empty
	// means the system roots.
	VaultCACert string
}

// OpenKEK returns the KEK the configuration names. Close it (if it implements io.Closer) when
// done; the PKCS#11 KEK holds a session.
func OpenKEK(ctx context.Context, cfg KEKConfig) (KEK, error) {
	spec, err := ParseKEKURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	switch spec.Scheme {
	case SchemeLocal:
		return NewLocalKEK(cfg.MasterKey)
	case SchemePKCS11:
		if cfg.PKCS11Module == "" {
			return nil, errors.New("vault: a pkcs11 KEK needs vault.pkcs11_module (the HSM's PKCS#11 library path)")
		}
		return OpenPKCS11KEK(cfg.PKCS11Module, spec.Token, spec.Object, cfg.PKCS11PIN)
	case SchemeAWSKMS:
		return OpenAWSKMSKEK(ctx, spec.KeyURI, cfg.KMSEndpoint)
	case SchemeGCPKMS:
		return OpenGCPKMSKEK(ctx, spec.KeyURI, cfg.KMSEndpoint)
	case SchemeHCVault:
		return OpenHCVaultKEK(spec.KeyURI, cfg.VaultToken, cfg.VaultCACert)
	default:
		return nil, fmt.Errorf("vault: no KEK client for scheme %q", spec.Scheme)
	}
}

// localKEKInfo separates the KEK from every other key derived from the master key (the interim
// LocalSealer uses another label), so the master key itself never encrypts anything.
const localKEKInfo = "tutela vault local kek v1 aes-256-gcm"

// LocalKEK is the development KEK: AES-256-GCM (Tink's subtle.AESGCM, random 96-bit IV
// prepended) under a key derived with HKDF-SHA256 from the 32-byte master key.
type LocalKEK struct {
	aead *subtle.AESGCM
}

// NewLocalKEK derives the local KEK from the master key.
func NewLocalKEK(masterKey tutela.Secret) (*LocalKEK, error) {
	if n := len(masterKey.Bytes()); n != MasterKeySize {
		return nil, fmt.Errorf("vault: master key must be %d bytes, got %d", MasterKeySize, n)
	}
	k, err := hkdf.Key(sha256.New, masterKey.Bytes(), nil, localKEKInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: derive KEK: %w", err)
	}
	defer clear(k)
	a, err := subtle.NewAESGCM(k)
	if err != nil {
		return nil, fmt.Errorf("vault: KEK cipher: %w", err)
	}
	return &LocalKEK{aead: a}, nil
}

func (k *LocalKEK) Encrypt(pt, aad []byte) ([]byte, error) { return k.aead.Encrypt(pt, aad) }
func (k *LocalKEK) Decrypt(ct, aad []byte) ([]byte, error) { return k.aead.Decrypt(ct, aad) }
func (*LocalKEK) URI() string                              { return "local:" }
func (*LocalKEK) String() string                           { return "vault.LocalKEK[redacted]" }
func (*LocalKEK) GoString() string                         { return "vault.LocalKEK[redacted]" }

func pkcs11Escape(s string) string {
	return strings.NewReplacer("%", "%25", ";", "%3B", "=", "%3D", "/", "%2F", "?", "%3F").Replace(s)
}
