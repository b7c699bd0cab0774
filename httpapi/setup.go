package httpapi

import (
	"net/http"

	"tutela"
	"tutela/httpapi/middleware"
	"tutela/password"
	"tutela/sqlstore"
)

type setupRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// setup exchanges the one-time token printed by `tutela bootstrap` for a password. The token is
// checked first without being spent, the password is checked against the policy and hashed
// outside any transaction (hashing is slow and must not hold the write lock), and only then is
// the token consumed, atomically, in the transaction that stores the hash. A rejected password
// therefore leaves the token usable, and a token can never set two passwords.
func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	var req setupRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	var (
		tok    *sqlstore.OneTimeToken
		user   *tutela.User
		tenant *tutela.Tenant
	)
	err := s.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if tok, err = tx.PeekToken(ctx, req.Token, sqlstore.TokenSetup); err != nil {
			return err
		}
		if user, err = tx.Users(tok.TenantID).Get(ctx, tok.UserID); err != nil {
			return err
		}
		tenant, err = tx.Tenant(ctx, tok.TenantID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	err = s.d.Policy.Check(ctx, req.Password, password.Context{
		Email: user.Email, Name: user.DisplayName, Tenant: tenant.Slug,
		Hasher: s.d.Hasher, Breach: s.d.Breach,
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	hash, err := s.d.Hasher.Hash(ctx, req.Password)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	err = s.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		spent, err := tx.ConsumeToken(ctx, req.Token, sqlstore.TokenSetup)
		if err != nil {
			return err
		}
		return tx.Users(spent.TenantID).SetPasswordHash(ctx, spent.UserID, hash)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.Logger(ctx).Info("setup token exchanged for a password", "tenant_id", tenant.ID, "user_id", user.ID)
	w.WriteHeader(http.StatusNoContent)
}
