package upstream

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// errPrivateAddress refuses a connection to a non-public address that Options.PrivateNetworks
// does not allow.
var errPrivateAddress = errors.New("upstream: refused to connect to a non-public address")

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

// Public reports whether a is a public unicast address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
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

// dialGuard is a net.Dialer Control that refuses every non-public address outside allow. It runs
// on the address actually dialled (after resolution), so a hostname that resolves to an
// internal address, or re-resolves to one later (DNS rebinding), is refused too.
func dialGuard(allow []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return errPrivateAddress
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
		return fmt.Errorf("%w: %s", errPrivateAddress, a)
	}
}
