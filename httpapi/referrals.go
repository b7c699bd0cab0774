package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/notify"
	"tutela/partners"
	"tutela/referrals"
	"tutela/sqlstore"
	"tutela/vault"
	"tutela/webhooks"
)

// Tracked referrals (issue 18). A referral sends a subject to one of the tenant's partners
// through a signed, expiring, single-use redirect whose URL carries only the referral's token
// (referrals/token.go); the partner confirms through the API as its own service account. The
// token is in the public route's path: the audit log and the access log record the route
// pattern, never the path, so the token reaches neither.

const (
	referralsBase        = "/v1/tenants/{tenant}/referrals"
	referralRedirectBase = "/v1/referrals/r/"
)

func (s *Server) referralRoutes() {
	s.handle("POST", referralsBase, false, s.authed(false, s.createReferral))
	s.handle("GET", referralsBase, false, s.authed(false, s.listReferrals))
	s.handle("GET", referralsBase+"/{id}", false, s.authed(false, s.getReferral))
	s.handle("POST", referralsBase+"/{id}/cancel", false, s.authed(false, s.cancelReferral))
	s.handle("GET", referralRedirectBase+"{token}", true, s.openReferral)
	s.handle("POST", "/v1/referrals/confirm", false, s.authed(false, s.confirmReferral))
}

type referralRequest struct {
	SubjectID     string `json:"subject_id"`
	PartnerID     string `json:"partner_id"`
	Purpose       string `json:"purpose"`
	TargetURL     string `json:"target_url"`
	Justification string `json:"justification"`
	// TTLSeconds is the referral's lifetime (default 7 days, at most 30): it must be opened,
	// confirmed and closed within it.
	TTLSeconds *int `json:"ttl_seconds"`
}

type referralCreated struct {
	referrals.Referral
	// RedirectURL is what the person is given: this API's public URL (or, when none is
	// configured, the path relative to it) ending in the token. No personal data.
	RedirectURL string `json:"redirect_url"`
}

// createReferral checks, in order, the partner (the tenant's: 404; active: 409), the target (one
// of the partner's redirect URLs exactly: 400 target_url), the subject (404) and its consent
// for the purpose (403 consent_required / processing_restricted), and the tenant's mode (not
// simulation: 409); any refusal stores nothing (sqlstore.Referrals.Create). Then it signs the
// token and answers the redirect URL.
func (s *Server) createReferral(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req referralRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ttl := referrals.DefaultTTL
	if req.TTLSeconds != nil {
		// Compared in seconds, before converting: a huge value must not wrap into range.
		if n := *req.TTLSeconds; n < int(referrals.MinTTL/time.Second) || n > int(referrals.MaxTTL/time.Second) {
			middleware.WriteError(w, r, tutela.FieldErrorf("ttl_seconds", "ttl_seconds must be between %d and %d",
				int(referrals.MinTTL.Seconds()), int(referrals.MaxTTL.Seconds())))
			return
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	ref := &referrals.Referral{ID: tutela.NewID(), PartnerID: req.PartnerID, SubjectID: req.SubjectID, Purpose: req.Purpose,
		TargetURL: req.TargetURL, Justification: req.Justification, CreatedBy: p.UserID, ExpiresAt: s.d.Clock().Add(ttl)}
	var token string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResReferrals)
		if err != nil {
			return err
		}
		// As for download links: the vault must not create the referrals keyset inside this
		// transaction; the first referral ever ends it, Update creates the keyset and runs again.
		if token, err = (referrals.Signer{Vault: s.d.Keys}).Sign(vault.WithoutCreate(r.Context(), nil), ref); err != nil {
			return err
		}
		err = tx.Referrals(t.ID).Create(r.Context(), ref)
		switch tutela.ErrorCode(err) {
		case tutela.ECONSENTREQUIRED, tutela.ERESTRICTED:
			return noteRefusal(r.Context(), r, ref.SubjectID, ref.Purpose, err)
		case "":
			return notifyReferral(r.Context(), tx, ref, webhooks.ReferralCreated)
		}
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, referralCreated{Referral: *ref, RedirectURL: s.referralPublicURL(referralRedirectBase + token)})
}

// referralPublicURL is path under the configured public URL, or path alone when none is configured.
func (s *Server) referralPublicURL(path string) string {
	if s.d.Identity != nil && s.d.Identity.PublicURL != "" {
		return strings.TrimRight(s.d.Identity.PublicURL, "/") + path
	}
	return path
}

// partnerScope is the partner a principal whose policy is pol acts for ("" for the tenant's own
// people and the platform), as its policy names it: a partner's users and service accounts see
// only their partner's referrals, and nothing while the partner is disabled (403).
func partnerScope(r *http.Request, tx *sqlstore.Tx, pol *authz.Policy, tenantID string) (string, error) {
	if pol.Partner == "" {
		return "", nil
	}
	pt, err := tx.Partners(tenantID).Get(r.Context(), pol.Partner)
	if err != nil {
		return "", err
	}
	if pt.Status != partners.StatusActive {
		return "", tutela.Errorf(tutela.EFORBIDDEN, "your partner organisation is disabled")
	}
	return pt.ID, nil
}

