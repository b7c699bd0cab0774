package main

import (
	"fmt"
	"net"

	"tutela/httpapi"
)

// listenRedirect opens the HTTP → HTTPS redirect listener. Config validation has made sure TLS is
// on and auth.issuer is an https URL; the redirect target is built from it alone.
func (m *Main) listenRedirect() error {
	h, err := httpapi.RedirectHandler(m.Config.Auth.Issuer)
	if err != nil {
		return fmt.Errorf("http.redirect_addr: %w", err)
	}
	rln, err := net.Listen("tcp", m.Config.HTTP.RedirectAddr)
	if err != nil {
		return fmt.Errorf("http.redirect_addr: %w", err)
	}
	// Same timeouts as the API listener; headers are all it reads, so they stay small.
	m.redirectServer = m.newHTTPServer(h, 8<<10)
	m.redirectLn = rln
	return nil
}

// RedirectAddr is the bound HTTP → HTTPS redirect address, or "" when it is off.
func (m *Main) RedirectAddr() string {
	if m.redirectLn == nil {
		return ""
	}
	return m.redirectLn.Addr().String()
}
