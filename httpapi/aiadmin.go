package httpapi

import (
	"net/http"

	"tutela"
	"tutela/ai"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// The AI gateway's configuration (issue 16): a tenant's providers and their API keys, the
// models it allows, the purposes that may use them, its limits, and its usage. (ai, READ)
// reads it; (ai, MANAGE) changes it, which authz.Sensitive makes a step-up action: whoever
// changes a provider's base URL or key decides where the tenant's minimized prompts and its
// API key go. The gateway itself (ai, CREATE) is elsewhere.

func (s *Server) aiAdminRoutes() {
	const base = "/v1/tenants/{tenant}/ai"
	s.handle("GET", base+"/providers", false, s.authed(false, s.listAIProviders))
	s.handle("POST", base+"/providers", false, s.authed(false, s.createAIProvider))
	s.handle("GET", base+"/providers/{id}", false, s.authed(false, s.getAIProvider))
	s.handle("PATCH", base+"/providers/{id}", false, s.authed(false, s.patchAIProvider))
	s.handle("DELETE", base+"/providers/{id}", false, s.authed(false, s.deleteAIProvider))
	s.handle("POST", base+"/providers/{id}/keys", false, s.authed(false, s.addAIProviderKey))
	s.handle("DELETE", base+"/providers/{id}/keys/{key_id}", false, s.authed(false, s.deleteAIProviderKey))
	s.handle("GET", base+"/models", false, s.authed(false, s.listAIModels))
	// Model names hold "/" ("openai/gpt-4o-mini"): the rest of the path is the name, sent
	// as is or with "/" percent-encoded.
	s.handle("GET", base+"/models/{name...}", false, s.authed(false, s.getAIModel))
	s.handle("PUT", base+"/models/{name...}", false, s.authed(false, s.putAIModel))
	s.handle("DELETE", base+"/models/{name...}", false, s.authed(false, s.deleteAIModel))
	s.handle("GET", base+"/purposes", false, s.authed(false, s.listAIPurposes))
	s.handle("GET", base+"/purposes/{purpose}", false, s.authed(false, s.getAIPurpose))
	s.handle("PUT", base+"/purposes/{purpose}", false, s.authed(false, s.putAIPurpose))
	s.handle("DELETE", base+"/purposes/{purpose}", false, s.authed(false, s.deleteAIPurpose))
	s.handle("GET", base+"/settings", false, s.authed(false, s.getAISettings))
	s.handle("PUT", base+"/settings", false, s.authed(false, s.putAISettings))
	s.handle("GET", base+"/usage", false, s.authed(false, s.getAIUsage))
}

// viewAI runs read in a read transaction on the path tenant's AI configuration, after
// (ai, READ), and writes what it returns with 200.
func viewAI[T any](s *Server, w http.ResponseWriter, r *http.Request, p *tutela.Principal, read func(st sqlstore.AI) (T, error)) {
	var out T
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResAI)
		if err != nil {
			return err
		}
		out, err = read(tx.AI(t.ID))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// changeAI runs change in one write transaction with its audit record, after (ai, MANAGE)
// with a fresh step-up, and writes what it returns with status (204: no body).
func changeAI[T any](s *Server, w http.ResponseWriter, r *http.Request, p *tutela.Principal, status int,
	change func(st sqlstore.AI) (T, error)) {
	var out T
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResAI)
		if err != nil {
			return err
		}
		out, err = change(tx.AI(t.ID))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	middleware.WriteJSON(w, status, out)
}

// putStatus is 201 when a PUT made the resource, 200 when it replaced one.
func putStatus(made bool) int {
	if made {
		return http.StatusCreated
	}
	return http.StatusOK
}

// aiProviderRequest is a provider's creation (POST) or change (PATCH): absent fields keep
// their value (or the default, at creation).
type aiProviderRequest struct {
	Name           *string       `json:"name"`
	BaseURL        *string       `json:"base_url"`
	AuthStyle      *ai.AuthStyle `json:"auth_style"`
	TimeoutSeconds *int          `json:"timeout_seconds"`
	MaxRetries     *int          `json:"max_retries"`
	Disabled       *bool         `json:"disabled"`
}

// apply copies the request's fields onto pr. A timeout of 0 is refused rather than read as
// "the default", which is what ai.Provider.Check makes of an absent one.
func (q *aiProviderRequest) apply(pr *ai.Provider) error {
	if q.TimeoutSeconds != nil && *q.TimeoutSeconds == 0 {
		return tutela.FieldErrorf("timeout_seconds", "timeout_seconds must be between 1 and %d", ai.MaxTimeoutSeconds)
	}
	if q.Name != nil {
		pr.Name = *q.Name
	}
	if q.BaseURL != nil {
		pr.BaseURL = *q.BaseURL
	}
	if q.AuthStyle != nil {
		pr.AuthStyle = *q.AuthStyle
	}
	if q.TimeoutSeconds != nil {
		pr.TimeoutSeconds = *q.TimeoutSeconds
	}
	if q.MaxRetries != nil {
		pr.MaxRetries = *q.MaxRetries
	}
	if q.Disabled != nil {
		pr.Disabled = *q.Disabled
	}
	return nil
}

