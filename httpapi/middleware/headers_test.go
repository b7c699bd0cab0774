package middleware_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	const hsts = "max-age=63072000; includeSubDomains"
	tests := []struct {
		name     string
		tls      bool // middleware configured for a TLS-terminating proxy
		reqTLS   bool // request arrived over TLS directly
		path     string
		handler  http.Handler
		wantHSTS string
	}{
		{"plain http", false, false, "/v1/users", okHandler, ""},
		{"behind tls proxy", true, false, "/v1/users", okHandler, hsts},
		{"direct tls", false, true, "/v1/users", okHandler, hsts},
		{"health check", false, false, "/healthz", okHandler, ""},
		{"error response", true, false, "/v1/users/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no"))
		}), hsts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.reqTLS {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			middleware.SecurityHeaders(tt.tls)(tt.handler).ServeHTTP(rec, req)

			want := map[string]string{
				"Content-Security-Policy":      "default-src 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
				"X-Content-Type-Options":       "nosniff",
				"X-Frame-Options":              "DENY",
				"Referrer-Policy":              "no-referrer",
				"Cross-Origin-Resource-Policy": "same-origin",
				"Cache-Control":                "no-store",
				"Strict-Transport-Security":    tt.wantHSTS,
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestSecurityHeaders_HandlerCanOverride(t *testing.T) {
	t.Parallel()
	h := middleware.SecurityHeaders(false)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if got := rec.Header().Get("Cache-Control"); got != "public, max-age=60" {
		t.Errorf("Cache-Control = %q", got)
	}
}
