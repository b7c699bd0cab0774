package config

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"tutela"
)

// Tracing is OpenTelemetry tracing (docs/tracing.md): off unless OTLPEndpoint is set.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP traces URL, such as
	// https://otel-collector:4318/v1/traces; http only to a loopback collector (a sidecar).
	OTLPEndpoint string `koanf:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded and sent (0 to 1; default 1).
	SampleRatio float64 `koanf:"sample_ratio"`
	// TrustTraceparent continues the W3C trace a request's traceparent names (a gateway that
	// traces); off, every request starts a new trace, so a client can neither choose trace IDs
	// nor force sampling.
	TrustTraceparent bool `koanf:"trust_traceparent"`
}

// Enabled reports whether spans are exported.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// validateTracing checks the endpoint, the ratio and the syntax of TUTELA_TRACING_HEADERS (whose
// values, a collector's credentials, are never repeated in a problem).
func (c *Config) validateTracing(p *problems) {
	t := c.Tracing
	if t.OTLPEndpoint != "" && !httpsURL(t.OTLPEndpoint) {
		p.add("tracing.otlp_endpoint: must be an https URL (http only on loopback), such as https://otel-collector:4318/v1/traces")
	}
	if u, err := url.Parse(t.OTLPEndpoint); err == nil && u.User != nil {
		p.add("tracing.otlp_endpoint: must not carry credentials: set them as TUTELA_TRACING_HEADERS")
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 {
		p.add("tracing.sample_ratio: must be between 0 and 1")
	}
	if _, err := c.TracingHeaderMap(); err != "" {
		p.add("TUTELA_TRACING_HEADERS: %s", err)
	}
	if !c.TracingHeaders.IsZero() && t.OTLPEndpoint == "" {
		p.add("TUTELA_TRACING_HEADERS is set but tracing.otlp_endpoint is not: set both, or neither")
	}
}

// TracingHeaderMap parses TUTELA_TRACING_HEADERS, "name=value" pairs separated by commas (the
// OTEL_EXPORTER_OTLP_HEADERS syntax, values not URL-decoded), into header values kept secret.
// The message of a bad entry names its position only.
func (c *Config) TracingHeaderMap() (map[string]tutela.Secret, string) {
	if c.TracingHeaders.IsZero() {
		return nil, ""
	}
	out := map[string]tutela.Secret{}
	for i, pair := range strings.Split(c.TracingHeaders.Reveal(), ",") {
		name, value, ok := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.TrimSpace(value) == "" {
			return nil, "entry " + strconv.Itoa(i+1) + " is not name=value (entries are separated by commas)"
		}
		if !validHeaderName(name) || strings.ContainsAny(value, "\r\n\x00") {
			return nil, "entry " + strconv.Itoa(i+1) + " is not a valid HTTP header"
		}
		out[http.CanonicalHeaderKey(name)] = tutela.NewSecret(strings.TrimSpace(value))
	}
	return out, ""
}

func validHeaderName(s string) bool {
	for _, r := range s {
		if r > 127 || !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(s) != ""
}
