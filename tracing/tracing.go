// Package tracing builds Tutela's OpenTelemetry tracer provider: off (a no-op provider, no
// exporter, nothing leaves the process) unless tracing.otlp_endpoint is set, and then spans are
// batched and posted over OTLP/HTTP (protobuf) to that collector.
//
// What goes into a span is decided where spans start (httpapi/middleware/trace.go,
// sqlstore/db.go, vault/vault.go) and is deliberately poor: route patterns, operation names,
// dialects, KEK backend kinds and status codes; never a path with IDs, a query string, a header,
// a body, an SQL parameter or an error message. docs/tracing.md lists every attribute.
package tracing

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"tutela"
)

// Config is the tracing section of the configuration (config.Tracing and its secret headers).
type Config struct {
	// Endpoint is the collector's OTLP/HTTP traces URL (https://collector:4318/v1/traces); empty
	// turns tracing off.
	Endpoint string
	// SampleRatio is the share of new traces recorded, 0 to 1.
	SampleRatio float64
	// Headers are sent with every export (a collector's API key): secrets, from the environment.
	Headers map[string]tutela.Secret
	// Timeout bounds one export (default 10 s).
	Timeout time.Duration
}

// Provider is the tracer provider every component is given. When tracing is off it is the no-op
// provider: components then create no-op spans and nothing is recorded or sent.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when off
}

// Off is the no-op provider.
func Off() *Provider { return &Provider{TracerProvider: noop.NewTracerProvider()} }

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// Shutdown flushes the spans still queued and stops the exporter; a no-op when off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// New returns the provider the configuration asks for: Off without an endpoint, otherwise an
// OTLP/HTTP exporter behind a batching processor. The exporter does not dial until the first
// batch, so a collector that is down does not stop a start; failed exports are reported to the
// OpenTelemetry error handler and dropped (traces are diagnostics, never the record of what
// happened: that is the audit log).
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Endpoint == "" {
		return Off(), nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	headers := make(map[string]string, len(cfg.Headers))
	for k, v := range cfg.Headers {
		headers[k] = v.Reveal()
	}
	// The endpoint's scheme decides TLS (http:// is plaintext; config allows it on loopback
	// only). Explicit options override the OTEL_EXPORTER_OTLP_* variables the exporter would
	// otherwise read, so where spans go is what tutela.yaml says.
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	return WithExporter(exp, cfg.SampleRatio, false), nil
}

// WithExporter is a recording provider over exp, sampling ratio of new traces; a trace whose
// (trusted) parent was sampled is sampled too. sync exports each span as it ends (tests, with
// the SDK's in-memory exporter); otherwise spans are batched.
func WithExporter(exp sdktrace.SpanExporter, ratio float64, sync bool) *Provider {
	// Only one processor is made: a batch processor starts its worker as it is created.
	var proc sdktrace.SpanProcessor
	if sync {
		proc = sdktrace.NewSimpleSpanProcessor(exp)
	} else {
		proc = sdktrace.NewBatchSpanProcessor(exp)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "tutela"),
		attribute.String("service.version", tutela.Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	return &Provider{TracerProvider: tp, sdk: tp}
}

// IsOff reports whether tp records nothing (nil, the no-op provider, or an Off Provider), so a
// component can skip even the no-op span's context allocation.
func IsOff(tp trace.TracerProvider) bool {
	switch p := tp.(type) {
	case nil:
		return true
	case noop.TracerProvider:
		return true
	case *Provider:
		return !p.Enabled()
	}
	return false
}
