package httpapi

import (
	"net/http"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/partners"
	"tutela/sqlstore"
)

// Partner organisations (issue 18): a tenant registers the organisations it refers people to,
// gives them users (the partner role and nothing else) and service accounts (referrals READ and
// UPDATE at GREEN and nothing else), and shares subjects with them for a purpose until an
// expiry. What a partner's principal sees of subjects is enforced by the store (the
// transaction's partner scope, set in principalPolicy), not here.

// partnerRoutes registers the partner, partner user and service account, and share endpoints.
func (s *Server) partnerRoutes() {
	const base = "/v1/tenants/{tenant}/partners"
	s.handle("POST", base, false, s.authed(false, s.createPartner))
	s.handle("GET", base, false, s.authed(false, s.listPartners))
	s.handle("GET", base+"/{id}", false, s.authed(false, s.getPartner))
	s.handle("PATCH", base+"/{id}", false, s.authed(false, s.patchPartner))
	s.handle("POST", base+"/{id}/users", false, s.authed(false, s.createPartnerUser))
	s.handle("GET", base+"/{id}/users", false, s.authed(false, s.listPartnerUsers))
	s.handle("POST", base+"/{id}/service-accounts", false, s.authed(false, s.createPartnerServiceAccount))
	s.handle("GET", base+"/{id}/shares", false, s.authed(false, s.listPartnerShares))
	const shares = "/v1/tenants/{tenant}/subjects/{id}/shares"
	s.handle("POST", shares, false, s.authed(false, s.createShare))
	s.handle("GET", shares, false, s.authed(false, s.listSubjectShares))
	s.handle("DELETE", shares+"/{share}", false, s.authed(false, s.revokeShare))
}

type partnerRequest struct {
	Name         *string          `json:"name"`
	Status       *partners.Status `json:"status"`
	RedirectURLs *[]string        `json:"redirect_urls"`
}

// createPartner (partners CREATE). Registering redirect URLs decides where people are sent, so
// a request that names any needs a person's fresh second factor, as changing them does.
func (s *Server) createPartner(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req partnerRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	pt := &partners.Partner{CreatedBy: p.UserID}
	if req.Name != nil {
		pt.Name = *req.Name
	}
	if req.Status != nil {
		pt.Status = *req.Status
	}
	if req.RedirectURLs != nil {
		pt.RedirectURLs = *req.RedirectURLs
	}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResPartners)
		if err != nil {
			return err
		}
		if len(pt.RedirectURLs) > 0 {
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
		}
		return tx.Partners(t.ID).Create(r.Context(), pt)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, pt)
}

func (s *Server) listPartners(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var list []partners.Partner
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResPartners)
		if err != nil {
			return err
		}
		list, err = tx.Partners(t.ID).List(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"partners": list})
}

func (s *Server) getPartner(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var out *partners.Partner
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResPartners)
		if err != nil {
			return err
		}
		out, err = tx.Partners(t.ID).Get(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// patchPartner (partners UPDATE) changes the name, the status (a disabled partner's users and
// service accounts see nothing) or the redirect URLs; changing the URLs needs a person's fresh
// second factor.
func (s *Server) patchPartner(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req partnerRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out *partners.Partner
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResPartners)
		if err != nil {
			return err
		}
		if req.RedirectURLs != nil {
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
		}
		out, err = tx.Partners(t.ID).Update(r.Context(), r.PathValue("id"),
			sqlstore.PartnerUpdate{Name: req.Name, Status: req.Status, RedirectURLs: req.RedirectURLs})
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// partnerRole is the built-in partner role as mayConfer checks it: whoever creates a partner's
// user must hold what the role gives.
func partnerRole() *sqlstore.Role {
	def, _ := authz.Builtin(authz.RolePartner)
	return &sqlstore.Role{Key: def.Key, Permissions: def.Permissions, Clearance: def.Clearance}
}

// createPartnerUser (partners CREATE and users CREATE) creates a user of the partner holding the
// partner role only. The user has no password: they set one through the usual reset flow.
func (s *Server) createPartnerUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req userCreateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	u := &tutela.User{Email: req.Email, DisplayName: req.DisplayName}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Create, authz.ResPartners)
		if err != nil {
			return err
		}
		if _, err := s.decideWith(r, p, pol, authz.Request{Action: authz.Create, Resource: authz.ResUsers}); err != nil {
			return err
		}
		if err := mayConfer(pol, p, partnerRole(), s.d.Clock()); err != nil {
			return err
		}
		return tx.Users(t.ID).CreatePartnerUser(r.Context(), u, r.PathValue("id"), p.UserID)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, u)
}

