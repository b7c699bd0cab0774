package egress_test

import (
	"errors"
	"net/netip"
	"testing"

	"tutela/egress"
)

func TestPublic(t *testing.T) {
	for _, c := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true}, {"2606:4700:4700::1111", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"fd00::1", false}, {"100.64.0.1", false}, {"0.0.0.0", false},
		{"::", false}, {"224.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"198.18.0.1", false}, {"255.255.255.255", false},
		// IPv6 carrying IPv4: judged by the IPv4 address inside.
		{"64:ff9b::a00:1", false}, {"64:ff9b::808:808", true}, {"64:ff9b:1::a00:1", false}, {"2002:a00:1::1", false},
		{"2002:808:808::1", true}, {"2001:0:4136:e378::1", false}, {"::a00:1", false}, {"::7f00:1", false},
	} {
		if got := egress.Public(netip.MustParseAddr(c.addr)); got != c.public {
			t.Errorf("Public(%s) = %v", c.addr, got)
		}
	}
}

// Control refuses what is not public unless its network is allowed, and a malformed address
// outright.
func TestControl_RefusesNonPublicOutsideAllowed(t *testing.T) {
	none := egress.Control(nil)
	for _, a := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.1:443", "[fe80::1%eth0]:443", "169.254.169.254:80", "nonsense"} {
		if err := none("tcp", a, nil); !errors.Is(err, egress.ErrNonPublic) {
			t.Errorf("Control(nil)(%s) = %v, want ErrNonPublic", a, err)
		}
	}
	if err := none("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	lo := egress.Control([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	if err := lo("tcp", "127.0.0.1:443", nil); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
	if err := lo("tcp", "10.0.0.1:443", nil); !errors.Is(err, egress.ErrNonPublic) {
		t.Errorf("an allowed network let another through: %v", err)
	}
}
