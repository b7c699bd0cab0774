package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tink-crypto/tink-go-awskms/v3/integration/awskms"
)

// OpenAWSKMSKEK returns a KEK in AWS KMS. keyURI is aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID;
// the region comes from the ARN, credentials from the AWS SDK's default chain (AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, web identity, instance role). endpoint,
// if set, replaces the KMS endpoint (a VPC endpoint, or a test server).
func OpenAWSKMSKEK(ctx context.Context, keyURI, endpoint string) (*KMSKEK, error) {
	arn := strings.TrimPrefix(keyURI, SchemeAWSKMS+"://")
	parts := strings.Split(arn, ":")
	if len(parts) < 6 || parts[3] == "" {
		return nil, fmt.Errorf("vault: aws-kms KEK URI %s has no region", keyURI)
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(parts[3]))
	if err != nil {
		return nil, fmt.Errorf("vault: aws-kms config: %w", err)
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	kc, err := awskms.NewClientWithOptions(ctx, keyURI, awskms.WithKMS(client),
		awskms.WithEncryptionContextName(awskms.AssociatedData))
	if err != nil {
		return nil, fmt.Errorf("vault: aws-kms client: %w", err)
	}
	remote, err := kc.GetAEAD(keyURI)
	if err != nil {
		return nil, fmt.Errorf("vault: aws-kms key %s: %w", keyURI, err)
	}
	return newKMSKEK(remote, keyURI), nil
}