func (s *Server) listReferrals(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	q := r.URL.Query()
	f := sqlstore.ReferralFilter{State: referrals.State(q.Get("state")), SubjectID: q.Get("subject_id"), PartnerID: q.Get("partner_id")}
	var out []referrals.Referral
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResReferrals)
		if err != nil {
			return err
		}
		scope, err := partnerScope(r, tx, pol, t.ID)
		if err != nil {
			return err
		}
		if scope != "" {
			if f.PartnerID != "" && f.PartnerID != scope {
				out = []referrals.Referral{}
				return nil
			}
			f.PartnerID = scope
		}
		out, err = tx.Referrals(t.ID).List(r.Context(), f)
		if scope != "" {
			for i := range out {
				out[i] = out[i].PartnerView()
			}
		}
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"referrals": out})
}

func (s *Server) getReferral(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var ref *referrals.Referral
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResReferrals)
		if err != nil {
			return err
		}
		scope, err := partnerScope(r, tx, pol, t.ID)
		if err != nil {
			return err
		}
		if ref, err = tx.Referrals(t.ID).Get(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		if scope != "" {
			if ref.PartnerID != scope {
				return tutela.Errorf(tutela.ENOTFOUND, "referral not found")
			}
			v := ref.PartnerView()
			ref = &v
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, ref)
}

type referralCancelRequest struct {
	Justification string `json:"justification"`
}

func (s *Server) cancelReferral(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req referralCancelRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var ref *referrals.Referral
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Delete, authz.ResReferrals)
		if err != nil {
			return err
		}
		ref, err = tx.Referrals(t.ID).Cancel(r.Context(), r.PathValue("id"), p.UserID, req.Justification)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, ref)
}

// openReferral is the link the person follows: verified (malformed, forged, retired key: 404;
// expired: 410), spent once (cancelled, expired, already opened: 410 link_gone), then 303 to
// the partner's exact URL with referral=<token> added. Nothing about the person is in either
// URL; Referrer-Policy keeps this one out of the partner's logs, no-store out of caches.
func (s *Server) openReferral(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// HEAD (which a GET route also answers) would spend the link: link previews and mail
		// scanners send it.
		w.Header().Set("Allow", http.MethodGet)
		middleware.WriteError(w, r, tutela.Errorf(tutela.EMETHODNOTALLOWED, "referral links answer GET only"))
		return
	}
	token := r.PathValue("token")
	claims, err := referrals.Signer{Vault: s.d.Keys}.Verify(r.Context(), token, s.d.Clock())
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var ref *referrals.Referral
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		if ref, err = tx.OpenReferral(r.Context(), claims.ReferralID, claims.KeyID, claims.ExpiresAt); err != nil {
			return err
		}
		return notifyReferral(r.Context(), tx, ref, webhooks.ReferralOpened)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	dest, err := referrals.Destination(ref.TargetURL, token)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Location", dest)
	w.WriteHeader(http.StatusSeeOther)
}

type referralConfirmRequest struct {
	Token   string           `json:"token"`
	Status  referrals.Status `json:"status"`
	Outcome string           `json:"outcome"`
}

// referralReceipt is what a partner learns back: the referral's progress, nothing of the
// subject, the purpose or the tenant's justification.
type referralReceipt struct {
	ID          string          `json:"id"`
	State       referrals.State `json:"state"`
	Outcome     string          `json:"outcome"`
	OpenedAt    *time.Time      `json:"opened_at,omitempty"`
	ConfirmedAt *time.Time      `json:"confirmed_at,omitempty"`
	ClosedAt    *time.Time      `json:"closed_at,omitempty"`
}

// confirmReferral is a partner's report, as its service account: a user is refused (403), a
// service account acting for no partner too (403), one without referrals UPDATE too (403);
// another partner's referral is not found (404); the token is checked as the link's.
func (s *Server) confirmReferral(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if p.Kind != tutela.PrincipalServiceAccount {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EFORBIDDEN, "only a partner's service account confirms referrals"))
		return
	}
	var req referralConfirmRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	claims, err := referrals.Signer{Vault: s.d.Keys}.Verify(r.Context(), req.Token, s.d.Clock())
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var ref *referrals.Referral
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		pol, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Update, Resource: authz.ResReferrals})
		if err != nil {
			return err
		}
		partner := pol.Partner
		if partner == "" {
			return tutela.Errorf(tutela.EFORBIDDEN, "this service account acts for no partner organisation")
		}
		if ref, err = tx.Referrals(p.TenantID).Confirm(r.Context(), *claims, p.UserID, partner, req.Status, req.Outcome); err != nil {
			return err
		}
		ev := webhooks.ReferralConfirmed
		if ref.State == referrals.StateClosed {
			ev = webhooks.ReferralClosed
		}
		return notifyReferral(r.Context(), tx, ref, ev)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, referralReceipt{ID: ref.ID, State: ref.State, Outcome: ref.Outcome,
		OpenedAt: ref.OpenedAt, ConfirmedAt: ref.ConfirmedAt, ClosedAt: ref.ClosedAt})
}

// notifyReferral tells the tenant's systems (its webhooks subscribed to the event) where a
// referral is, in the transaction of the change: the referral's and partner's IDs and its state,
// never the subject, the purpose, the justification or the partner's outcome text.
func notifyReferral(ctx context.Context, tx *sqlstore.Tx, ref *referrals.Referral, eventType string) error {
	return notify.Enqueue(ctx, tx, notify.Event{TenantID: ref.TenantID, Type: eventType,
		Subject: "Referral " + string(ref.State), Text: "Referral " + ref.ID + " is " + string(ref.State) + ".",
		Data: map[string]any{"referral_id": ref.ID, "partner_id": ref.PartnerID, "state": string(ref.State),
			"url": "/v1/tenants/" + ref.TenantID + "/referrals/" + ref.ID}})
}
