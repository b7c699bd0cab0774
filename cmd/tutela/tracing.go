package main

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"

	"tutela/tracing"
)

// tracingShutdownTimeout bounds the last export at exit: a collector that is down must not hold
// a stopping node (or a CLI command) for long.
const tracingShutdownTimeout = 5 * time.Second

// openTracing builds the tracer provider the configuration asks for (docs/tracing.md): the no-op
// provider unless tracing.otlp_endpoint is set. Spans still queued are flushed when Main closes.
func (m *Main) openTracing(ctx context.Context) (*tracing.Provider, error) {
	t := m.Config.Tracing
	if !t.Enabled() {
		return tracing.Off(), nil
	}
	headers, _ := m.Config.TracingHeaderMap() // Validate has checked them
	tp, err := tracing.New(ctx, tracing.Config{Endpoint: t.OTLPEndpoint, SampleRatio: t.SampleRatio, Headers: headers})
	if err != nil {
		return nil, err
	}
	// The SDK reports failed exports to OpenTelemetry's process-wide error handler, which
	// otherwise prints to stderr unformatted: send them to this node's JSON log instead.
	log := m.Logger
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("trace export failed", "err", err) }))
	m.closers = append(m.closers, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		return tp.Shutdown(sctx)
	})
	m.Logger.Info("tracing on: spans go to the OTLP collector", "sample_ratio", t.SampleRatio,
		"trust_traceparent", t.TrustTraceparent)
	return tp, nil
}
