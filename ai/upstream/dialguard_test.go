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
