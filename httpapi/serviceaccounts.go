package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/sqlstore"
)

// oauthError writes an RFC 6749 §5.2 error response: token endpoint clients expect this shape.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tutela"`)
	}
	middleware.WriteJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// token implements the OAuth 2.0 token endpoint for the client-credentials grant (RFC 6749
// §4.4): a service account authenticates (private_key_jwt, client_secret_basic or
// client_secret_post) and gets an access token whose scope is exactly its permission set. The
// exchange is identity's, the same one each tenant's OpenID Provider token endpoint
// (/t/{tenant}/oauth/token) uses; this endpoint keeps its URL and answers for the clients
// and documents that use it.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported here")
		return
	}
	sa, err := s.authenticateClient(r)
	if err != nil {
		if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
		middleware.WriteError(w, r, err)
		return
	}
	tok, err := s.d.Identity.GrantClientCredentials(r.Context(), sa, r.PostForm["resource"])
	switch {
	case errors.Is(err, identity.ErrOneResource):
		oauthError(w, http.StatusBadRequest, "invalid_target", "ask for one resource per token")
		return
	case errors.Is(err, identity.ErrInvalidTarget):
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource is not a registered resource server")
		return
	case err != nil:
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok.AccessToken.Reveal(), "token_type": "Bearer",
		"expires_in": int64(tok.Expiry.Sub(s.d.Clock()).Round(time.Second) / time.Second), "scope": tok.Scope})
}

