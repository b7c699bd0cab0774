package middleware

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP resolves the address of the client behind any reverse proxies we run. Trusted lists
// the networks of those proxies; it is empty when clients connect directly.
//
// X-Forwarded-For is only as trustworthy as whoever wrote each entry: a client can send any
// value, and each proxy appends the address it saw. So the header is consulted only when the TCP
// peer is one of our proxies, and read from the right (nearest hop first), skipping entries that
// are themselves our proxies; the first untrusted entry is the client, because the proxy that
// wrote it saw it connect. Everything to its left was supplied by the client and is ignored.
// This is the algorithm MDN and RFC 7239 §7.4 recommend for security decisions.
//
// Rate limiting, lockout and audit key on this address, so getting it wrong lets an attacker
// choose their identity; a misconfiguration errs towards the proxy's address (one shared bucket),
// never towards a client-chosen one.
type ClientIP struct {
	// Trusted holds the prefixes of our reverse proxies, in plain (not IPv4-mapped) form.
	Trusted []netip.Prefix
}

// Of returns the client address of r. Peers outside Trusted are the client, whatever headers
// they send. For a trusted peer the X-Forwarded-For walk described on ClientIP applies; if it
// meets a malformed entry it stops and returns the last trusted hop it reached, since nothing
// past an entry our own proxy could not have written can be believed. If every entry is trusted
// the leftmost one is returned (an internal client). IPv4-mapped IPv6 addresses are unmapped and
// zones dropped, so one client has one form. Of returns the zero Addr when RemoteAddr is not an
// IP address (a Unix socket, say).
func (c ClientIP) Of(r *http.Request) netip.Addr {
	peer := peerAddr(r)
	if !peer.IsValid() || !c.trusted(peer) {
		return peer
	}
	// Multiple X-Forwarded-For header lines are one list, in order (RFC 9110 §5.3).
	hops := r.Header.Values("X-Forwarded-For")
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			addr, ok := parseHop(strings.TrimSpace(entry))
			if !ok {
				return last
			}
			if !c.trusted(addr) {
				return addr
			}
			last = addr
		}
	}
	return last
}

func (c ClientIP) trusted(a netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses one X-Forwarded-For entry: an IP address, tolerating the "ip:port" and
// "[v6]:port" forms some proxies write.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	return netip.Addr{}, false
}

func normalize(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// peerAddr is the TCP peer's address from r.RemoteAddr, with no header consulted.
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
}

// Middleware stores Of(r) in the request context for ClientIPFrom.
func (c ClientIP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(next, w, r.WithContext(context.WithValue(r.Context(), clientIPKey, c.Of(r))))
	})
}

// ClientIPFrom returns the address stored by ClientIP.Middleware, or the zero Addr.
func ClientIPFrom(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientIPKey).(netip.Addr)
	return a
}

// clientAddr is the client address for r: the one ClientIP.Middleware resolved, or the TCP peer
// when that middleware is not installed. It never reads X-Forwarded-For itself.
func clientAddr(r *http.Request) netip.Addr {
	if a := ClientIPFrom(r.Context()); a.IsValid() {
		return a
	}
	return peerAddr(r)
}
