package httpapi

import (
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
	"tutela/webhooks"
)

func (s *Server) webhookRoutes() {
	const base = "/v1/tenants/{tenant}/webhooks"
	s.handle("POST", base, false, s.authed(false, s.createWebhook))
	s.handle("GET", base, false, s.authed(false, s.listWebhooks))
	s.handle("DELETE", base+"/{id}", false, s.authed(false, s.deleteWebhook))
}

// createWebhook registers an endpoint and answers with its signing secret, the only time it is
// shown. An endpoint sends the tenant's events out of Tutela, so only a person with a fresh
// second factor may add one (as for a service account or an OIDC client). The secret is not in
// the request's audit record (that lists the body's field names, and the body has none), nor in
// webhook.created.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	wh := &webhooks.Webhook{URL: req.URL, Events: req.Events, CreatedBy: p.UserID}
	var secret tutela.Secret
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResWebhooks)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		secret, err = tx.Webhooks(t.ID).Create(r.Context(), wh)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"webhook": wh, "secret": secret.Reveal()})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var list []webhooks.Webhook
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResWebhooks)
		if err != nil {
			return err
		}
		list, err = tx.Webhooks(t.ID).List(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": list})
}

// deleteWebhook removes an endpoint (DELETE: a fresh step-up); deliveries still queued for it
// end without sending. Another tenant's endpoint is not found.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Delete, authz.ResWebhooks)
		if err != nil {
			return err
		}
		return tx.Webhooks(t.ID).Delete(r.Context(), r.PathValue("id"))
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
