package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"tutela"
	"tutela/httpapi/middleware"
)

// RedirectHandler serves the plain-HTTP redirect listener (config http.redirect_addr) of a
// deployment that terminates TLS itself: every request is answered 308 Permanent Redirect to the
// same path and query on publicOrigin, the https scheme and host[:port] of auth.issuer. 308 keeps
// the method and body (RFC 9110 §15.4.9), so a client that posted to http:// re-sends to https://
// rather than silently turning a POST into a GET; the body itself is never read here.
//
// The target host comes from configuration only. A Host header (or absolute request-target)
// naming another host is refused with 400 rather than reflected into Location, which would make
// this listener an open redirect (CWE-601) for any name pointed at its address. GET /healthz is
// answered directly, so a liveness probe on the redirect port needs no TLS.
func RedirectHandler(publicOrigin string) (http.Handler, error) {
	u, err := url.Parse(publicOrigin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("redirect: %q is not an https origin", publicOrigin)
	}
	origin := "https://" + u.Host
	host := strings.ToLower(u.Hostname())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			middleware.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		if requestHost(r.Host) != host {
			// The body is left unread: closing the connection keeps a client from pipelining a
			// request after a body the server never consumed.
			w.Header().Set("Connection", "close")
			middleware.WriteError(w, r, tutela.Errorf(tutela.EINVALID,
				"this listener only redirects requests for %s to https", u.Hostname()))
			return
		}
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, "/") {
			path = "/" + path // "OPTIONS *" and CONNECT targets carry no path
		}
		target := origin + path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		h := w.Header()
		h.Set("Location", target)
		h.Set("Connection", "close")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusPermanentRedirect)
	}), nil
}

// requestHost is the lower-case host name of a Host header, without its port.
func requestHost(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(hostport, "[]"), "."))
}
