package compliance

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Per-tenant controls. Each cites the tenant's own rows only: Build is given the tenants in the
// caller's scope and nothing else.

func tenantPath(t Tenant) string { return "/v1/tenants/" + t.Slug }

func (b *builder) mfaRoles(t Tenant) Control {
	c := Control{ID: CtlMFARoles, Tenant: t.Slug}
	a := b.cfg.Auth
	c.Evidence = append(c.Evidence,
		ev("second factor required of every user", yesNo(a.MFAAllUsers), "config auth.mfa_all_users"),
		ev("roles whose holders need a second factor", orText(strings.Join(a.MFARoles, ", "), "none"), "config auth.mfa_roles"),
		ev("tenant requires a second factor of everyone", yesNo(t.MFARequiredAll), "table tenants.mfa_required_all"))
	var ss []Status
	var without int
	for _, r := range t.Roles {
		required := a.MFAAllUsers || t.MFARequiredAll || slices.Contains(a.MFARoles, r.Key)
		c.Evidence = append(c.Evidence, ev("role "+r.Key,
			fmt.Sprintf("%d holder(s), second factor %s, %d without an active factor", r.Holders, requiredText(required), r.WithoutFactor),
			"tables user_roles, mfa_factors"))
		if r.Holders == 0 {
			continue
		}
		if !required {
			ss = append(ss, Gap)
			c.Close = append(c.Close, fmt.Sprintf("require a second factor for role %s: add it to auth.mfa_roles (TUTELA_AUTH_MFA_ROLES=%s), "+
				"or PATCH %s {\"mfa_required_all\": true}", r.Key, strings.Join(append(slices.Clone(a.MFARoles), r.Key), ","), tenantPath(t)))
			continue
		}
		without += r.WithoutFactor
	}
	if without > 0 {
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("%d holder(s) of roles that require a second factor have none: each is held to enrolment at "+
			"their next sign-in (POST /v1/auth/mfa/totp or a passkey); ask them to sign in, or review their access", without))
	}
	c.Status = worst(ss...)
	switch c.Status {
	case Met:
		c.Summary = "every role with holders requires a second factor, and every holder has one"
	case Partial:
		c.Summary = "every role with holders requires a second factor; some holders have not enrolled one yet"
	default:
		c.Summary = "holders of some roles may sign in with a password alone"
	}
	return c
}

func requiredText(b bool) string {
	if b {
		return "required"
	}
	return "not required"
}

func (b *builder) serviceAccounts(t Tenant) Control {
	c := Control{ID: CtlServiceAccountMFA, Tenant: t.Slug}
	c.Evidence = append(c.Evidence, ev("client secrets refused (private_key_jwt only)", yesNo(t.RequirePrivateKeyJWT), "table tenants.require_private_key_jwt"))
	if len(t.ServiceAccounts) == 0 {
		c.Status, c.Summary = NotApplicable, "the tenant has no active service account"
		return c
	}
	var withSecret []string
	for _, sa := range t.ServiceAccounts {
		how := []string{}
		if sa.Keys > 0 {
			how = append(how, fmt.Sprintf("private_key_jwt (%d key(s))", sa.Keys))
		}
		if sa.ActiveSecrets > 0 {
			how = append(how, fmt.Sprintf("client_secret (%d active)", sa.ActiveSecrets))
			withSecret = append(withSecret, sa.Name)
		}
		c.Evidence = append(c.Evidence, ev("service account "+sa.Name, orText(strings.Join(how, ", "), "no credential"),
			"tables service_accounts, service_account_secrets, service_account_keys"))
	}
	switch {
	case t.RequirePrivateKeyJWT:
		c.Status, c.Summary = Met, "service accounts authenticate with signed assertions (RFC 7523 private_key_jwt); secrets are refused"
	case len(withSecret) > 0:
		c.Status, c.Summary = Partial, "some service accounts authenticate with a shared client secret"
		c.Close = []string{fmt.Sprintf("register a public key for each (POST %s/service-accounts/{sa}/keys), revoke its secrets "+
			"(DELETE %s/service-accounts/{sa}/secrets/{secret}), then PATCH %s {\"require_private_key_jwt\": true}: %s",
			tenantPath(t), tenantPath(t), tenantPath(t), strings.Join(withSecret, ", "))}
	default:
		c.Status, c.Summary = Partial, "every service account uses keys today, but the tenant still accepts client secrets"
		c.Close = []string{fmt.Sprintf("PATCH %s {\"require_private_key_jwt\": true}", tenantPath(t))}
	}
	return c
}

