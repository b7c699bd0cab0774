package vault

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/tink"

	"tutela"
)

// KMSKEK is a KEK held by a cloud KMS. It is Tink's KMS envelope AEAD: each Encrypt makes a
// fresh AES-256-GCM data key, encrypts the plaintext (a keyset) with it under the caller's
// associated data, and has the KMS wrap only that data key. The KMS never sees the keyset and
// Tutela never sees the KMS key; associated data is enforced locally by AES-GCM, so it binds
// even where the KMS ignores it (Vault transit without derived keys).
type KMSKEK struct {
	env tink.AEAD
	uri string
}

func newKMSKEK(remote tink.AEAD, uri string) *KMSKEK {
	return &KMSKEK{env: aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), remote), uri: uri}
}

func (k *KMSKEK) Encrypt(pt, aad []byte) ([]byte, error) { return k.env.Encrypt(pt, aad) }
func (k *KMSKEK) Decrypt(ct, aad []byte) ([]byte, error) { return k.env.Decrypt(ct, aad) }
func (k *KMSKEK) URI() string                            { return k.uri }
func (k *KMSKEK) String() string                         { return "vault.KMSKEK[" + k.uri + "]" }
func (k *KMSKEK) GoString() string                       { return k.String() }

// OpenHCVaultKEK returns a KEK in HashiCorp Vault's transit engine. keyURI is
// hcvault://HOST[:PORT]/MOUNT/keys/NAME; Vault is reached over HTTPS at HOST[:PORT] (VAULT_ADDR is
// ignored) with the token, which is never logged. caFile, if set, is a PEM bundle trusted instead
// of the system roots. The Vault client's own environment (VAULT_CACERT, VAULT_CLIENT_CERT,
// VAULT_NAMESPACE, VAULT_CLIENT_TIMEOUT, VAULT_MAX_RETRIES, …) applies. The transit key must not
// be a derived key: Tutela sends an empty "context".
func OpenHCVaultKEK(keyURI string, token tutela.Secret, caFile string) (*KMSKEK, error) {
	if token.IsZero() {
		return nil, errors.New("vault: an hcvault KEK needs a Vault token (TUTELA_VAULT_TOKEN or TUTELA_VAULT_TOKEN_FILE)")
	}
	u, err := url.Parse(keyURI)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vault: hcvault KEK URI %s has no host", keyURI)
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: hcvault client config: %w", cfg.Error)
	}
	// VAULT_SKIP_VERIFY would turn certificate checks off; the key-encryption key is not a
	// place for that (use vault.hcvault_ca_file for a private CA).
	if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok && t.TLSClientConfig != nil && t.TLSClientConfig.InsecureSkipVerify {
		return nil, errors.New("vault: VAULT_SKIP_VERIFY is set: refusing unverified TLS to HashiCorp Vault (set vault.hcvault_ca_file instead)")
	}
	// The URI names the server: VAULT_AGENT_ADDR would send the token and every wrap to
	// another address, possibly over plain HTTP.
	if cfg.AgentAddress != "" {
		return nil, errors.New("vault: VAULT_AGENT_ADDR is set: refusing to send the KEK's traffic anywhere but the hcvault:// host")
	}
	cfg.Address = "https://" + u.Host
	if caFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caFile}); err != nil {
			return nil, fmt.Errorf("vault: hcvault CA file: %w", err)
		}
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: hcvault client: %w", err)
	}
	client.SetToken(token.Reveal())
	kc, err := hcvault.NewClientWithAEADOptions(keyURI, client.Logical(), hcvault.WithLegacyContextParamater())
	if err != nil {
		return nil, fmt.Errorf("vault: hcvault client: %w", err)
	}
	remote, err := kc.GetAEAD(keyURI)
	if err != nil {
		return nil, fmt.Errorf("vault: hcvault key %s: %w", keyURI, err)
	}
	return newKMSKEK(remote, keyURI), nil
}
