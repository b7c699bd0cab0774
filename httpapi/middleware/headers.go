package middleware

import "net/http"

// SecurityHeaders sets the response headers that make a JSON API inert in a browser. They are
// set before the handler runs, so error responses carry them too, and a handler that really needs
// a different value (say, a cacheable public document) can still overwrite one.
//
//   - Content-Security-Policy "default-src 'none'; frame-ancestors 'none'": a response rendered
//     as a document by mistake can load, run and frame nothing (OWASP Secure Headers).
//   - X-Content-Type-Options nosniff: JSON is never sniffed into HTML or script.
//   - X-Frame-Options DENY: clickjacking defence for browsers without frame-ancestors.
//   - Referrer-Policy no-referrer: URLs never leak to third parties.
//   - Cross-Origin-Resource-Policy same-origin: other origins cannot embed responses (Spectre).
//   - Strict-Transport-Security, two years with subdomains (RFC 6797), only when the client
//     reached us over TLS — directly (r.TLS) or, when tls is true, via a TLS-terminating proxy
//     (config.ServedOverTLS). A development server on http://localhost sends none.
//   - Cache-Control no-store on every response. Almost everything this service returns is
//     per-tenant or carries tokens, and a rule of "no-store unless X" is one forgotten case away
//     from a shared cache serving one user's data to another. The few endpoints that could be
//     cached (health checks, metrics, the OpenAPI document) are cheap to regenerate, so the
//     uniform rule costs nothing worth having.
func SecurityHeaders(tls bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
			h.Set("Cache-Control", "no-store")
			if tls || r.TLS != nil {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}