func (b *builder) sessions(t Tenant) Control {
	c := Control{ID: CtlSessions, Tenant: t.Slug}
	idle, idleSrc := b.cfg.Auth.SessionIdle, "config auth.session_idle"
	if t.SessionIdle > 0 {
		idle, idleSrc = t.SessionIdle, "table tenants.session_idle_seconds"
	}
	abs, absSrc := b.cfg.Auth.SessionAbsolute, "config auth.session_absolute"
	if t.SessionAbsolute > 0 {
		abs, absSrc = t.SessionAbsolute, "table tenants.session_absolute_seconds"
	}
	c.Evidence = append(c.Evidence, ev("idle timeout", idle.String(), idleSrc), ev("absolute lifetime", abs.String(), absSrc),
		ev("access token lifetime", b.cfg.Auth.AccessTokenTTL.String(), "config auth.access_token_ttl"))
	var ss []Status
	if idle > MaxSessionIdle {
		ss = append(ss, Gap)
		c.Close = append(c.Close, fmt.Sprintf("lower the idle timeout to %s or less: PATCH %s {\"session_idle_seconds\": %d}, or auth.session_idle (TUTELA_AUTH_SESSION_IDLE)",
			MaxSessionIdle, tenantPath(t), int(MaxSessionIdle/time.Second)))
	}
	if abs > MaxSessionLife {
		ss = append(ss, Gap)
		c.Close = append(c.Close, fmt.Sprintf("lower the absolute lifetime to %s or less: PATCH %s {\"session_absolute_seconds\": %d}, or auth.session_absolute (TUTELA_AUTH_SESSION_ABSOLUTE)",
			MaxSessionLife, tenantPath(t), int(MaxSessionLife/time.Second)))
	}
	c.Status = worst(ss...)
	c.Summary = fmt.Sprintf("sessions end after %s idle and %s in all (limits: %s and %s, NIST SP 800-63B AAL2)", idle, abs, MaxSessionIdle, MaxSessionLife)
	return c
}

func (b *builder) accessReviews(t Tenant) Control {
	c := Control{ID: CtlAccessReviews, Tenant: t.Slug}
	r := t.Reviews
	c.Evidence = append(c.Evidence,
		ev("last completed review", ts(r.LastClosed), "table access_reviews (closed_at)"),
		ev("open reviews", fmt.Sprintf("%d (%d past their deadline)", r.Open, r.OpenOverdue), "table access_reviews"),
		ev("open findings (undecided items of open reviews)", fmt.Sprint(r.OpenFindings), "table access_review_items"),
		ev("access revoked by the last completed review", fmt.Sprint(r.Revoked), "table access_review_items"))
	var ss []Status
	switch {
	case r.LastClosed.IsZero():
		ss = append(ss, Gap)
		c.Close = append(c.Close, fmt.Sprintf("no access review completed: open one (POST %s/access-reviews), decide its items and close it", tenantPath(t)))
	case b.now.Sub(r.LastClosed) > MaxReviewAge:
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("the last review closed more than %s ago: open a new one (POST %s/access-reviews)", durDays(MaxReviewAge), tenantPath(t)))
	}
	if r.OpenOverdue > 0 {
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("decide and close the reviews past their deadline (POST %s/access-reviews/{review}/close)", tenantPath(t)))
	}
	c.Status = worst(ss...)
	c.Summary = "periodic reviews of every role and grant, with dormant accounts flagged and revocations applied"
	return c
}

func (b *builder) residency(t Tenant) Control {
	c := Control{ID: CtlResidency, Tenant: t.Slug}
	node := b.cfg.Residency.Region
	c.Evidence = append(c.Evidence, ev("tenant data region", t.Region, "table tenants.data_region"),
		ev("this node's region", orText(node, "unbound (serves every region)"), "config residency.region"))
	switch {
	case t.Region == "default":
		c.Status, c.Summary = Gap, "the tenant's data region names no jurisdiction"
		c.Close = []string{fmt.Sprintf("give the tenant a real region: PATCH %s {\"data_region\": \"eu\"} (a region code), see docs/residency.md", tenantPath(t))}
	case node != "" && node != t.Region:
		c.Status, c.Summary = Met, "the tenant lives in another region: this node refuses it (421 wrong_region)"
	case node == "":
		c.Status, c.Summary = Partial, "the region is declared, but this node is bound to no region, so nothing stops its data being served from elsewhere"
		c.Close = []string{fmt.Sprintf("bind each node to its region: residency.region (TUTELA_RESIDENCY_REGION=%s)", t.Region)}
	default:
		c.Status, c.Summary = Met, "the tenant's data region is declared and this node serves that region only"
	}
	return c
}

