package httpapi

import (
	"net/http"
	"slices"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/sqlstore"
	"tutela/vault"
)

// Calls that wait for approval where the tenant's policy for their action is on (issue 18):
// role grants that hand over accounts, subject exports, DSR erasures, key rotation, tenant
// promotion and AI budget increases. Each binds the parameters it will run with (gated.Params);
// the list is in docs/approvals.md, "Calls held for approval".

// paramTime is an expiry as approved parameters hold it: the instant in UTC, so one instant
// written with another offset is the same parameter, or nil for none.
func paramTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// keyRotationGate authorizes a key rotation (MANAGE on keys) and, where the policy for
// keys.rotate of the super-admin's own tenant is on, asks for or spends its approval: the
// keyset's tenant and purpose are what is approved. The vault rotates in its own transaction,
// after this one commits: an approval is spent before the rotation, so two calls with one
// approval rotate once, and a rotation that then fails (the keyset changed under it) needs a
// new approval. A keyset that does not exist is refused before anything is asked.
func (s *Server) keyRotationGate(r *http.Request, p *tutela.Principal, req keysRotateRequest) (*approvals.Request, error) {
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Manage, Resource: authz.ResKeys}); err != nil {
			return err
		}
		if err := s.keysetExists(r, req.TenantID, req.Purpose); err != nil {
			return err
		}
		target := req.TenantID
		if target == "" {
			target = "platform"
		}
		g := gated{Action: approvals.ActionKeyRotation, TargetType: "keyset", TargetID: target + "/" + req.Purpose,
			Params:         map[string]any{"tenant_id": req.TenantID, "purpose": req.Purpose},
			approvalFields: req.approvalFields}
		var err error
		held, err = s.gate(r, tx, p, p.TenantID, g)
		return err
	})
	return held, err
}

// keysetExists refuses a keyset the vault does not hold (ENOTFOUND, as RotateExisting), read
// through the vault's own pool: keysets are not read in a request's transaction.
func (s *Server) keysetExists(r *http.Request, tenantID, purpose string) error {
	views, err := s.d.Keys.Keys(r.Context())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(views, func(v vault.KeyView) bool { return v.TenantID == tenantID && v.Purpose == purpose }) {
		return tutela.Errorf(tutela.ENOTFOUND, "keyset not found")
	}
	return nil
}

// gateTenant is gate for a call on tenant tenantID. An approval request belongs to the tenant
// and names its requester among the tenant's accounts (the person behind them is what keeps
// requesters from deciding their own request), so a principal of another tenant (the platform
// super-admin acting in this one) cannot request one here: where the tenant's policy holds
// the call, it is refused with a clear 403 instead of running unapproved. Platform operations
// that belong to no tenant (key rotation) use the super-admin's own tenant instead.
func (s *Server) gateTenant(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, tenantID string, g gated) (*approvals.Request, error) {
	if p.TenantID != tenantID {
		pol, err := tx.Approvals(tenantID).Policy(r.Context(), g.Action)
		if err != nil {
			return nil, err
		}
		if pol.Enabled {
			return nil, tutela.Errorf(tutela.EFORBIDDEN,
				"this tenant's policy puts %s behind approval, which only the tenant's own accounts can request and run", g.Action)
		}
	}
	return s.gate(r, tx, p, tenantID, g)
}
