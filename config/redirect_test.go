package config

import (
	"strings"
	"testing"
)

// The redirect listener is off by default and accepted only with TLS on and an https issuer,
// because the redirect target is built from auth.issuer, never from the request's Host header.
func TestValidate_RedirectListener(t *testing.T) {
	t.Parallel()
	tlsEnv := func(t *testing.T) []string {
		return []string{"TUTELA_TLS_CERT_FILE=" + writeFile(t, "cert.pem", "c"), "TUTELA_TLS_KEY_FILE=" + writeFile(t, "key.pem", "k"),
			"TUTELA_HTTP_ADDR=:443"}
	}
	issuer := "TUTELA_AUTH_ISSUER=https://id.example.org"
	tests := []struct {
		name    string
		tls     bool
		environ []string
		want    []string // nil means valid
	}{
		{"off by default", false, nil, nil},
		{"off explicitly", false, []string{"TUTELA_HTTP_REDIRECT_ADDR=off"}, nil},
		{"on with TLS and an https issuer", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80", issuer}, nil},
		{"without TLS", false, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80", issuer}, []string{"needs TLS on the API listener"}},
		{"without an issuer", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80"}, []string{"needs auth.issuer"}},
		{"with an http issuer", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80", "TUTELA_AUTH_ISSUER=http://id.example.org"},
			[]string{"needs auth.issuer"}},
		{"neither TLS nor issuer, both reported", false, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80"},
			[]string{"needs TLS on the API listener", "needs auth.issuer"}},
		{"same address as the API", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=:443", issuer}, []string{"must differ from http.addr"}},
		{"same address as metrics", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=127.0.0.1:9464", issuer}, []string{"must differ"}},
		{"not host:port", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=80", issuer}, []string{"not host:port"}},
		{"bad port", true, []string{"TUTELA_HTTP_REDIRECT_ADDR=:80000", issuer}, []string{"invalid port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.environ
			if tt.tls {
				env = append(tlsEnv(t), env...)
			}
			cfg := mustLoad(t, "", env...)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			list := problemList(t, err)
			if len(list) != len(tt.want) {
				t.Fatalf("problems = %q, want %d mentioning %q", list, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(list[i], "http.redirect_addr") || !strings.Contains(list[i], w) {
					t.Errorf("problem %d = %q, want http.redirect_addr ... %q", i, list[i], w)
				}
			}
		})
	}
}

func TestRedirectAddr_FromFile(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "http:\n  redirect_addr: \":8080\"\n")
	if cfg.HTTP.RedirectAddr != ":8080" || cfg.HTTP.RedirectOff() {
		t.Fatalf("RedirectAddr = %q, want :8080 and on", cfg.HTTP.RedirectAddr)
	}
	if !Default().HTTP.RedirectOff() {
		t.Fatal("the redirect listener must be off by default")
	}
}
