package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/oidc"
	"tutela/sqlstore"
)

// oidcClientRoutes registers the OpenID client registry (issue 15).
func (s *Server) oidcClientRoutes() {
	const base = "/v1/tenants/{tenant}/oidc-clients"
	s.handle("POST", base, false, s.authed(false, s.createOIDCClient))
	s.handle("GET", base, false, s.authed(false, s.listOIDCClients))
	s.handle("GET", base+"/{client}", false, s.authed(false, s.getOIDCClient))
	s.handle("PATCH", base+"/{client}", false, s.authed(false, s.patchOIDCClient))
	s.handle("DELETE", base+"/{client}", false, s.authed(false, s.deleteOIDCClient))
	s.handle("POST", base+"/{client}/disable", false, s.authed(false, s.setOIDCClientStatus(sqlstore.ClientDisabled)))
	s.handle("POST", base+"/{client}/enable", false, s.authed(false, s.setOIDCClientStatus(sqlstore.ClientActive)))
	s.handle("POST", base+"/{client}/secrets", false, s.authed(false, s.rotateOIDCClientSecret))
	s.handle("DELETE", base+"/{client}/secrets/{secret}", false, s.authed(false, s.revokeOIDCClientSecret))
	s.handle("POST", base+"/{client}/keys", false, s.authed(false, s.addOIDCClientKey))
	s.handle("DELETE", base+"/{client}/keys/{kid}", false, s.authed(false, s.removeOIDCClientKey))
}

// oidcClientRequest is a registration (POST) or a change (PATCH): absent fields keep their
// value (or the default, at creation). Names follow OpenID Connect Dynamic Client Registration.
type oidcClientRequest struct {
	Name                   *string   `json:"name"`
	AppType                *string   `json:"application_type"`
	AuthMethod             *string   `json:"token_endpoint_auth_method"`
	RedirectURIs           *[]string `json:"redirect_uris"`
	PostLogoutRedirectURIs *[]string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   *string   `json:"backchannel_logout_uri"`
	Scopes                 *[]string `json:"scopes"`
	GrantTypes             *[]string `json:"grant_types"`
	IDTokenAlg             *string   `json:"id_token_signed_response_alg"`
	RequireDPoP            *bool     `json:"dpop_bound_access_tokens"`
	RequirePAR             *bool     `json:"require_pushed_authorization_requests"`
	SkipConsent            *bool     `json:"skip_consent"`
	AccessTokenTTL         *int64    `json:"access_token_ttl_seconds"`
}

// apply copies the request's fields onto c.
func (q *oidcClientRequest) apply(c *sqlstore.OIDCClient) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	list := func(dst *[]string, v *[]string) {
		if v != nil {
			*dst = slices.Clone(*v)
		}
	}
	flag := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	if q.Name != nil {
		c.Name = strings.TrimSpace(*q.Name) // as ClientDefaults does at creation
	}
	set(&c.AppType, q.AppType)
	set(&c.AuthMethod, q.AuthMethod)
	list(&c.RedirectURIs, q.RedirectURIs)
	list(&c.PostLogoutRedirectURIs, q.PostLogoutRedirectURIs)
	set(&c.BackchannelLogoutURI, q.BackchannelLogoutURI)
	list(&c.Scopes, q.Scopes)
	list(&c.GrantTypes, q.GrantTypes)
	set(&c.IDTokenAlg, q.IDTokenAlg)
	flag(&c.RequireDPoP, q.RequireDPoP)
	flag(&c.RequirePAR, q.RequirePAR)
	flag(&c.SkipConsent, q.SkipConsent)
	if q.AccessTokenTTL != nil {
		c.AccessTokenTTL = *q.AccessTokenTTL
	}
}

// movesRedirects reports whether the change sends codes, tokens or logouts somewhere new.
func (q *oidcClientRequest) movesRedirects() bool {
	return q.RedirectURIs != nil || q.PostLogoutRedirectURIs != nil || q.BackchannelLogoutURI != nil
}

// createOIDCClient registers a relying party: (oidc_clients CREATE) by a person with a fresh
// second factor (authz.Sensitive: a confidential client is a credential), never by a service
// account. The secret of a confidential client is in this answer only.
func (s *Server) createOIDCClient(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req oidcClientRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	c := &sqlstore.OIDCClient{}
	req.apply(c)
	oidc.ClientDefaults(c)
	var secret tutela.Secret
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		if err := oidc.ValidateClient(c); err != nil {
			return err
		}
		if err := oidc.CheckSigningAlg(c, s.signingAlgs()); err != nil {
			return err
		}
		c.CreatedBy = p.UserID
		secret, err = tx.OIDCClients(t.ID).Create(r.Context(), c)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out := map[string]any{"client": c}
	if !secret.IsZero() {
		out["client_secret"] = secret.Reveal()
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, out)
}

// clientPage reads cursor (a client_id) and limit.
func clientPage(r *http.Request) (string, int, error) { return pageParamsOf(r, sqlstore.ValidClientID) }

