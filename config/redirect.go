package config

import (
	"net"
	"net/url"
	"strconv"
)

// RedirectOff reports that no HTTP → HTTPS redirect listener is wanted. "off" exists because an
// empty environment variable counts as unset.
func (h HTTP) RedirectOff() bool { return h.RedirectAddr == "" || h.RedirectAddr == "off" }

// validateRedirect admits the redirect listener only where it is safe and useful. It needs TLS
// on the API listener (redirecting to an https URL nobody serves, or behind a proxy that already
// redirects, helps no one) and auth.issuer set to an https URL: the Location header is built from
// that configured origin, never from the request's Host header, which an attacker chooses (an
// open redirect, CWE-601).
func (c *Config) validateRedirect(p *problems) {
	h := c.HTTP
	if h.RedirectOff() {
		return
	}
	_, port, err := net.SplitHostPort(h.RedirectAddr)
	if err != nil {
		p.add("http.redirect_addr: %q is not host:port (or off for no redirect listener)", h.RedirectAddr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add("http.redirect_addr: %q has an invalid port", h.RedirectAddr)
		return
	}
	if !c.TLS.enabled() {
		p.add("http.redirect_addr: needs TLS on the API listener (tls.cert_file and tls.key_file); " +
			"behind a TLS-terminating proxy let the proxy redirect")
	}
	if u, err := url.Parse(c.Auth.Issuer); c.Auth.Issuer == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		p.add("http.redirect_addr: needs auth.issuer set to the public https URL; redirects go to its host")
	}
	if port != "0" && (h.RedirectAddr == h.Addr || (!c.Metrics.Off() && h.RedirectAddr == c.Metrics.Addr)) {
		p.add("http.redirect_addr: must differ from http.addr and metrics.addr")
	}
}
