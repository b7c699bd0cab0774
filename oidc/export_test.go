package oidc

// ExpireTenantCache ages every cached tenant row past tenantTTL, as a second does.
func ExpireTenantCache(p *Provider) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for slug, c := range p.active {
		c.at = c.at.Add(-tenantTTL)
		p.active[slug] = c
	}
}