func (s *Server) listOIDCClients(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := clientPage(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*sqlstore.OIDCClient
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		list, err = tx.OIDCClients(t.ID).List(r.Context(), cursor, limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	writePage(w, "clients", list, limit, func(c *sqlstore.OIDCClient) string { return c.ID })
}

// getOIDCClient returns the client with its secrets' metadata (never a secret or its hash) and
// its public keys.
func (s *Server) getOIDCClient(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var c *sqlstore.OIDCClient
	var secrets []sqlstore.OIDCClientSecret
	var keys []sqlstore.OIDCClientKey
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		cs := tx.OIDCClients(t.ID)
		if c, err = cs.Get(r.Context(), r.PathValue("client")); err != nil {
			return err
		}
		if secrets, err = cs.Secrets(r.Context(), c.ID); err != nil {
			return err
		}
		keys, err = cs.Keys(r.Context(), c.ID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"client": c, "secrets": secrets, "keys": keys})
}

// patchOIDCClient changes a client's settings (oidc_clients UPDATE). Moving its redirect,
// post-logout or back-channel URIs also needs a person's fresh second factor: whoever sets the
// redirect URI of a public client receives its users' authorization codes.
func (s *Server) patchOIDCClient(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req oidcClientRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var c *sqlstore.OIDCClient
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		if req.movesRedirects() {
			if err := s.requireHumanStepUp(p); err != nil {
				return err
			}
		}
		cs := tx.OIDCClients(t.ID)
		if c, err = cs.Get(r.Context(), r.PathValue("client")); err != nil {
			return err
		}
		req.apply(c)
		if err := oidc.ValidateClient(c); err != nil {
			return err
		}
		if err := oidc.CheckSigningAlg(c, s.signingAlgs()); err != nil {
			return err
		}
		return cs.Update(r.Context(), c)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"client": c})
}

func (s *Server) deleteOIDCClient(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.changeOIDCClient(w, r, p, authz.Delete, func(cs sqlstore.OIDCClients, id string) error { return cs.Delete(r.Context(), id) })
}

// changeOIDCClient runs change on one of the tenant's clients (the path's client) with action
// on oidc_clients, in one transaction with its audit record, and answers 204.
func (s *Server) changeOIDCClient(w http.ResponseWriter, r *http.Request, p *tutela.Principal, action authz.Action,
	change func(cs sqlstore.OIDCClients, clientID string) error) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, action, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		return change(tx.OIDCClients(t.ID), r.PathValue("client"))
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setOIDCClientStatus disables (ending the client's sessions) or enables a client
// (oidc_clients MANAGE).
func (s *Server) setOIDCClientStatus(status string) func(http.ResponseWriter, *http.Request, *tutela.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
		s.changeOIDCClient(w, r, p, authz.Manage, func(cs sqlstore.OIDCClients, id string) error {
			return cs.SetStatus(r.Context(), id, status)
		})
	}
}

// DefaultSecretOverlap is how long a rotated client secret keeps working when the request
// does not say: a day, for relying-party fleets that redeploy daily.
const DefaultSecretOverlap = 24 * time.Hour

// rotateOIDCClientSecret issues a new secret (oidc_clients MANAGE, a person with a fresh second
// factor); the old ones keep working for overlap_seconds (default a day, at most 30 days).
// The new secret is in this answer only.
func (s *Server) rotateOIDCClientSecret(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		OverlapSeconds *int64 `json:"overlap_seconds"`
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	overlap := DefaultSecretOverlap
	if req.OverlapSeconds != nil {
		if *req.OverlapSeconds < 0 || *req.OverlapSeconds > int64(sqlstore.MaxSecretOverlap/time.Second) {
			middleware.WriteError(w, r, tutela.FieldErrorf("overlap_seconds", "overlap_seconds must be 0-%d (30 days)",
				int64(sqlstore.MaxSecretOverlap/time.Second)))
			return
		}
		overlap = time.Duration(*req.OverlapSeconds) * time.Second
	}
	var secret tutela.Secret
	var id string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		secret, id, err = tx.OIDCClients(t.ID).RotateSecret(r.Context(), r.PathValue("client"), overlap)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"secret_id": id, "client_secret": secret.Reveal(),
		"previous_secrets_expire_at": s.d.Clock().Add(overlap).UTC()})
}

func (s *Server) revokeOIDCClientSecret(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.changeOIDCClient(w, r, p, authz.Manage, func(cs sqlstore.OIDCClients, id string) error {
		return cs.RevokeSecret(r.Context(), id, r.PathValue("secret"))
	})
}

// addOIDCClientKey registers a public key of a private_key_jwt client: like a secret, only by
// a person with a fresh second factor.
func (s *Server) addOIDCClientKey(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		Kid string          `json:"kid"`
		JWK json.RawMessage `json:"jwk"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var kid string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResOIDCClients)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		kid, err = tx.OIDCClients(t.ID).AddKey(r.Context(), r.PathValue("client"), req.Kid, req.JWK)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]string{"kid": kid})
}

func (s *Server) removeOIDCClientKey(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.changeOIDCClient(w, r, p, authz.Manage, func(cs sqlstore.OIDCClients, id string) error {
		return cs.RemoveKey(r.Context(), id, r.PathValue("kid"))
	})
}

// signingAlgs are the algorithms the key ring signs with.
func (s *Server) signingAlgs() []string {
	var out []string
	for _, a := range s.d.Identity.Tokens.Algs() {
		out = append(out, string(a))
	}
	return out
}
