package config

import (
	"strings"
	"testing"
)

func TestTracing_OffByDefault(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "")
	if cfg.Tracing.Enabled() || cfg.Tracing.TrustTraceparent || cfg.Tracing.SampleRatio != 1 {
		t.Fatalf("default tracing = %+v, want off, ratio 1, traceparent not trusted", cfg.Tracing)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTracing_RulesAndSecretHeaders(t *testing.T) {
	t.Parallel()
	const secret = "sk-collector-0123456789"
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    string // "" = valid
	}{
		{"https endpoint with headers", "tracing:\n  otlp_endpoint: https://otel.internal:4318/v1/traces\n",
			[]string{"TUTELA_TRACING_HEADERS=Authorization=Bearer " + secret + ",x-tenant=ops"}, ""},
		{"loopback plaintext collector", "tracing:\n  otlp_endpoint: http://127.0.0.1:4318/v1/traces\n", nil, ""},
		{"plaintext off loopback", "tracing:\n  otlp_endpoint: http://otel.internal:4318/v1/traces\n", nil,
			"tracing.otlp_endpoint: must be an https URL"},
		{"not a URL", "tracing:\n  otlp_endpoint: otel.internal:4318\n", nil, "tracing.otlp_endpoint"},
		{"ratio above 1", "tracing:\n  otlp_endpoint: https://otel.internal/v1/traces\n  sample_ratio: 1.5\n", nil,
			"tracing.sample_ratio"},
		{"ratio below 0", "", []string{"TUTELA_TRACING_SAMPLE_RATIO=-0.1"}, "tracing.sample_ratio"},
		{"header without value", "tracing:\n  otlp_endpoint: https://otel.internal/v1/traces\n",
			[]string{"TUTELA_TRACING_HEADERS=Authorization=Bearer " + secret + ",broken"}, "entry 2 is not name=value"},
		{"header injection", "tracing:\n  otlp_endpoint: https://otel.internal/v1/traces\n",
			[]string{"TUTELA_TRACING_HEADERS=X Bad=" + secret}, "entry 1 is not a valid HTTP header"},
		{"headers without endpoint", "", []string{"TUTELA_TRACING_HEADERS=Authorization=" + secret},
			"TUTELA_TRACING_HEADERS is set but tracing.otlp_endpoint is not"},
		{"headers in the file", "tracing:\n  otlp_endpoint: https://otel.internal/v1/traces\n  headers: Authorization=" + secret + "\n",
			nil, "secret in config file (tracing.headers)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, tt.yaml, tt.environ...)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				list := problemList(t, err)
				if len(list) != 1 || !strings.Contains(list[0], tt.want) {
					t.Fatalf("problems %q, want one containing %q", list, tt.want)
				}
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("problem repeats the header value: %v", err)
			}
			if s := cfg.String(); strings.Contains(s, secret) {
				t.Fatalf("effective configuration shows the header value:\n%s", s)
			}
		})
	}
	cfg := mustLoad(t, "tracing:\n  otlp_endpoint: https://otel.internal/v1/traces\n",
		"TUTELA_TRACING_HEADERS= authorization = Bearer "+secret+" ,x-scope-orgid=ops")
	h, msg := cfg.TracingHeaderMap()
	if msg != "" || len(h) != 2 || h["Authorization"].Reveal() != "Bearer "+secret || h["X-Scope-Orgid"].Reveal() != "ops" {
		t.Fatalf("headers = %v (%q)", h, msg)
	}
}
