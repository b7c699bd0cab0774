package vault

import (
	"context"
	"fmt"

	"github.com/tink-crypto/tink-go-gcpkms/v2/integration/gcpkms"
	"google.golang.org/api/option"
)

// OpenGCPKMSKEK returns a KEK in Google Cloud KMS. keyURI is
// gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K (a symmetric ENCRYPT_DECRYPT key);
// credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// user credentials, the metadata server of GCE/GKE/Cloud Run). The client speaks Cloud KMS's REST
// API and checks the CRC32C integrity fields of every answer. endpoint, if set, replaces
// https://cloudkms.googleapis.com/ (Private Service Connect, or a test server).
func OpenGCPKMSKEK(ctx context.Context, keyURI, endpoint string) (*KMSKEK, error) {
	var opts []option.ClientOption
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	kc, err := gcpkms.NewClient(ctx, SchemeGCPKMS+"://", gcpkms.WithTransport(gcpkms.TransportREST),
		gcpkms.WithGoogleAPIClientOptions(opts...))
	if err != nil {
		return nil, fmt.Errorf("vault: gcp-kms client: %w", err)
	}
	remote, err := kc.GetAEAD(keyURI)
	if err != nil {
		return nil, fmt.Errorf("vault: gcp-kms key %s: %w", keyURI, err)
	}
	return newKMSKEK(remote, keyURI), nil
}
