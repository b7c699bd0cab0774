package httpapi

import (
	"net/http"
	"slices"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// keepLastAdmin refuses a change that would leave the tenant without an active programme
// administrator (removing their role, deleting or disabling them).
func (s *Server) keepLastAdmin(r *http.Request, tx *sqlstore.Tx, t *tutela.Tenant, userID string) error {
	last, err := tx.IsLastProgramAdmin(r.Context(), t.ID, userID)
	if err != nil {
		return err
	}
	if last {
		return tutela.Errorf(tutela.ECONFLICT, "this is the tenant's last programme administrator; appoint another first")
	}
	return nil
}

// mayConfer checks the actor holds everything a role confers: its permissions (at their
// classification limits) and its clearance. The platform role is conferred only by the platform.
func mayConfer(actor *authz.Policy, p *tutela.Principal, role *sqlstore.Role, now time.Time) error {
	if role.Key == authz.RoleSuperAdmin && !isPlatform(p) {
		return tutela.Errorf(tutela.EFORBIDDEN, "only a super-admin may grant super_admin")
	}
	for _, perm := range role.Permissions {
		if !actor.Holds(perm, now) {
			return tutela.Errorf(tutela.EFORBIDDEN, "you cannot grant %s: you do not hold it", perm)
		}
	}
	if role.Clearance.Rank() > actor.Clearance.Rank() {
		return tutela.Errorf(tutela.EFORBIDDEN, "you cannot grant %s clearance: yours is %s", role.Clearance, actor.Clearance)
	}
	// A field policy is a view of personal data: nobody hands out a clearer view than their own.
	for field, m := range role.FieldMasks {
		own, ok := actor.Masks[field]
		if !ok {
			own = authz.MaskFull
		}
		if m.Rank() < own.Rank() {
			return tutela.Errorf(tutela.EFORBIDDEN, "you cannot grant the %s view of %s: you see it %s", m, field, own)
		}
	}
	return nil
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var roles []*sqlstore.Role
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResRoles)
		if err != nil {
			return err
		}
		roles, err = tx.Roles(r.Context(), t.ID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"roles": roles})
}

type roleRequest struct {
	Key         string                `json:"key"`
	Name        string                `json:"name"`
	Description string                `json:"description"`
	Clearance   authz.Classification  `json:"clearance"`
	Permissions []authz.Permission    `json:"permissions"`
	FieldMasks  map[string]authz.Mask `json:"field_masks"`
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req roleRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	role := &sqlstore.Role{Key: req.Key, Name: req.Name, Description: req.Description, Clearance: req.Clearance,
		Permissions: req.Permissions, FieldMasks: req.FieldMasks}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Create, authz.ResRoles)
		if err != nil {
			return err
		}
		if role.Clearance.Valid() {
			if err := mayConfer(pol, p, role, s.d.Clock()); err != nil {
				return err
			}
		}
		return tx.CreateRole(r.Context(), t.ID, role)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, role)
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var role *sqlstore.Role
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResRoles)
		if err != nil {
			return err
		}
		role, err = tx.Role(r.Context(), t.ID, r.PathValue("role"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, role)
}

type roleUpdateRequest struct {
	roleRequest
	approvalFields
}

