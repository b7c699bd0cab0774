package tutela_test

import (
	"net/netip"
	"testing"

	"tutela"
)

func TestClientNetwork_IPv6BySlash64IPv4Whole(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ addr, want string }{
		{"198.51.100.9", "198.51.100.9/32"},
		{"::ffff:198.51.100.9", "198.51.100.9/32"}, // mapped IPv4 is IPv4
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"}, // same host, rotated
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},                  // the next /64 is another client
		{"fe80::1%eth0", "fe80::/64"},                             // the zone is not part of the key
		{"::1", "::/64"},
	} {
		if got := tutela.ClientNetwork(netip.MustParseAddr(c.addr)).String(); got != c.want {
			t.Errorf("ClientNetwork(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := tutela.ClientNetwork(netip.Addr{}); got.IsValid() {
		t.Errorf("ClientNetwork(zero) = %v, want the zero Prefix", got)
	}
}
