package httpapi

import (
	"net/http"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

var errTenantNotFound = tutela.Errorf(tutela.ENOTFOUND, "tenant not found")

// isPlatform reports whether p holds a platform-wide role (super_admin): only they act across
// tenants.
func isPlatform(p *tutela.Principal) bool { return p.HasRole(authz.RoleSuperAdmin) }

// pathTenant resolves {tenant} (ID or slug) as p may see it: another tenant than p's own is
// "not found" for everyone but the platform super-admin, exactly like a missing one.
func pathTenant(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal) (*tutela.Tenant, error) {
	return tenantRef(r, tx, p, r.PathValue("tenant"))
}

// tenantRef resolves ref, a tenant ID or slug, to a tenant p may name: any for the platform,
// only their own for anyone else. Absent and forbidden look alike (404), so a caller cannot
// probe for other tenants.
func tenantRef(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, ref string) (*tutela.Tenant, error) {
	var t *tutela.Tenant
	var err error
	if tutela.ValidID(ref) {
		t, err = tx.Tenant(r.Context(), ref)
	} else {
		t, err = tx.TenantBySlug(r.Context(), ref)
	}
	if tutela.ErrorCode(err) == tutela.EWRONGREGION && isPlatform(p) {
		// The platform may name any tenant, so learning it lives elsewhere tells them nothing
		// new; to anyone else a tenant of another region is not found, like every other tenant.
		return nil, err
	}
	if err != nil || (t.ID != p.TenantID && !isPlatform(p)) {
		return nil, errTenantNotFound
	}
	return t, nil
}

// decide loads p's policy and evaluates one request; a deny is a forbidden error that says why.
func (s *Server) decide(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, req authz.Request) (*authz.Policy, authz.Decision, error) {
	pol, err := principalPolicy(r, tx, p)
	if err != nil {
		return nil, authz.Decision{}, err
	}
	d, err := s.decideWith(r, p, pol, req)
	return pol, d, err
}

// decideWith is decide with p's policy already loaded (a handler deciding several requests).
func (s *Server) decideWith(r *http.Request, p *tutela.Principal, pol *authz.Policy, req authz.Request) (authz.Decision, error) {
	req.StepUpAt = p.StepUpAt
	d := authz.Decide(pol, req, s.d.Clock())
	if !d.Allow {
		noteDenial(r.Context(), denial{action: string(req.Action), resource: req.Resource,
			targetTenant: r.PathValue("tenant"), reason: d.Reason})
		return d, tutela.Errorf(tutela.EFORBIDDEN, "%s", d.Reason)
	}
	return d, s.requireStepUp(p, d)
}

// authorize resolves the path's tenant and checks that p may do action on resource there.
// Every tenant-scoped handler goes through it; deny by default.
func (s *Server) authorize(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, action authz.Action, resource string) (*tutela.Tenant, *authz.Policy, error) {
	t, err := pathTenant(r, tx, p)
	if err != nil {
		// Noted for a missing tenant too, with the same reason: the caller may read their own
		// tenant's audit log, and a denial noted only for tenants that exist would tell them
		// what the 404 hides.
		noteDenial(r.Context(), denial{action: string(action), resource: resource,
			targetTenant: r.PathValue("tenant"), reason: "the path names a tenant other than the principal's"})
		return nil, nil, err
	}
	pol, _, err := s.decide(r, tx, p, authz.Request{Action: action, Resource: resource})
	if err != nil {
		return nil, nil, err
	}
	return t, pol, nil
}

// canAdminister refuses changes to a user who holds privileges the actor does not: a programme
// administrator cannot disable, reset or re-role a super-admin, and nobody changes their own
// roles or grants.
func canAdminister(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, actor *authz.Policy, t *tutela.Tenant, targetID string, now time.Time) error {
	deny := func(err error) error {
		noteDenial(r.Context(), denial{resource: authz.ResUsers, targetTenant: t.ID, targetID: targetID,
			reason: tutela.ErrorMessage(err)})
		return err
	}
	if targetID == p.UserID {
		return deny(tutela.Errorf(tutela.EFORBIDDEN, "you cannot change your own access"))
	}
	target, err := tx.Policy(r.Context(), t.ID, targetID)
	if err != nil {
		return err
	}
	for _, g := range target.Grants {
		if g.Effect == authz.Allow && (g.Expires.IsZero() || now.Before(g.Expires)) && !actor.Holds(g.Permission, now) {
			return deny(tutela.Errorf(tutela.EFORBIDDEN, "the user holds %s, which you do not; ask someone who does", g.Permission))
		}
	}
	if target.Clearance.Rank() > actor.Clearance.Rank() {
		return deny(tutela.Errorf(tutela.EFORBIDDEN, "the user has %s clearance, above yours", target.Clearance))
	}
	return nil
}

// principalPolicy is the policy of a user or, for a client-credentials token, of the service
// account (exactly its permission set). Every authorization loads it here, so this is where a
// partner organisation's user or account limits the transaction to what the partner's active
// shares disclose (sqlstore's partner scope): no handler can read a subject for a partner
// without passing through it first.
func principalPolicy(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal) (*authz.Policy, error) {
	var pol *authz.Policy
	var err error
	if p.Kind == tutela.PrincipalServiceAccount {
		pol, err = tx.CachedServiceAccountPolicy(r.Context(), p.TenantID, p.UserID)
	} else {
		pol, err = tx.CachedPolicy(r.Context(), p.TenantID, p.UserID)
	}
	if err != nil {
		return nil, err
	}
	if pol.Partner != "" {
		tx.ActForPartner(pol.Partner)
	}
	return pol, nil
}