// withKeyList makes a provider without keys show "keys": [] rather than null.
func withKeyList(pr *ai.Provider) *ai.Provider {
	if pr.Keys == nil {
		pr.Keys = []ai.KeyInfo{}
	}
	return pr
}

func (s *Server) listAIProviders(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (map[string]any, error) {
		list, err := st.Providers(r.Context())
		for _, pr := range list {
			withKeyList(pr)
		}
		if list == nil {
			list = []*ai.Provider{}
		}
		return map[string]any{"providers": list}, err
	})
}

func (s *Server) getAIProvider(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (*ai.Provider, error) {
		pr, err := st.Provider(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return withKeyList(pr), nil
	})
}

// createAIProvider adds a provider without a key; POST …/keys gives it one.
func (s *Server) createAIProvider(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req aiProviderRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	pr := &ai.Provider{MaxRetries: ai.DefaultMaxRetries}
	changeAI(s, w, r, p, http.StatusCreated, func(st sqlstore.AI) (*ai.Provider, error) {
		if err := req.apply(pr); err != nil {
			return nil, err
		}
		if err := pr.Check(); err != nil {
			return nil, err
		}
		if err := st.CreateProvider(r.Context(), pr); err != nil {
			return nil, err
		}
		return withKeyList(pr), nil
	})
}

func (s *Server) patchAIProvider(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req aiProviderRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	changeAI(s, w, r, p, http.StatusOK, func(st sqlstore.AI) (*ai.Provider, error) {
		pr, err := st.Provider(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := req.apply(pr); err != nil {
			return nil, err
		}
		if err := pr.Check(); err != nil {
			return nil, err
		}
		if err := st.UpdateProvider(r.Context(), pr); err != nil {
			return nil, err
		}
		return withKeyList(pr), nil
	})
}

func (s *Server) deleteAIProvider(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	changeAI(s, w, r, p, http.StatusNoContent, func(st sqlstore.AI) (any, error) {
		return nil, st.DeleteProvider(r.Context(), r.PathValue("id"))
	})
}

// addAIProviderKey seals a new API key and makes it the provider's primary: the previous one
// keeps serving as the fallback, an older one is retired (rotation without a failed request).
// The key never leaves this handler but into the store: it is not echoed, and the request's
// audit record lists the body's field names only.
func (s *Server) addAIProviderKey(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		Key string `json:"key"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	key := tutela.NewSecret(req.Key)
	createdBy := p.UserID
	changeAI(s, w, r, p, http.StatusCreated, func(st sqlstore.AI) (*ai.KeyInfo, error) {
		if err := ai.CheckKey(key.Reveal()); err != nil {
			return nil, err
		}
		return st.AddKey(r.Context(), r.PathValue("id"), key, createdBy)
	})
}

func (s *Server) deleteAIProviderKey(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	changeAI(s, w, r, p, http.StatusNoContent, func(st sqlstore.AI) (any, error) {
		return nil, st.DeleteKey(r.Context(), r.PathValue("id"), r.PathValue("key_id"))
	})
}

func (s *Server) listAIModels(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (map[string]any, error) {
		list, err := st.Models(r.Context())
		if list == nil {
			list = []*ai.Model{}
		}
		return map[string]any{"models": list}, err
	})
}

func (s *Server) getAIModel(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (*ai.Model, error) {
		return st.Model(r.Context(), r.PathValue("name"))
	})
}

// putAIModel allows a model (201) or replaces where it is served (200).
func (s *Server) putAIModel(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		ProviderID string       `json:"provider_id"`
		Upstream   string       `json:"upstream"`
		Kind       ai.ModelKind `json:"kind"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	m := &ai.Model{Name: r.PathValue("name"), ProviderID: req.ProviderID, Upstream: req.Upstream, Kind: req.Kind}
	var made bool
	var out *ai.Model
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResAI)
		if err != nil {
			return err
		}
		if err := m.Check(); err != nil {
			return err
		}
		st := tx.AI(t.ID)
		_, err = st.Model(r.Context(), m.Name)
		if made = tutela.ErrorCode(err) == tutela.ENOTFOUND; err != nil && !made {
			return err
		}
		if err := st.PutModel(r.Context(), m); err != nil {
			return err
		}
		out, err = st.Model(r.Context(), m.Name)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, putStatus(made), out)
}

func (s *Server) deleteAIModel(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	changeAI(s, w, r, p, http.StatusNoContent, func(st sqlstore.AI) (any, error) {
		return nil, st.DeleteModel(r.Context(), r.PathValue("name"))
	})
}

