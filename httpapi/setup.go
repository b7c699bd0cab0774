package httpapi

import (
	"net/http"

	"tutela"
	"tutela/httpapi/middleware"
)

type setupRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// setup exchanges the one-time token printed by `tutela bootstrap` for a password (see
// identity.Service.SetupPassword for the token's life cycle).
func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	var req setupRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, _ := clientInfo(r)
	err := s.d.Identity.SetupPassword(r.Context(), req.Token, tutela.NewSecret(req.Password), ip)
	if err != nil {
		// The policy names the field new_password for changes; here it is password.
		if e, ok := err.(*tutela.Error); ok && e.Field == "new_password" {
			err = &tutela.Error{Code: e.Code, Field: "password", Message: e.Message, Err: e.Err}
		}
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
