package httpapi

import (
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// TakeoverPolicyField is the tenant setting (PATCH /v1/tenants/{tenant}) that lets the tenant's
// service accounts perform account-takeover operations.
const TakeoverPolicyField = "service_accounts_may_take_over_accounts"

// allowTakeover lets p perform an account-takeover operation (authz.TakeoverOperations) on
// the user targetID: allowTakeoverOn with the user as the target.
func (s *Server) allowTakeover(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, t *tutela.Tenant, op authz.TakeoverOperation, targetID string) error {
	return s.allowTakeoverOn(r, tx, p, t, op, takeoverTarget{action: authz.Manage, resource: authz.ResUsers, auditType: "user", id: targetID})
}

// takeoverTarget is what a takeover operation changes: the action and resource a refusal is
// audited under (authz.denied), and the target of the authz.service_account_takeover event.
type takeoverTarget struct {
	action    authz.Action
	resource  string
	auditType string
	id        string
}

// allowTakeoverOn lets p perform an account-takeover operation. A person must have proved a
// second factor in the last five minutes: granting and resetting are MANAGE actions whose
// authorization already asked for it, but widening a role (roles UPDATE) is not, and a takeover
// must not depend on the route it takes. A service account proves no second factor and outlives
// its creator's password, so it may only where its tenant allows it explicitly, and then the
// operation is audited as a service account acting under that policy. A refusal is a 403
// recorded as authz.denied.
func (s *Server) allowTakeoverOn(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, t *tutela.Tenant, op authz.TakeoverOperation, target takeoverTarget) error {
	if p.Kind == tutela.PrincipalUser {
		return s.requireHumanStepUp(p)
	}
	allowed, err := tx.TenantAllowsServiceAccountTakeover(r.Context(), t.ID)
	if err != nil {
		return err
	}
	if !allowed {
		err := tutela.Errorf(tutela.EFORBIDDEN, "a service account may not %s: that hands over a person's account. "+
			"A person must do it with a fresh second factor, unless the tenant allows it (%s)", op.Describe(), TakeoverPolicyField)
		noteDenial(r.Context(), denial{action: string(target.action), resource: target.resource, targetTenant: t.ID, targetID: target.id,
			reason: tutela.ErrorMessage(err)})
		return err
	}
	return tx.Record(r.Context(), "authz.service_account_takeover", t.ID, target.auditType, target.id, "",
		map[string]any{"operation": string(op), "policy": TakeoverPolicyField})
}

// mayHoldTakeover refuses, while the tenant does not allow service accounts to take over
// accounts, to give a service account a permission that confers takeover: failing when the
// account is made, not only when it first tries.
func (s *Server) mayHoldTakeover(r *http.Request, tx *sqlstore.Tx, t *tutela.Tenant, perms []authz.Permission) error {
	perm, ok := authz.TakeoverPermission(perms)
	if !ok {
		return nil
	}
	allowed, err := tx.TenantAllowsServiceAccountTakeover(r.Context(), t.ID)
	if err != nil || allowed {
		return err
	}
	err = tutela.Errorf(tutela.EFORBIDDEN, "a service account may not hold %s: it can take over people's accounts "+
		"(password and MFA resets, granting roles), which this tenant does not allow (%s)", perm, TakeoverPolicyField)
	noteDenial(r.Context(), denial{action: string(authz.Create), resource: authz.ResServiceAccounts, targetTenant: t.ID,
		reason: tutela.ErrorMessage(err)})
	return err
}
