package vault

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// kekKind is what a span says about a KEK: its backend kind (the URI's scheme: local, pkcs11,
// aws-kms, gcp-kms, hcvault), never the key's ARN, label or host, which map an attacker the way
// to the key.
func kekKind(k KEK) string {
	spec, err := ParseKEKURI(k.URI())
	if err != nil {
		return "unknown"
	}
	return spec.Scheme
}

// startKEKSpan starts the span of one KEK call (name vault.kek.wrap or vault.kek.unwrap). It
// records the backend kind and, on failure, only that it failed: the error could carry a KMS's
// message about the key.
func (v *Vault) startKEKSpan(ctx context.Context, name string) trace.Span {
	_, span := v.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("tutela.kek.backend", v.kekKind)))
	return span
}

func endKEKSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "kek call failed")
	}
	span.End()
}