// updateRole replaces a role's definition. Widening a role so that it hands over accounts (or
// hands over more of them) is granting that to every holder: where the tenant's policy for
// role.grant is on, it waits for approval like a grant, with the whole new definition approved,
// so that granting a harmless role and widening it afterwards is no way around the policy.
func (s *Server) updateRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req roleUpdateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var role *sqlstore.Role
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Update, authz.ResRoles)
		if err != nil {
			return err
		}
		if role, err = tx.RoleForUpdate(r.Context(), t.ID, r.PathValue("role")); err != nil {
			return err
		}
		if req.Key != "" && req.Key != role.Key {
			return tutela.FieldErrorf("key", "key cannot be changed")
		}
		before, beforeClearance, beforeMasks := role.Permissions, role.Clearance, role.FieldMasks
		role.Name, role.Description, role.Clearance = req.Name, req.Description, req.Clearance
		role.Permissions, role.FieldMasks = req.Permissions, req.FieldMasks
		if role.Clearance.Valid() {
			if err := mayConfer(pol, p, role, s.d.Clock()); err != nil {
				return err
			}
		}
		// Widening a role hands the new permission to everyone who holds it (or will): a
		// takeover grant like granting the role, whoever holds it now, so that a concurrent
		// grant cannot slip between a check of its holders and this change.
		_, widened := authz.TakeoverWidening(before, role.Permissions)
		if !widened && role.Clearance.Rank() > beforeClearance.Rank() {
			// A holder may administer only users whose clearance is not above theirs
			// (canAdminister), so raising the clearance of a role that can take over accounts
			// hands its holders more accounts to take over.
			_, widened = authz.TakeoverPermission(role.Permissions)
		}
		// Showing a role's holders a field more clearly is handing them personal data, like a
		// grant: it needs a person with a fresh second factor.
		if authz.ViewWidened(beforeClearance, beforeMasks, role.Clearance, role.FieldMasks) {
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
		}
		if widened {
			target := takeoverTarget{action: authz.Update, resource: authz.ResRoles, auditType: "role", id: role.ID}
			if err := s.allowTakeoverOn(r, tx, p, t, authz.TakeoverGrant, target); err != nil {
				return err
			}
		}
		// A call naming an approval spends it even when it widens nothing (any more): run
		// twice, the second is refused as executed rather than passing as a no-op.
		if widened || req.ApprovalID != "" {
			g := gated{Action: approvals.ActionRoleGrant, TargetType: "role", TargetID: role.ID,
				Params: map[string]any{"role": role.Key, "name": role.Name, "description": role.Description,
					"clearance": string(role.Clearance), "permissions": nonNilPerms(role.Permissions), "field_masks": role.FieldMasks},
				approvalFields: req.approvalFields}
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		return tx.UpdateRole(r.Context(), t.ID, role)
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, role)
}

func nonNilPerms(ps []authz.Permission) []authz.Permission {
	if ps == nil {
		return []authz.Permission{}
	}
	return ps
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Delete, authz.ResRoles)
		if err != nil {
			return err
		}
		role, err := tx.Role(r.Context(), t.ID, r.PathValue("role"))
		if err != nil {
			return err
		}
		return tx.DeleteRole(r.Context(), t.ID, role)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type grantRoleRequest struct {
	ExpiresAt *time.Time `json:"expires_at"`
	approvalFields
}

