package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"tutela/httpapi/middleware"
)

func TestClientIP_Of(t *testing.T) {
	t.Parallel()
	c := middleware.ClientIP{Trusted: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client", "198.51.100.9:5555", nil, "198.51.100.9"},
		{"spoofed XFF from untrusted peer ignored", "198.51.100.9:5555", []string{"1.2.3.4"}, "198.51.100.9"},
		{"spoofed XFF chain from untrusted peer ignored", "198.51.100.9:5555", []string{"10.0.0.5, 1.2.3.4"}, "198.51.100.9"},
		{"trusted proxy without XFF", "10.0.0.1:443", nil, "10.0.0.1"},
		{"trusted proxy", "10.0.0.1:443", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client-supplied prefix ignored", "10.0.0.1:443", []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"client claims to be a trusted proxy", "10.0.0.1:443", []string{"203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"multi-hop skips trusted hops", "10.0.0.1:443", []string{"6.6.6.6, 203.0.113.7, 10.0.0.3, 10.0.0.2"}, "203.0.113.7"},
		{"multi-hop over several header lines", "10.0.0.1:443", []string{"6.6.6.6, 203.0.113.7", "10.0.0.2"}, "203.0.113.7"},
		{"spaces and no spaces", "10.0.0.1:443", []string{"6.6.6.6,203.0.113.7 ,  10.0.0.2"}, "203.0.113.7"},
		{"all hops trusted", "10.0.0.1:443", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"malformed entry stops at last trusted hop", "10.0.0.1:443", []string{"203.0.113.7, not-an-ip, 10.0.0.2"}, "10.0.0.2"},
		{"malformed nearest entry", "10.0.0.1:443", []string{"203.0.113.7, garbage"}, "10.0.0.1"},
		{"empty entry is malformed", "10.0.0.1:443", []string{"203.0.113.7,"}, "10.0.0.1"},
		{"entry with port", "10.0.0.1:443", []string{"203.0.113.7:6000"}, "203.0.113.7"},
		{"IPv6 entry with port", "10.0.0.1:443", []string{"[2001:db8::1]:6000"}, "2001:db8::1"},
		{"IPv6 proxy and client", "[fd00::1]:443", []string{"2001:db8::1, fd00::2"}, "2001:db8::1"},
		{"IPv4-mapped peer unmapped and trusted", "[::ffff:10.0.0.1]:443", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped untrusted peer unmapped", "[::ffff:198.51.100.9]:443", nil, "198.51.100.9"},
		{"zone dropped", "[fe80::1%eth0]:443", nil, "fe80::1"},
		{"remote without port", "198.51.100.9", nil, "198.51.100.9"},
		{"unix socket", "@", []string{"1.2.3.4"}, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := c.Of(req).String(); got != tt.want {
				t.Errorf("Of = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClientIP_NoTrustedProxiesIgnoresXFF(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.0.0.1:443"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := (middleware.ClientIP{}).Of(req); got != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("Of = %s, want the peer", got)
	}
}

func TestClientIP_MiddlewareStoresAddr(t *testing.T) {
	t.Parallel()
	c := middleware.ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	var got netip.Addr
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = middleware.ClientIPFrom(r.Context())
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.0.0.1:443"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("ClientIPFrom = %s", got)
	}
	if a := middleware.ClientIPFrom(t.Context()); a.IsValid() {
		t.Errorf("ClientIPFrom outside middleware = %s, want zero", a)
	}
}
