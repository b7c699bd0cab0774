// Package egress guards outbound connections to addresses that tenants or customers give
// (an AI provider's base URL, a webhook endpoint): such a URL must not turn Tutela into a way
// to reach the deployment's internal services (SSRF, OWASP ASVS 5.0 1.3.6 / CWE-918). The
// check runs on the address actually dialled, after DNS resolution, so a name that resolves to
// an internal address, or re-resolves to one later (DNS rebinding), is refused too.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrNonPublic refuses a connection to a non-public address outside the allowed networks.
var ErrNonPublic = errors.New("egress: refused to connect to a non-public address")

// nonPublic are the IPv4 ranges besides what netip classifies that reach no public host:
// "this network", shared address space (RFC 6598, carrier-grade NAT, often internal
// platforms), IETF protocol assignments, benchmarking, and the reserved 240/4.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// IPv6 ranges that carry an IPv4 address: a translator or tunnel on the path delivers to the
// IPv4 address inside, so the address is as public as that one.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052: IPv4 in the last 32 bits
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215: local-use translation, any layout
	sixToFour  = netip.MustParsePrefix("2002::/16")      // RFC 3056: IPv4 in bits 16–47
	teredo     = netip.MustParsePrefix("2001::/32")      // RFC 4380: an obfuscated IPv4 server and client
	v4compat   = netip.MustParsePrefix("::/96")          // deprecated IPv4-compatible addresses
)

// Public reports whether a is a public unicast address. An IPv6 address embedding an IPv4 one
// (NAT64, 6to4, IPv4-compatible) is judged by the IPv4 address; Teredo and local-use NAT64,
// whose embedding cannot be read reliably, are not public.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a), v4compat.Contains(a):
			return Public(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(a):
			return Public(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case nat64Local.Contains(a), teredo.Contains(a):
			return false
		}
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control that refuses every non-public address outside allow (an error
// wrapping ErrNonPublic). It sees the address being dialled, after resolution.
func Control(allow []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return ErrNonPublic
		}
		a := ap.Addr().Unmap().WithZone("")
		if Public(a) {
			return nil
		}
		for _, p := range allow {
			if p.Contains(a) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s", ErrNonPublic, a)
	}
}
