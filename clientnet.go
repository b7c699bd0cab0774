package tutela

import "net/netip"

// ClientNetwork is the network one client is taken to control, the unit that rate limits and
// sign-in throttles count: an IPv4 address on its own, an IPv6 address's /64. A host is usually
// given a whole /64 (RFC 6177, RFC 8981 temporary addresses), so keying IPv6 clients by their full
// address would let one host rotate through 2^64 identities and out-guess every per-source limit.
// An IPv4-mapped IPv6 address counts as the IPv4 address, and zones are ignored, so one client
// has one key. The zero Addr gives the zero Prefix (one shared key for "no address").
func ClientNetwork(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	switch {
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	case a.Is6():
		p, _ := a.Prefix(64)
		return p
	default:
		return netip.Prefix{}
	}
}
