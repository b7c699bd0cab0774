package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// csrfCookie holds the browser's random CSRF secret. The form token is an HMAC of it (and of
// the tenant), so the token differs from the cookie: an attacker who can plant a cookie (a
// sibling subdomain, were the name not __Host-) still cannot compute the token that matches it
// without the server's key (OWASP CSRF cheat sheet: signed double-submit cookie).
const csrfCookie = "__Host-tutela_csrf"

// csrfField is the form field every POST form carries ({{template "csrf" .}}).
const csrfField = "csrf"

// maxFormBytes bounds a form body: the largest is a passkey response, a few kilobytes.
const maxFormBytes = 64 << 10

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mac is a keyed digest of the parts (each NUL-separated, after a purpose label), base64url.
func (p *Pages) mac(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte("tutela web " + purpose + " v1"))
	for _, s := range parts {
		m.Write([]byte{0})
		m.Write([]byte(s))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken is the form token for the browser secret in tenant's pages.
func (p *Pages) csrfToken(secret, tenantID string) string {
	return p.mac("csrf", tenantID, secret)
}

// browserSecret returns the browser's CSRF secret, setting a new one when it has none (or a
// malformed one).
func (p *Pages) browserSecret(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	s := randomToken(32)
	// SameSite=Strict: the secret never rides along a request another site starts.
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: s, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return s
}

// checkCSRF verifies a POST: the browser must not say it comes from another origin (Fetch
// Metadata, then Origin), and the form token must be the HMAC of the browser's cookie, compared
// in constant time. It runs before the handler reads anything else of the form, so a refused
// request changes nothing.
func (p *Pages) checkCSRF(r *http.Request, tenantID string) bool {
	if p.crossOrigin(r) {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 43 {
		return false
	}
	got := r.PostForm.Get(csrfField)
	want := p.csrfToken(c.Value, tenantID)
	return hmac.Equal([]byte(got), []byte(want))
}

// crossOrigin reports whether the browser marks the request as coming from anywhere but this
// origin: Sec-Fetch-Site other than same-origin or none (a sibling subdomain is same-site, and
// still refused), or an Origin header (browsers send it on every POST) naming another origin.
func (p *Pages) crossOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	return !strings.EqualFold(origin, p.origin(r))
}

// origin is this server's origin as browsers write it: the public URL's, else the request's.
func (p *Pages) origin(r *http.Request) string {
	if u, err := url.Parse(p.d.PublicURL); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	scheme := "http"
	if p.d.TLS || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// hostSourceRE is what a host may look like to become a CSP source: no spaces, quotes,
// semicolons or commas that would end the directive or add another.
var hostSourceRE = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// redirectSource is the CSP source of a relying party's redirect host, for form-action: browsers
// check the redirect after a form post against it (CSP 3 §6.4.1), and the pages answer a
// completed sign-in with a redirect to the client. Loopback hosts are native apps (RFC 8252
// §7.3, plain http); every other client is reached over https.
func redirectSource(host string) string {
	if !hostSourceRE.MatchString(host) {
		return ""
	}
	h := host
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	switch strings.Trim(h, "[]") {
	case "127.0.0.1", "::1", "localhost":
		return "http://" + host
	}
	return "https://" + host
}

// setHeaders sets the headers of every page: a strict CSP with this response's nonce (scripts
// and inline styles run only with it; 'strict-dynamic' lets the nonce'd script load nothing
// else by itself), no caching, no referrer, no framing.
func (p *Pages) setHeaders(w http.ResponseWriter, r *http.Request, nonce string, formAction []string) {
	h := w.Header()
	fa := "'self'"
	for _, s := range formAction {
		if s != "" {
			fa += " " + s
		}
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"' 'strict-dynamic'; style-src 'self' 'nonce-"+
		nonce+"'; img-src 'self' https: data:; connect-src 'self'; form-action "+fa+"; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if p.d.TLS || r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}
