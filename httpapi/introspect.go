package httpapi

import (
	"mime"
	"net/http"

	"tutela"
	"tutela/httpapi/middleware"
)

type forgotRequest struct {
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
}

// forgotPassword always answers 202 when the input is well-formed: whether an e-mail goes out
// is never visible to the caller.
func (s *Server) forgotPassword(w http.ResponseWriter, r *http.Request) {
	var req forgotRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, _ := clientInfo(r)
	if err := s.d.Identity.ForgotPassword(r.Context(), req.Tenant, req.Email, ip); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusAccepted, map[string]string{
		"status": "if the account exists, a reset code has been sent to its e-mail address"})
}

// introspect implements RFC 7662 token introspection for service accounts, which authenticate
// with client_secret_basic (preferred) or client_secret_post.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EUNSUPPORTED, "Content-Type must be application/x-www-form-urlencoded (RFC 7662)"))
		return
	}
	if err := r.ParseForm(); err != nil {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EINVALID, "malformed form body"))
		return
	}
	sa, err := s.authenticateClient(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="tutela"`)
		middleware.WriteError(w, r, err)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		middleware.WriteError(w, r, tutela.FieldErrorf("token", "token is required"))
		return
	}
	middleware.WriteJSON(w, http.StatusOK, s.d.Identity.Introspect(r.Context(), sa, tok))
}