// listPartnerUsers (partners READ and users READ): the partner's users, masked by the caller's
// field policy as every user listing.
func (s *Server) listPartnerUsers(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var users []*tutela.User
	var masks map[string]authz.Mask
	var tenantID string
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResPartners)
		if err != nil {
			return err
		}
		if _, err := s.decideWith(r, p, pol, authz.Request{Action: authz.Read, Resource: authz.ResUsers}); err != nil {
			return err
		}
		masks, tenantID = pol.Masks, t.ID
		users, err = tx.Users(t.ID).ListByPartner(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeMasked(w, r, http.StatusOK, map[string]any{"users": users}, tenantID, authz.ResUsers, masks)
}

type partnerServiceAccountRequest struct {
	Name string `json:"name"`
}

// createPartnerServiceAccount (partners CREATE and service_accounts CREATE, by a person with a
// fresh second factor, like every new service account) creates the partner's account for
// confirming referrals: exactly referrals READ and UPDATE at GREEN. The client secret is shown
// once.
func (s *Server) createPartnerServiceAccount(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req partnerServiceAccountRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	sa := &sqlstore.ServiceAccount{Name: req.Name, PartnerID: r.PathValue("id")}
	var secret tutela.Secret
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Create, authz.ResPartners)
		if err != nil {
			return err
		}
		if _, err := s.decideWith(r, p, pol, authz.Request{Action: authz.Create, Resource: authz.ResServiceAccounts}); err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		role := &sqlstore.Role{Key: "service_account", Permissions: sqlstore.PartnerServiceAccountPermissions, Clearance: authz.Green}
		if err := mayConfer(pol, p, role, s.d.Clock()); err != nil {
			return err
		}
		sa.TenantID = t.ID
		secret, err = s.d.Identity.CreateServiceAccountTx(r.Context(), tx, sa)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"service_account": sa, "client_secret": secret.Reveal()})
}

type shareRequest struct {
	PartnerID     string    `json:"partner_id"`
	Purpose       string    `json:"purpose"`
	ExpiresAt     time.Time `json:"expires_at"`
	Justification string    `json:"justification"`
}

// createShare (shares CREATE, a disclosure: a person with a fresh second factor) shares the
// subject with a partner. The store checks the rest (Shares.Create): the tenant provisioning,
// the partner active, the purpose declared and the subject's consent for it, the expiry within
// a year, the justification.
func (s *Server) createShare(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req shareRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	sh := &partners.Share{PartnerID: req.PartnerID, SubjectID: r.PathValue("id"), Purpose: req.Purpose,
		ExpiresAt: req.ExpiresAt, Justification: req.Justification, CreatedBy: p.UserID}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResShares)
		if err != nil {
			return err
		}
		// After authorize: another tenant's path is 404 whatever the body says.
		if req.ExpiresAt.IsZero() {
			return tutela.FieldErrorf("expires_at", "expires_at is required: a share always ends")
		}
		if _, err := purposeFrom(req.Purpose); err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		return tx.Shares(t.ID).Create(r.Context(), sh)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, sh)
}

func (s *Server) listSubjectShares(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.listShares(w, r, p, func(tx *sqlstore.Tx, tenantID string) ([]partners.Share, error) {
		return tx.Shares(tenantID).ForSubject(r.Context(), r.PathValue("id"))
	})
}

func (s *Server) listPartnerShares(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.listShares(w, r, p, func(tx *sqlstore.Tx, tenantID string) ([]partners.Share, error) {
		return tx.Shares(tenantID).ForPartner(r.Context(), r.PathValue("id"))
	})
}

// listShares (shares READ) answers a listing of shares, newest first, revoked and expired ones
// included, each with whether it discloses the subject now.
func (s *Server) listShares(w http.ResponseWriter, r *http.Request, p *tutela.Principal,
	list func(tx *sqlstore.Tx, tenantID string) ([]partners.Share, error)) {
	var out []shareView
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResShares)
		if err != nil {
			return err
		}
		shares, err := list(tx, t.ID)
		if err != nil {
			return err
		}
		out = make([]shareView, len(shares))
		for i := range shares {
			out[i] = shareView{Share: &shares[i], Active: shares[i].Active(tx.Now())}
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"shares": out})
}

type shareView struct {
	*partners.Share
	// Active: not revoked and not expired now (the partner's own status aside).
	Active bool `json:"active"`
}

type shareRevokeRequest struct {
	Justification string `json:"justification"`
}

// revokeShare (shares DELETE, a sensitive action: step-up) ends a share now, with a
// justification the audit event keeps.
func (s *Server) revokeShare(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req shareRevokeRequest
	// No body is no justification: refused by the store, after authorization (so another
	// tenant's path answers 404 first).
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	var out *partners.Share
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Delete, authz.ResShares)
		if err != nil {
			return err
		}
		out, err = tx.Shares(t.ID).Revoke(r.Context(), r.PathValue("id"), r.PathValue("share"), p.UserID, req.Justification)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}
