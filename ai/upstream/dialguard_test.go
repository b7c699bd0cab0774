package upstream_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"tutela"
	"tutela/ai/aitest"
	"tutela/ai/upstream"
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
		if got := upstream.Public(netip.MustParseAddr(c.addr)); got != c.public {
			t.Errorf("Public(%s) = %v", c.addr, got)
		}
	}
}

// A provider on a non-public address is refused at dial time unless its network is allowed,
// and the refusal is not retried.
func TestDialGuard_RefusesNonPublicUnlessAllowed(t *testing.T) {
	p := aitest.New(t) // on 127.0.0.1
	tgt := target(p, key1)
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)

	_, err := upstream.New(upstream.Options{}).Do(context.Background(), tgt, "/chat/completions", body)
	if tutela.ErrorCode(err) != tutela.EUPSTREAM || !strings.Contains(tutela.ErrorMessage(err), "ai.private_networks") {
		t.Fatalf("err = %v", err)
	}
	if n := len(p.Requests()); n != 0 {
		t.Fatalf("the guarded client reached the provider %d times", n)
	}
	other := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if _, err := upstream.New(upstream.Options{PrivateNetworks: other}).Do(context.Background(), tgt, "/chat/completions", body); err == nil {
		t.Fatal("an allowed network let another through")
	}
	if _, err := upstream.New(upstream.Options{PrivateNetworks: loopback}).Do(context.Background(), tgt, "/chat/completions", body); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
}

// The guard judges the address a name resolves to, not the name: "localhost" is loopback.
func TestDialGuard_JudgesResolvedAddresses(t *testing.T) {
	p := aitest.New(t)
	tgt := target(p, key1)
	tgt.Provider.BaseURL = strings.Replace(p.URL, "127.0.0.1", "localhost", 1)
	_, err := upstream.New(upstream.Options{}).Do(context.Background(), tgt, "/chat/completions",
		[]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if tutela.ErrorCode(err) != tutela.EUPSTREAM || len(p.Requests()) != 0 {
		t.Fatalf("a name resolving to loopback got through: %v, %d requests", err, len(p.Requests()))
	}
}