func (b *builder) dsr(t Tenant) Control {
	c := Control{ID: CtlDSR, Tenant: t.Slug}
	d := t.DSR
	kinds := make([]string, 0, len(d.ByKind))
	for k, n := range d.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	c.Evidence = append(c.Evidence,
		ev("requests", fmt.Sprintf("%d in all: %d open, %d completed, %d rejected", d.Total, d.Open, d.Completed, d.Rejected), "table dsr_requests"),
		ev("by kind", orText(strings.Join(kinds, ", "), "none"), "table dsr_requests"),
		ev("overdue (open past their due date)", fmt.Sprint(d.Overdue), "table dsr_requests (due_at plus extension)"),
		ev("default deadline policy", orText(b.cfg.DSR.DefaultJurisdiction, "GDPR"), "config dsr.default_jurisdiction"))
	if d.Overdue > 0 {
		c.Status = Gap
		c.Summary = fmt.Sprintf("%d request(s) past their deadline, the oldest due %s", d.Overdue, ts(d.OldestOverdueDue))
		c.Close = []string{fmt.Sprintf("complete, reject or (where the law allows) extend each overdue request: GET %s/dsr, then POST %s/dsr/{id}/approve, /reject or /extend",
			tenantPath(t), tenantPath(t))}
		return c
	}
	c.Status, c.Summary = Met, "no request is past its deadline"
	return c
}

func (b *builder) consent(t Tenant) Control {
	c := Control{ID: CtlConsent, Tenant: t.Slug}
	c.Evidence = append(c.Evidence, ev("subjects", fmt.Sprint(t.Subjects), "table subjects"))
	var onConsent int
	for _, p := range t.Purposes {
		v := "lawful basis " + p.LawfulBasis
		if p.LawfulBasis == "consent" {
			onConsent++
			v += fmt.Sprintf(": %d granted, %d withdrawn, %d with no decision recorded", p.Granted, p.Withdrawn, max(t.Subjects-p.Granted-p.Withdrawn, 0))
		}
		c.Evidence = append(c.Evidence, ev("purpose "+p.Name, v, "tables processing_purposes, consent_state"))
	}
	switch {
	case len(t.Purposes) == 0 && t.Subjects > 0:
		c.Status, c.Summary = Gap, "the tenant holds subjects' data but has declared no purpose of processing"
		c.Close = []string{fmt.Sprintf("declare each purpose with its lawful basis (and notice, for consent): PUT %s/purposes/{name}", tenantPath(t))}
	case onConsent == 0:
		c.Status, c.Summary = NotApplicable, "no purpose relies on consent"
	default:
		c.Status = Met
		c.Summary = fmt.Sprintf("%d purpose(s) rely on consent, each with a versioned notice; processing without a granted consent is refused", onConsent)
	}
	return c
}

func (b *builder) subprocessors(t Tenant) Control {
	c := Control{ID: CtlSubprocessors, Tenant: t.Slug}
	recipients := b.tenantSubprocessors(t)
	for _, d := range t.Declared {
		c.Evidence = append(c.Evidence, ev("declared "+d.Name, fmt.Sprintf("%s; %s; safeguard %s", d.Service, d.Locations, orText(d.Safeguard, "none stated")),
			"table subprocessors"))
	}
	for _, e := range t.AIProviders {
		c.Evidence = append(c.Evidence, ev("AI provider "+e.Name, e.Host, "table ai_providers"))
	}
	for _, e := range t.Webhooks {
		c.Evidence = append(c.Evidence, ev("webhook receiver", e.Host, "table webhooks"))
	}
	missing, n := undeclared(recipients, declaredHosts(t.Declared))
	c.Evidence = append(c.Evidence,
		ev("recipients derived from configuration and state", fmt.Sprint(len(recipients)), "this report's sub-processor list"),
		ev("recipients the register does not declare", orText(strings.Join(missing, ", "), "none"),
			"this report's sub-processor list against the hosts named in table subprocessors"))
	switch {
	case len(recipients) == 0 && len(t.Declared) == 0:
		c.Status, c.Summary = NotApplicable, "no data leaves Tutela for a third party"
		return c
	case n == 0:
		c.Status = Met
		c.Summary = fmt.Sprintf("each of the %d recipient(s) derived from configuration and state is declared in the register (%d entries)",
			len(recipients), len(t.Declared))
		return c
	case n == len(recipients):
		c.Status = Gap
	default:
		c.Status = Partial
	}
	c.Summary = fmt.Sprintf("%d of %d recipient(s) are not declared in the tenant's sub-processor register: %s",
		n, len(recipients), strings.Join(missing, ", "))
	c.Close = []string{fmt.Sprintf("declare each undeclared recipient, naming its host (or registered domain) in the entry's name or service, "+
		`e.g. "OpenAI (api.openai.com)": POST %s/subprocessors {name, service, locations, data_categories, transfer_safeguard, contract_ref}, `+
		"or PATCH %s/subprocessors/{id} to add the host to an existing entry", tenantPath(t), tenantPath(t))}
	return c
}
