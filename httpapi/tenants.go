package httpapi

import (
	"encoding/json"
	"net/http"
	"time"
	"tutela/password"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// requireSuperAdmin guards platform-wide operations (creating and listing tenants, changing a
// tenant's status or region): only the platform role may act across tenants.
func requireSuperAdmin(p *tutela.Principal) error {
	if !isPlatform(p) {
		return tutela.Errorf(tutela.EFORBIDDEN, "only the platform super-admin may do this")
	}
	return nil
}

type tenantCreateRequest struct {
	Slug       string `json:"slug"`
	Name       string `json:"name"`
	DataRegion string `json:"data_region"`
	Mode       string `json:"mode"` // "" = provisioning
}

type tenantRequest struct {
	Slug                   *string `json:"slug"`
	Name                   *string `json:"name"`
	DataRegion             *string `json:"data_region"`
	Status                 *string `json:"status"`
	SessionIdleSeconds     *int    `json:"session_idle_seconds"`
	SessionAbsoluteSeconds *int    `json:"session_absolute_seconds"`
	MFARequiredAll         *bool   `json:"mfa_required_all"`
	RequirePrivateKeyJWT   *bool   `json:"require_private_key_jwt"`
	// ServiceAccountsMayTakeOver lets the tenant's service accounts perform account-takeover
	// operations (authz.TakeoverOperations); off by default.
	ServiceAccountsMayTakeOver *bool `json:"service_accounts_may_take_over_accounts"`
	// PasswordComposition: optional per-tenant composition rules (minimum counts); null clears.
	PasswordComposition *compositionRequest `json:"password_composition"`
	// Branding of the hosted pages (validated by sqlstore.Branding.Validate; never markup).
	Branding *sqlstore.Branding `json:"branding"`
	// Mode "provisioning" promotes a tenant in simulation (promoteTenant); it is changed on its
	// own, and never back to "simulation".
	Mode *string `json:"mode"`
	approvalFields
}

type compositionRequest struct {
	Upper  int `json:"upper"`
	Lower  int `json:"lower"`
	Digit  int `json:"digit"`
	Symbol int `json:"symbol"`
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := requireSuperAdmin(p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var req tenantCreateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	t := &tutela.Tenant{Slug: req.Slug, Name: req.Name, Region: req.DataRegion, Mode: tutela.TenantMode(req.Mode)}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error { return tx.CreateTenant(r.Context(), t) })
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, t)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := requireSuperAdmin(p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*tutela.Tenant
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		list, err = tx.ListTenants(r.Context(), cursor, limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	writePage(w, "tenants", list, limit, func(t *tutela.Tenant) string { return t.ID })
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var t *tutela.Tenant
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		t, _, err = s.authorize(r, tx, p, authz.Read, authz.ResTenants)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, t)
}

// securityPolicy reports whether the request changes the tenant's sign-in policy: MFA for all,
// private_key_jwt only, password composition, session lifetimes, service accounts taking over
// accounts.
func (req tenantRequest) securityPolicy() bool {
	return req.MFARequiredAll != nil || req.RequirePrivateKeyJWT != nil || req.PasswordComposition != nil ||
		req.SessionIdleSeconds != nil || req.SessionAbsoluteSeconds != nil || req.ServiceAccountsMayTakeOver != nil
}

// patchTenant: a programme administrator may change their tenant's name (tenants UPDATE) and,
// with a fresh step-up, its sign-in policy (MFA for all, private_key_jwt only, password
// composition, session lifetimes); status and data region are platform decisions.
func (s *Server) patchTenant(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req tenantRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Slug != nil {
		middleware.WriteError(w, r, tutela.FieldErrorf("slug", "slug cannot be changed"))
		return
	}
	if (req.Status != nil || req.DataRegion != nil) && !isPlatform(p) {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EFORBIDDEN, "only the platform super-admin may change a tenant's status or data region"))
		return
	}
	if req.Mode != nil && !tutela.TenantMode(*req.Mode).Valid() {
		middleware.WriteError(w, r, tutela.FieldErrorf("mode", "mode must be simulation or provisioning"))
		return
	}
	var t *tutela.Tenant
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) (err error) {
		if t, _, err = s.authorize(r, tx, p, authz.Update, authz.ResTenants); err != nil {
			return err
		}
		// A call naming an approval is a promotion even on a tenant already promoted: run
		// twice, the second is refused as executed rather than passing as a no-op.
		if req.promotes(t) {
			held, err = s.promoteTenant(r, tx, p, t, req)
			return err
		}
		if req.securityPolicy() {
			// Weakening sign-in policy is as dangerous as any MANAGE action: it needs a
			// second factor proved in the last five minutes.
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
		}
		if req.Name != nil {
			t.Name = *req.Name
		}
		if req.DataRegion != nil {
			t.Region = *req.DataRegion
		}
		if req.Status != nil {
			t.Status = tutela.Status(*req.Status)
		}
		if err := tx.UpdateTenant(r.Context(), t); err != nil {
			return err
		}
		if c := req.PasswordComposition; c != nil {
			for _, n := range []int{c.Upper, c.Lower, c.Digit, c.Symbol} {
				if n < 0 || n > 16 {
					return tutela.FieldErrorf("password_composition", "each minimum must be 0-16")
				}
			}
			rules := ""
			if *c != (compositionRequest{}) {
				b, _ := json.Marshal(password.Composition{Upper: c.Upper, Lower: c.Lower, Digit: c.Digit, Symbol: c.Symbol})
				rules = string(b)
			}
			if err := tx.SetTenantPasswordComposition(r.Context(), t.ID, rules); err != nil {
				return err
			}
		}
		if req.RequirePrivateKeyJWT != nil {
			if err := tx.SetTenantRequiresPrivateKeyJWT(r.Context(), t.ID, *req.RequirePrivateKeyJWT); err != nil {
				return err
			}
		}
		if req.MFARequiredAll != nil {
			if err := tx.SetTenantRequiresMFA(r.Context(), t.ID, *req.MFARequiredAll); err != nil {
				return err
			}
		}
		if req.Branding != nil {
			if err := tx.SetTenantBranding(r.Context(), t.ID, *req.Branding); err != nil {
				return err
			}
		}
		if req.ServiceAccountsMayTakeOver != nil {
			if err := tx.SetTenantAllowsServiceAccountTakeover(r.Context(), t.ID, *req.ServiceAccountsMayTakeOver); err != nil {
				return err
			}
		}
		if req.SessionIdleSeconds != nil || req.SessionAbsoluteSeconds != nil {
			pol, err := tx.TenantSessionPolicy(r.Context(), t.ID)
			if err != nil {
				return err
			}
			if v := req.SessionIdleSeconds; v != nil {
				if *v < 0 || *v > 86400 {
					return tutela.FieldErrorf("session_idle_seconds", "session_idle_seconds must be 0-86400 (0 = default)")
				}
				pol.Idle = secondsDur(*v)
			}
			if v := req.SessionAbsoluteSeconds; v != nil {
				if *v < 0 || *v > 30*86400 {
					return tutela.FieldErrorf("session_absolute_seconds", "session_absolute_seconds must be 0-2592000 (0 = default)")
				}
				pol.Absolute = secondsDur(*v)
			}
			// The two must agree with each other (and with the defaults a zero stands for):
			// an idle timeout under a minute or longer than the absolute lifetime is a mistake.
			idle, abs := s.d.Identity.SessionDefaults()
			if pol.Idle != 0 {
				idle = pol.Idle
			}
			if pol.Absolute != 0 {
				abs = pol.Absolute
			}
			if idle < time.Minute {
				return tutela.FieldErrorf("session_idle_seconds", "session_idle_seconds must be at least 60")
			}
			if idle > abs {
				return tutela.FieldErrorf("session_idle_seconds", "the idle timeout (%s) cannot exceed the absolute lifetime (%s)", idle, abs)
			}
			return tx.SetTenantSessionPolicy(r.Context(), t.ID, pol)
		}
		return nil
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, t)
}

