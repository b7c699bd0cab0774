package middleware

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"tutela/tracing"
)

// Trace starts one server span per request, named by the route pattern that serves it
// ("GET /v1/tenants/{tenant}/users/{id}", or "unmatched"), so store and KEK spans started below
// hang off it. Its attributes are the method, the pattern and the status: never the path (IDs,
// e-mail addresses in some routes), the query string (OAuth codes, reset links), a header or the
// client address; nor the request ID, kept out like every other identifier (the span's start
// time and route find the access-log line).
//
// A W3C traceparent from the client is used only with trustIncoming (tracing.trust_traceparent):
// by default every request starts a new trace. An untrusted caller could otherwise choose trace
// IDs (to join or pollute traces of other systems sharing the collector) and force sampling of
// every request it sends (the sampler follows a sampled parent), costing the collector; a
// gateway that already traces can be trusted explicitly.
//
// With tracing off (tp records nothing) Trace returns next itself: not even a no-op span is
// made.
func Trace(tp trace.TracerProvider, trustIncoming bool, routeOf func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if tracing.IsOff(tp) {
			return next
		}
		tracer := tp.Tracer("tutela/httpapi")
		prop := propagation.TraceContext{}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
			if trustIncoming {
				ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
			} else {
				opts = append(opts, trace.WithNewRoot())
			}
			route := routeOf(r)
			name := route
			if name == "" {
				name = "unmatched"
			}
			ctx, span := tracer.Start(ctx, name, opts...)
			defer span.End()
			rec := Recorder(w)
			serve(next, rec, r.WithContext(ctx))
			if !span.IsRecording() {
				return
			}
			span.SetAttributes(attribute.String("http.request.method", r.Method),
				attribute.String("http.route", name), attribute.Int("http.response.status_code", rec.Status()))
			if rec.Status() >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.Status()))
			}
		})
	}
}