// grantRole gives a user a role: (roles MANAGE), never to oneself, only roles whose every
// permission and clearance the actor holds, super_admin only from a super-admin. A role that
// hands over accounts (authz.TakeoverPermission) waits for approval where the tenant's policy
// for role.grant is on: the user, the role and the expiry are what is approved.
func (s *Server) grantRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req grantRoleRequest
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	var held *approvals.Request
	err := s.withUser(r, p, authz.Manage, authz.ResRoles, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
		role, err := tx.Role(r.Context(), t.ID, r.PathValue("role"))
		if err != nil {
			return err
		}
		if err := mayConfer(pol, p, role, s.d.Clock()); err != nil {
			return err
		}
		_, takeover := authz.TakeoverPermission(role.Permissions)
		if takeover {
			if err := s.allowTakeover(r, tx, p, t, authz.TakeoverGrant, u.ID); err != nil {
				return err
			}
		}
		if req.ExpiresAt != nil && !req.ExpiresAt.After(s.d.Clock()) {
			return tutela.FieldErrorf("expires_at", "expires_at must be in the future")
		}
		// A role that decides approvals is held like one that hands over accounts: granted
		// freely, it would let its granter make an approver of an account they control.
		approver, err := approverRole(r, tx, t.ID, role.Key)
		if err != nil {
			return err
		}
		if takeover || approver {
			// The role's ID and definition are bound, so a role deleted and made again under
			// the same key, or changed since, is not the role that was approved.
			g := gated{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: u.ID,
				Params: map[string]any{"user": u.ID, "role": role.Key, "role_id": role.ID, "clearance": string(role.Clearance),
					"permissions": nonNilPerms(role.Permissions), "expires_at": paramTime(req.ExpiresAt)},
				approvalFields: req.approvalFields}
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		return tx.Users(t.ID).Grant(r.Context(), u.ID, role.Key, p.UserID, req.ExpiresAt)
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revokeRole(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.withUser(r, p, authz.Manage, authz.ResRoles, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
		key := r.PathValue("role")
		if key == authz.RoleProgramAdmin {
			if err := s.keepLastAdmin(r, tx, t, u.ID); err != nil {
				return err
			}
		}
		if key == authz.RoleSuperAdmin && !isPlatform(p) {
			return tutela.Errorf(tutela.EFORBIDDEN, "only a super-admin may revoke super_admin")
		}
		return tx.Users(t.ID).RevokeRole(r.Context(), u.ID, key)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type permissionRequest struct {
	Resource  string               `json:"resource"`
	Action    authz.Action         `json:"action"`
	MaxClass  authz.Classification `json:"max_classification"`
	Effect    authz.Effect         `json:"effect"`
	ExpiresAt *time.Time           `json:"expires_at"`
	approvalFields
}

// grantPermission adds a per-user grant or explicit deny. A grant needs the actor to hold the
// permission; a deny only narrows access and needs (users MANAGE) like any change to a user. A
// grant that hands over accounts (authz.ConfersTakeover) waits for approval where the tenant's
// policy for role.grant is on: the user, the permission and the expiry are what is approved.
func (s *Server) grantPermission(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req permissionRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	up := &sqlstore.UserPermission{Permission: authz.Permission{Resource: req.Resource, Action: req.Action, MaxClass: req.MaxClass},
		Effect: req.Effect, GrantedBy: p.UserID, ExpiresAt: req.ExpiresAt}
	var held *approvals.Request
	err := s.withUser(r, p, authz.Manage, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
		if up.Effect == authz.Allow && up.Action.Valid() && !pol.Holds(up.Permission, s.d.Clock()) {
			return tutela.Errorf(tutela.EFORBIDDEN, "you cannot grant %s: you do not hold it", up.Permission)
		}
		takeover := up.Effect == authz.Allow && authz.ConfersTakeover(up.Permission)
		if takeover {
			if err := s.allowTakeover(r, tx, p, t, authz.TakeoverGrant, u.ID); err != nil {
				return err
			}
		}
		if up.ExpiresAt != nil && !up.ExpiresAt.After(s.d.Clock()) {
			return tutela.FieldErrorf("expires_at", "expires_at must be in the future")
		}
		if takeover {
			perm := map[string]any{"resource": up.Resource, "action": string(up.Action),
				"max_classification": string(up.MaxClass)}
			g := gated{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: u.ID,
				Params:         map[string]any{"user": u.ID, "permission": perm, "expires_at": paramTime(up.ExpiresAt)},
				approvalFields: req.approvalFields}
			var err error
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		return tx.Users(t.ID).GrantPermission(r.Context(), u.ID, up)
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, up)
}

// revokePermission removes a per-user grant or deny. Lifting an unexpired deny of a takeover
// permission gives the user back what the deny held off: a takeover grant like granting it.
func (s *Server) revokePermission(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.withUser(r, p, authz.Manage, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		ups, err := tx.Users(t.ID).Permissions(r.Context(), u.ID)
		if err != nil {
			return err
		}
		for _, up := range ups {
			if up.ID == r.PathValue("grant") && up.Effect == authz.Deny && authz.ConfersTakeover(up.Permission) &&
				(up.ExpiresAt == nil || s.d.Clock().Before(*up.ExpiresAt)) {
				if err := s.allowTakeover(r, tx, p, t, authz.TakeoverGrant, u.ID); err != nil {
					return err
				}
			}
		}
		return tx.Users(t.ID).RevokePermission(r.Context(), u.ID, r.PathValue("grant"))
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// userAccess shows a user's roles, per-user grants and denies, and effective clearance.
func (s *Server) userAccess(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var out map[string]any
	err := s.withUser(r, p, authz.Read, authz.ResRoles, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		pol, err := tx.Policy(r.Context(), t.ID, u.ID)
		if err != nil {
			return err
		}
		ups, err := tx.Users(t.ID).Permissions(r.Context(), u.ID)
		if err != nil {
			return err
		}
		if ups == nil {
			ups = []*sqlstore.UserPermission{}
		}
		out = map[string]any{"roles": nonNil(pol.Roles), "permissions": ups, "clearance": pol.Clearance}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// approverRole reports whether roleKey is an approver role of one of the tenant's enabled
// approval policies.
func approverRole(r *http.Request, tx *sqlstore.Tx, tenantID, roleKey string) (bool, error) {
	pols, err := tx.Approvals(tenantID).Policies(r.Context())
	if err != nil {
		return false, err
	}
	for _, p := range pols {
		if p.Enabled && slices.Contains(p.ApproverRoles, roleKey) {
			return true, nil
		}
	}
	return false, nil
}
