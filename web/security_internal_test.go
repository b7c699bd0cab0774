package web

import "testing"

// A relying party's redirect host becomes a CSP source only when it cannot end the directive or
// add another: a host registered as "evil.example; script-src *" must not widen the policy.
func TestRedirectSource_OnlyPlainHosts(t *testing.T) {
	for host, want := range map[string]string{
		"app.example":                  "https://app.example",
		"app.example:8443":             "https://app.example:8443",
		"127.0.0.1:53117":              "http://127.0.0.1:53117",
		"[::1]:8080":                   "http://[::1]:8080",
		"localhost:3000":               "http://localhost:3000",
		"":                             "",
		"evil.example; script-src *":   "",
		"evil.example 'unsafe-inline'": "",
		"a.example,b.example":          "",
		"*.example":                    "",
		"app.example/path":             "",
	} {
		if got := redirectSource(host); got != want {
			t.Errorf("redirectSource(%q) = %q, want %q", host, got, want)
		}
	}
}
