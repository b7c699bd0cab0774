package config

import "net/netip"

// AI configures the AI privacy gateway's connections to providers (docs/ai.md). Providers,
// models and keys are per tenant, in the database; this is only what the operator decides.
type AI struct {
	// PrivateNetworks are the non-public networks (CIDR) providers may be reached on: a
	// self-hosted vLLM on the LAN ("10.20.0.0/16"), an Ollama on the same host ("127.0.0.1/32").
	// Every other loopback, private, link-local or shared address is refused, so a tenant
	// administrator's base_url cannot reach the deployment's internal services. Default: none.
	PrivateNetworks []string `koanf:"private_networks"`
}

// Prefixes returns PrivateNetworks parsed (Validate has checked them).
func (a AI) Prefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(a.PrivateNetworks))
	for _, s := range a.PrivateNetworks {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func (c *Config) validateAI(p *problems) {
	for _, s := range c.AI.PrivateNetworks {
		pr, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.add("ai.private_networks: %q is not a CIDR prefix such as 10.20.0.0/16", s)
		case pr.Bits() == 0:
			p.add("ai.private_networks: %q allows every address; list the networks your models are on", s)
		}
	}
}