type serviceAccountRequest struct {
	Name        string               `json:"name"`
	Permissions []authz.Permission   `json:"permissions"`
	Clearance   authz.Classification `json:"clearance"`
	IPAllowlist []string             `json:"ip_allowlist"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	approvalFields
}

// createServiceAccount: (service_accounts CREATE) by a person with a fresh second factor (a new
// account is a credential that needs none: authz.Sensitive), and the actor must hold every
// permission and the clearance they give the account. Without a permission set the account is
// read-only. Permissions that take over people's accounts need the tenant's consent
// (mayHoldTakeover).
func (s *Server) createServiceAccount(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req serviceAccountRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	sa := &sqlstore.ServiceAccount{Name: req.Name, Permissions: req.Permissions, Clearance: req.Clearance,
		IPAllowlist: req.IPAllowlist, ExpiresAt: req.ExpiresAt}
	var secret tutela.Secret
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Create, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		sa.TenantID = t.ID
		perms := sa.Permissions
		if len(perms) == 0 {
			perms = sqlstore.DefaultServiceAccountPermissions
		}
		role := &sqlstore.Role{Key: "service_account", Permissions: perms, Clearance: sa.Clearance}
		if role.Clearance == "" {
			role.Clearance = authz.Green
		}
		if role.Clearance.Valid() {
			if err := mayConfer(pol, p, role, s.d.Clock()); err != nil {
				return err
			}
		}
		if err := s.mayHoldTakeover(r, tx, t, perms); err != nil {
			return err
		}
		if _, takeover := authz.TakeoverPermission(perms); takeover {
			// An account that can hand over people's accounts is an admin grant like any other:
			// the role.grant policy holds it, binding the whole account as it will be made.
			g := gated{Action: approvals.ActionRoleGrant, TargetType: "service_account", TargetID: sa.Name,
				Params: map[string]any{"service_account": sa.Name, "permissions": nonNilPerms(perms), "clearance": string(role.Clearance),
					"ip_allowlist": sa.IPAllowlist, "expires_at": paramTime(sa.ExpiresAt)},
				approvalFields: req.approvalFields}
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		secret, err = s.d.Identity.CreateServiceAccountTx(r.Context(), tx, sa)
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"service_account": sa, "client_secret": secret.Reveal()})
}

// mayManageServiceAccount refuses to touch an account's credentials or status unless the actor
// holds everything the account does: its permissions (at their classification limits) and its
// clearance. Whoever can add a secret or key can act as the account, so service_accounts
// MANAGE alone must not lift a less privileged administrator to the account's rights (ASVS 5.0
// 8.2.1/8.2.2); the same rule as creating one (mayConfer) and as canAdminister for users.
func (s *Server) mayManageServiceAccount(r *http.Request, tx *sqlstore.Tx, actor *authz.Policy, t *tutela.Tenant, saID string) error {
	target, err := tx.ServiceAccountPolicy(r.Context(), t.ID, saID)
	if err != nil {
		return err
	}
	now := s.d.Clock()
	for _, g := range target.Grants {
		if !actor.Holds(g.Permission, now) {
			return tutela.Errorf(tutela.EFORBIDDEN, "the service account holds %s, which you do not; ask someone who does", g.Permission)
		}
	}
	if target.Clearance.Rank() > actor.Clearance.Rank() {
		return tutela.Errorf(tutela.EFORBIDDEN, "the service account has %s clearance, above yours", target.Clearance)
	}
	return nil
}

func (s *Server) listServiceAccounts(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var list []*sqlstore.ServiceAccount
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		list, err = tx.ServiceAccounts(r.Context(), t.ID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"service_accounts": list})
}

// addServiceAccountSecret adds a second secret for rotation without downtime (at most two).
// Whoever holds the secret acts as the account, so only a person with a fresh second factor
// may add one, never another service account.
func (s *Server) addServiceAccountSecret(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	secret := identity.NewClientSecret()
	var id string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		if err := s.mayManageServiceAccount(r, tx, pol, t, r.PathValue("sa")); err != nil {
			return err
		}
		id, err = tx.AddServiceAccountSecret(r.Context(), t.ID, r.PathValue("sa"), sqlstore.HashToken(secret.Reveal()))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]string{"secret_id": id, "client_secret": secret.Reveal()})
}

func (s *Server) revokeServiceAccountSecret(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		if err := s.mayManageServiceAccount(r, tx, pol, t, r.PathValue("sa")); err != nil {
			return err
		}
		return tx.RevokeServiceAccountSecret(r.Context(), t.ID, r.PathValue("sa"), r.PathValue("secret"))
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) disableServiceAccount(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		if err := s.mayManageServiceAccount(r, tx, pol, t, r.PathValue("sa")); err != nil {
			return err
		}
		return tx.SetServiceAccountStatus(r.Context(), t.ID, r.PathValue("sa"), tutela.StatusDisabled)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authenticateClient authenticates a service account at the token and introspection
// endpoints (identity.AuthenticateServiceAccount): private_key_jwt (RFC 7523 §2.2, no shared
// secret on the wire) when a client assertion is given, else client_secret_basic or
// client_secret_post. The IP allowlist and expiry apply either way.
//
// A refusal is noted for the audit log (auth.client, ASVS 5.0 16.3.1) with the method, the
// reason and, when the account exists, its tenant and ID. It is written with the call's
// api.request event whether or not the client exists, so recording it reveals nothing by its
// cost.
func (s *Server) authenticateClient(r *http.Request) (*sqlstore.ServiceAccount, error) {
	ip, _ := clientInfo(r)
	a := identity.ClientAuth{Assertion: r.PostForm.Get("client_assertion"),
		AssertionType: r.PostForm.Get("client_assertion_type"), Endpoint: s.tokenEndpoint(r), IP: ip}
	if a.Method() == "private_key_jwt" {
		a.ClientID = r.PostForm.Get("client_id")
	} else {
		id, secret, basic := r.BasicAuth()
		if !basic {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		a.ClientID, a.Secret = id, tutela.NewSecret(secret)
	}
	sa, err := s.d.Identity.AuthenticateServiceAccount(r.Context(), a)
	if err != nil && tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
		details := map[string]any{"method": a.Method()}
		if id := a.PresentedClientID(); identity.ValidClientID(id) {
			details["client_id"] = id
		}
		noteAuthFailure(r.Context(), refusalFailure("auth.client", "invalid", err, details))
	}
	return sa, err
}

// tokenEndpoint is the audience a client assertion must name: this deployment's token URL.
func (s *Server) tokenEndpoint(*http.Request) string {
	return strings.TrimRight(s.d.Identity.PublicURL, "/") + "/v1/oauth/token"
}

// registerClientKey adds a public key (JWK, ES256 or EdDSA) for private_key_jwt: like a secret,
// only by a person with a fresh second factor.
func (s *Server) registerClientKey(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		JWK json.RawMessage `json:"jwk"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var tenantID string
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResServiceAccounts)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		tenantID = t.ID
		return s.mayManageServiceAccount(r, tx, pol, t, r.PathValue("sa"))
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	kid, err := s.d.Identity.MFA.RegisterClientKey(r.Context(), tenantID, r.PathValue("sa"), req.JWK)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]string{"kid": kid})
}
