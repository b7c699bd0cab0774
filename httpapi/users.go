package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

type userCreateRequest struct {
	Email       string `json:"email"`
	DisplayName string `json:"display_name"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req userCreateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	u := &tutela.User{Email: req.Email, DisplayName: req.DisplayName}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResUsers)
		if err != nil {
			return err
		}
		return tx.Users(t.ID).Create(r.Context(), u)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, u)
}

func pageParams(r *http.Request) (cursor string, limit int, err error) {
	return pageParamsOf(r, tutela.ValidID)
}

// writePage answers one page of a listing as {key: list, next_cursor}: the cursor is the last
// item's ID when the page is full, and an empty page is [] (never null).
func writePage[T any](w http.ResponseWriter, key string, list []T, limit int, id func(T) string) {
	next := ""
	if len(list) == limit && limit > 0 {
		next = id(list[len(list)-1])
	}
	if list == nil {
		list = []T{}
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{key: list, "next_cursor": next})
}

// pageParamsOf reads ?cursor= (which validCursor must accept) and ?limit= (default 50, at most
// sqlstore.MaxPageSize).
func pageParamsOf(r *http.Request, validCursor func(string) bool) (cursor string, limit int, err error) {
	q := r.URL.Query()
	cursor = q.Get("cursor")
	if cursor != "" && !validCursor(cursor) {
		return "", 0, tutela.FieldErrorf("cursor", "cursor is not valid")
	}
	limit = 50
	if l := q.Get("limit"); l != "" {
		n, convErr := strconv.Atoi(l)
		if convErr != nil || n < 1 || n > sqlstore.MaxPageSize {
			return "", 0, tutela.FieldErrorf("limit", "limit must be 1-%d", sqlstore.MaxPageSize)
		}
		limit = n
	}
	return cursor, limit, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var users []*tutela.User
	var masks map[string]authz.Mask
	var tenantID string
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResUsers)
		if err != nil {
			return err
		}
		masks, tenantID = pol.Masks, t.ID
		users, err = tx.Users(t.ID).List(r.Context(), cursor, limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	next := ""
	if len(users) == limit {
		next = users[len(users)-1].ID
	}
	if users == nil {
		users = []*tutela.User{}
	}
	s.writeMasked(w, r, http.StatusOK, map[string]any{"users": users, "next_cursor": next}, tenantID, authz.ResUsers, masks)
}

// withUser runs fn in a transaction on the {tenant}/{id} user, once p is allowed action on
// resource there. Any change (action other than READ) also needs canAdminister: the actor
// must hold every privilege of the user they change, and may not change themselves — except
// for the few self-service-safe actions the caller allows (allowSelf).
func (s *Server) withUser(r *http.Request, p *tutela.Principal, action authz.Action, resource string, allowSelf bool,
	fn func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error) error {
	run := s.d.DB.View
	if action != authz.Read {
		run = s.d.DB.Update
	}
	return run(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, action, resource)
		if err != nil {
			return err
		}
		u, err := tx.Users(t.ID).Get(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		if action != authz.Read && !(allowSelf && u.ID == p.UserID) {
			if err := canAdminister(r, tx, p, pol, t, u.ID, s.d.Clock()); err != nil {
				return err
			}
		}
		return fn(tx, t, u, pol)
	})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var out *tutela.User
	var masks map[string]authz.Mask
	err := s.withUser(r, p, authz.Read, authz.ResUsers, false, func(_ *sqlstore.Tx, _ *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
		out, masks = u, pol.Masks
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeMasked(w, r, http.StatusOK, out, out.TenantID, authz.ResUsers, masks)
}

type userPatchRequest struct {
	Email       *string `json:"email"`
	DisplayName *string `json:"display_name"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req userPatchRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out *tutela.User
	var masks map[string]authz.Mask
	var oldEmail string
	err := s.withUser(r, p, authz.Update, authz.ResUsers, true, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
		masks = pol.Masks
		if req.Email != nil && tutela.NormalizeEmail(*req.Email) != tutela.NormalizeEmail(u.Email) {
			// The e-mail address is where password resets go: changing it is as sensitive as
			// resetting a password (ASVS 7.5.1). It needs a fresh second factor, ends the
			// user's outstanding reset codes, and the old address is told.
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
			if err := tx.Users(t.ID).RevokeTokens(r.Context(), u.ID); err != nil {
				return err
			}
			oldEmail = u.Email
		}
		if req.Email != nil {
			u.Email = *req.Email
		}
		if req.DisplayName != nil {
			u.DisplayName = *req.DisplayName
		}
		out = u
		return tx.Users(t.ID).Update(r.Context(), u)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if oldEmail != "" {
		s.d.Identity.NotifyEmailChanged(r.Context(), out.TenantID, oldEmail, out.Email) // right after the commit
	}
	s.writeMasked(w, r, http.StatusOK, out, out.TenantID, authz.ResUsers, masks)
}

// setUserStatus disables or enables a user. Disabling ends every session and token at once.
func (s *Server) setUserStatus(status tutela.Status) func(http.ResponseWriter, *http.Request, *tutela.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
		ip, _ := clientInfo(r)
		var out *tutela.User
		var masks map[string]authz.Mask
		err := s.withUser(r, p, authz.Update, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, pol *authz.Policy) error {
			masks = pol.Masks
			if status == tutela.StatusDisabled {
				if err := s.keepLastAdmin(r, tx, t, u.ID); err != nil {
					return err
				}
			}
			u.Status, out = status, u
			if err := tx.Users(t.ID).Update(r.Context(), u); err != nil {
				return err
			}
			if status == tutela.StatusDisabled {
				return s.d.Identity.RevokeAll(r.Context(), tx, t.ID, u.ID, "user_disabled", ip)
			}
			return nil
		})
		if err != nil {
			middleware.WriteError(w, r, err)
			return
		}
		s.writeMasked(w, r, http.StatusOK, out, out.TenantID, authz.ResUsers, masks)
	}
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.withUser(r, p, authz.Delete, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		if err := s.keepLastAdmin(r, tx, t, u.ID); err != nil {
			return err
		}
		return tx.Users(t.ID).Delete(r.Context(), u.ID)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminRevokeSessions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	ip, _ := clientInfo(r)
	err := s.withUser(r, p, authz.Manage, authz.ResSessions, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		return s.d.Identity.RevokeAll(r.Context(), tx, t.ID, u.ID, "revoked_by_admin", ip)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminUnlock(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	ip, _ := clientInfo(r)
	err := s.withUser(r, p, authz.Manage, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		return s.d.Identity.Unlock(r.Context(), tx, t, u, p.UserID, ip)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ResetTokenTTL is how long an admin-initiated password reset token stays valid.
const ResetTokenTTL = 30 * time.Minute

func (s *Server) adminResetPassword(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var tok string
	var exp time.Time
	ip, _ := clientInfo(r)
	err := s.withUser(r, p, authz.Manage, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		if err := s.allowTakeover(r, tx, p, t, authz.TakeoverPasswordReset, u.ID); err != nil {
			return err
		}
		var err error
		var ot *sqlstore.OneTimeToken
		if tok, ot, err = tx.Users(t.ID).CreateToken(r.Context(), u.ID, sqlstore.TokenReset, ResetTokenTTL); err != nil {
			return err
		}
		exp = ot.ExpiresAt
		return tx.RecordSecurityEvent(r.Context(), &sqlstore.SecurityEvent{TenantID: t.ID, UserID: u.ID,
			Kind: "password_reset_issued", IP: ip, Details: `{"by":"` + p.UserID + `"}`})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// The token is shown once to the administrator, who hands it to the user over a separate
	// channel; only its hash is stored.
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"reset_token": tok, "expires_at": exp})
}

type resetRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) {
	var req resetRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, _ := clientInfo(r)
	if err := s.d.Identity.ResetPassword(r.Context(), req.Token, tutela.NewSecret(req.NewPassword), ip); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) securityEvents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var ev []*sqlstore.SecurityEvent
	var masks map[string]authz.Mask
	var tenantID string
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		// ?tenant= names the tenant like the {tenant} path parameter does: an unknown one, or
		// another tenant than a tenant-scoped caller's own, is 404, never an empty 200 that
		// reads as "no events".
		tenantID = p.TenantID
		if q := r.URL.Query(); q.Has("tenant") {
			t, err := tenantRef(r, tx, p, q.Get("tenant"))
			if err != nil {
				return err
			}
			tenantID = t.ID
		}
		pol, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSecurityEvents})
		if err != nil {
			return err
		}
		masks = pol.Masks
		ev, err = tx.SecurityEvents(r.Context(), tenantID, 200)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if ev == nil {
		ev = []*sqlstore.SecurityEvent{}
	}
	s.writeMasked(w, r, http.StatusOK, map[string]any{"events": ev}, tenantID, authz.ResSecurityEvents, masks)
}

func secondsDur(n int) time.Duration { return time.Duration(n) * time.Second }

// revokeTenantSessions ends every session and token of every user of the tenant (ASVS 7.4.5),
// e.g. after a suspected compromise. The caller's own session ends too.
func (s *Server) revokeTenantSessions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var n int64
	ip, _ := clientInfo(r)
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResSessions)
		if err != nil {
			return err
		}
		if n, err = tx.RevokeTenantSessions(r.Context(), t.ID, "revoked_by_admin"); err != nil {
			return err
		}
		return tx.RecordSecurityEvent(r.Context(), &sqlstore.SecurityEvent{TenantID: t.ID, UserID: p.UserID,
			Kind: "tenant_sessions_revoked", IP: ip})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]int64{"revoked": n})
}