func (s *Server) listAIPurposes(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (map[string]any, error) {
		list, err := st.Purposes(r.Context())
		if list == nil {
			list = []*ai.Purpose{}
		}
		return map[string]any{"purposes": list}, err
	})
}

func (s *Server) getAIPurpose(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (*ai.Purpose, error) {
		return st.Purpose(r.Context(), r.PathValue("purpose"))
	})
}

// putAIPurpose lets a processing purpose use the gateway with the models it lists (201), or
// replaces what it allows (200).
func (s *Server) putAIPurpose(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		Models          []string `json:"models"`
		MaxOutputTokens int      `json:"max_output_tokens"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	pu := &ai.Purpose{Purpose: r.PathValue("purpose"), Models: req.Models, MaxOutputTokens: req.MaxOutputTokens,
		UpdatedBy: p.UserID}
	var made bool
	var out *ai.Purpose
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResAI)
		if err != nil {
			return err
		}
		if err := pu.Check(); err != nil {
			return err
		}
		st := tx.AI(t.ID)
		_, err = st.Purpose(r.Context(), pu.Purpose)
		if made = tutela.ErrorCode(err) == tutela.ENOTFOUND; err != nil && !made {
			return err
		}
		if err := st.PutPurpose(r.Context(), pu); err != nil {
			return err
		}
		out, err = st.Purpose(r.Context(), pu.Purpose)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, putStatus(made), out)
}

func (s *Server) deleteAIPurpose(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	changeAI(s, w, r, p, http.StatusNoContent, func(st sqlstore.AI) (any, error) {
		return nil, st.DeletePurpose(r.Context(), r.PathValue("purpose"))
	})
}

func (s *Server) getAISettings(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (*ai.Settings, error) { return st.Settings(r.Context()) })
}

// putAISettings replaces the tenant's limits and detectors. Every field is required: an
// omitted budget would otherwise read as 0, unlimited, and an omitted country list would turn
// detectors off, so a client that forgets a field would loosen the gateway without saying so.
// Raising a token budget (or lifting it: 0) spends more of the tenant's money and is what the
// tenant's policy for ai.budget_increase may put behind approval, with the whole new settings
// as what is approved; lowering one never waits.
func (s *Server) putAISettings(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		RequestsPerMinute *int      `json:"requests_per_minute"`
		TokensPerDay      *int64    `json:"tokens_per_day"`
		TokensPerMonth    *int64    `json:"tokens_per_month"`
		IDCountries       *[]string `json:"id_countries"`
		approvalFields
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out *ai.Settings
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResAI)
		if err != nil {
			return err
		}
		for _, f := range []struct {
			name  string
			given bool
		}{{"requests_per_minute", req.RequestsPerMinute != nil}, {"tokens_per_day", req.TokensPerDay != nil},
			{"tokens_per_month", req.TokensPerMonth != nil}, {"id_countries", req.IDCountries != nil}} {
			if !f.given {
				return tutela.FieldErrorf(f.name, "%s is required (0 or [] for none)", f.name)
			}
		}
		st := &ai.Settings{RequestsPerMinute: *req.RequestsPerMinute, TokensPerDay: *req.TokensPerDay,
			TokensPerMonth: *req.TokensPerMonth, IDCountries: *req.IDCountries}
		if err := st.Check(); err != nil {
			return err
		}
		store := tx.AI(t.ID)
		old, err := store.Settings(r.Context())
		if err != nil {
			return err
		}
		// A call naming an approval spends it even when it raises nothing (any more): run twice,
		// the second is refused as executed rather than passing as a no-op.
		if budgetRaised(old.TokensPerDay, st.TokensPerDay) || budgetRaised(old.TokensPerMonth, st.TokensPerMonth) || req.ApprovalID != "" {
			g := gated{Action: approvals.ActionCreditTopUp, TargetType: "tenant", TargetID: t.ID,
				Params: map[string]any{"requests_per_minute": st.RequestsPerMinute, "tokens_per_day": st.TokensPerDay,
					"tokens_per_month": st.TokensPerMonth, "id_countries": nonNilStrings(st.IDCountries)},
				approvalFields: req.approvalFields}
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		if err := store.PutSettings(r.Context(), st); err != nil {
			return err
		}
		out, err = store.Settings(r.Context())
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// budgetRaised reports whether a token budget goes from old to next upwards: a larger limit,
// or none (0) where there was one. From none, every limit lowers it.
func budgetRaised(old, next int64) bool {
	return old != 0 && (next == 0 || next > old)
}

// getAIUsage shows this minute's, day's and month's counts beside the limits they are held to.
func (s *Server) getAIUsage(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	viewAI(s, w, r, p, func(st sqlstore.AI) (*sqlstore.AIUsage, error) { return st.Usage(r.Context()) })
}
