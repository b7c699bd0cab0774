package httpapi

import (
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

type userEraseRequest struct {
	Reason     string `json:"reason"`
	LegalBasis string `json:"legal_basis"`
}

// eraseUser crypto-shreds a user (issue 13): their person key goes, so every sealed copy of
// their data (e-mail, name, sign-ins, security events, review items, the IP and user agent of
// their audit events) reads [erased] from then on, and the row goes with their sessions, grants
// and tokens. It is DELETE on users and more: irreversible, so a person with a fresh second
// factor only (requireHumanStepUp) — a service account is refused whatever the tenant's takeover
// policy, which covers handing an account over, not destroying one. Like delete it refuses the
// caller themselves (canAdminister) and the tenant's last active program_admin.
func (s *Server) eraseUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req userEraseRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, _ := clientInfo(r)
	// Checked once the caller may erase this user (another tenant's user is 404 whatever the
	// body), before anything changes.
	err := s.withUser(r, p, authz.Delete, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		if err := sqlstore.CheckErasureText(req.Reason, req.LegalBasis); err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		if err := s.keepLastAdmin(r, tx, t, u.ID); err != nil {
			return err
		}
		// Signed out everywhere first (token version, sessions), then shredded and deleted.
		if err := s.d.Identity.RevokeAll(r.Context(), tx, t.ID, u.ID, "user_erased", ip); err != nil {
			return err
		}
		return tx.Users(t.ID).Erase(r.Context(), u.ID, req.Reason, req.LegalBasis)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