// promotes reports whether the request is a promotion of t: a mode other than t's, or
// provisioning under a named approval (which is then spent or refused, never ignored).
func (req tenantRequest) promotes(t *tutela.Tenant) bool {
	if req.Mode == nil {
		return false
	}
	mode := tutela.TenantMode(*req.Mode)
	return mode != t.Mode || mode == tutela.TenantProvisioning && req.ApprovalID != ""
}

// otherThanMode reports whether the request changes anything besides the mode.
func (req tenantRequest) otherThanMode() bool {
	return req.Name != nil || req.DataRegion != nil || req.Status != nil || req.Branding != nil || req.securityPolicy()
}

// promoteTenant moves t from simulation to provisioning (tenants UPDATE, already checked): a
// tenant that starts serving people, which the tenant's policy for tenant.promote may put behind
// approval (the tenant and the mode are what is approved). It goes on its own, so what is
// approved is the whole call, and never back: a tenant that has served people cannot go back to
// pretending (409).
func (s *Server) promoteTenant(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, t *tutela.Tenant, req tenantRequest) (*approvals.Request, error) {
	if req.otherThanMode() {
		return nil, tutela.FieldErrorf("mode", "mode is changed on its own, without other fields")
	}
	if tutela.TenantMode(*req.Mode) != tutela.TenantProvisioning {
		return nil, tutela.Errorf(tutela.ECONFLICT, "a tenant in provisioning serves people: it cannot go back to simulation")
	}
	g := gated{Action: approvals.ActionTenantPromotion, TargetType: "tenant", TargetID: t.ID,
		Params:         map[string]any{"tenant": t.ID, "mode": string(tutela.TenantProvisioning)},
		approvalFields: req.approvalFields}
	held, err := s.gateTenant(r, tx, p, t.ID, g)
	if err != nil || held != nil {
		return held, err
	}
	// tenant.promoted says why: the justification of the approval spent (the approved call
	// need not repeat it), or the one given where no approval was needed.
	justification, approvalID := req.Justification, ""
	if req.ApprovalID != "" {
		pol, err := tx.Approvals(t.ID).Policy(r.Context(), approvals.ActionTenantPromotion)
		if err != nil {
			return nil, err
		}
		if pol.Enabled { // the gate spent it; with the policy off it was ignored
			a, err := tx.Approvals(t.ID).Get(r.Context(), req.ApprovalID)
			if err != nil {
				return nil, err
			}
			justification, approvalID = a.Justification, a.ID
		}
	}
	return nil, tx.PromoteTenant(r.Context(), t, justification, approvalID)
}
