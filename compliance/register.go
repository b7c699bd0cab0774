package compliance

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Matching derived recipients against a tenant's sub-processor register (GDPR Art. 28(2), 30(1)(d)).
// The register stores a legal entry (name, service, locations, …), not a host, so an entry
// declares the hosts it names: any host name, or URL, written in its name or service, such as
// "OpenAI (api.openai.com)". Matching is by host, case-insensitively; a register entry naming
// the recipient's registered domain ("openai.com") declares its hosts too.

// tenantSubprocessors is every recipient of t's data: the deployment's and the tenant's own.
func (b *builder) tenantSubprocessors(t Tenant) []Subprocessor {
	out := b.deploymentSubprocessors()
	for _, e := range t.AIProviders {
		out = append(out, Subprocessor{Name: e.Name, Service: "AI inference provider (AI gateway)", Host: e.Host,
			Source: "table ai_providers", Tenant: t.Slug})
	}
	for _, e := range t.Webhooks {
		out = append(out, Subprocessor{Name: e.Host, Service: "webhook receiver (event notifications)", Host: e.Host,
			Source: "table webhooks", Tenant: t.Slug})
	}
	return out
}

// declaredHosts are the hosts the register's entries name, normalised.
func declaredHosts(ds []DeclaredSubprocessor) []string {
	var out []string
	for _, d := range ds {
		for _, tok := range strings.FieldsFunc(d.Name+" "+d.Service, func(r rune) bool {
			return r <= ' ' || strings.ContainsRune(`,;()[]<>"'`, r)
		}) {
			if strings.Contains(tok, "://") {
				u, err := url.Parse(tok)
				if err != nil {
					continue
				}
				tok = u.Host
			}
			if h := normHost(tok); strings.Contains(h, ".") || strings.Contains(h, ":") {
				out = append(out, h)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// undeclared returns the hosts of recipients no register entry declares, sorted and without
// repeats, and how many of the recipients they are. A recipient whose host is not known is
// undeclared (named by its name): the register cannot be shown to cover it.
func undeclared(recipients []Subprocessor, declared []string) ([]string, int) {
	var out []string
	for _, r := range recipients {
		h := normHost(r.Host)
		if h == "" {
			out = append(out, r.Name)
			continue
		}
		if !slices.ContainsFunc(declared, func(d string) bool { return declares(d, h) }) {
			out = append(out, h)
		}
	}
	n := len(out)
	slices.Sort(out)
	return slices.Compact(out), n
}

// declares reports whether the declared host d covers host h: the same host, or a parent domain
// of h no higher than h's registrable domain (eTLD+1 by the Public Suffix List, private section
// included). So "openai.com" declares api.openai.com, while "com", or "amazonaws.com" for a
// customer's x.execute-api.eu-west-1.amazonaws.com, declares nothing beyond itself.
func declares(d, h string) bool {
	if d == h {
		return true
	}
	if net.ParseIP(h) != nil || !strings.HasSuffix(h, "."+d) {
		return false
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(h)
	return err == nil && (d == reg || strings.HasSuffix(d, "."+reg))
}

// normHost lower-cases a host and drops its port, IPv6 brackets and trailing dot.
func normHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if strings.ContainsAny(h, " /@?#") {
		return ""
	}
	return h
}
