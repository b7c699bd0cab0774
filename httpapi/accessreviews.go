package httpapi

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// accessReviewRoutes registers the access review endpoints (issue 6): open a review of every
// grant in a tenant, decide on each, close it, export it.
func (s *Server) accessReviewRoutes() {
	const base = "/v1/tenants/{tenant}/access-reviews"
	s.handle("POST", base, false, s.authed(false, s.openAccessReview))
	s.handle("GET", base, false, s.authed(false, s.listAccessReviews))
	s.handle("GET", base+"/{review}", false, s.authed(false, s.getAccessReview))
	s.handle("POST", base+"/{review}/items/{item}", false, s.authed(false, s.decideAccessReviewItem))
	s.handle("POST", base+"/{review}/close", false, s.authed(false, s.closeAccessReview))
	s.handle("GET", base+"/{review}/export.csv", false, s.authed(false, s.exportAccessReview))
}

type openReviewRequest struct {
	Deadline    *time.Time `json:"deadline"`
	AutoRevoke  bool       `json:"auto_revoke"`
	DormantDays *int       `json:"dormant_days"`
}

func (s *Server) openAccessReview(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req openReviewRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	rev := &sqlstore.AccessReview{AutoRevoke: req.AutoRevoke, CreatedBy: p.UserID, DormantDays: sqlstore.DefaultDormantDays}
	if req.Deadline != nil {
		rev.Deadline = *req.Deadline
	}
	if req.DormantDays != nil {
		if *req.DormantDays == 0 {
			middleware.WriteError(w, r, tutela.FieldErrorf("dormant_days", "dormant_days must be 1-3650"))
			return
		}
		rev.DormantDays = *req.DormantDays
	}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResAccessReviews)
		if err != nil {
			return err
		}
		return tx.AccessReviews(t.ID).Open(r.Context(), rev)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	rev.Items = nil // the snapshot can be large: GET the review for its items
	middleware.WriteJSON(w, http.StatusCreated, rev)
}

func (s *Server) listAccessReviews(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out []*sqlstore.AccessReview
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResAccessReviews)
		if err != nil {
			return err
		}
		out, err = tx.AccessReviews(t.ID).List(r.Context(), cursor, limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	next := ""
	if len(out) == limit {
		next = out[len(out)-1].ID
	}
	if out == nil {
		out = []*sqlstore.AccessReview{}
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"access_reviews": out, "next_cursor": next})
}

// loadReview runs in a read transaction: the {tenant}/{review} review with its items, once p
// may do action on access reviews there.
func (s *Server) loadReview(r *http.Request, p *tutela.Principal, action authz.Action, pendingOnly bool) (*sqlstore.AccessReview, *authz.Policy, error) {
	var rev *sqlstore.AccessReview
	var pol *authz.Policy
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pl, err := s.authorize(r, tx, p, action, authz.ResAccessReviews)
		if err != nil {
			return err
		}
		pol = pl
		reviews := tx.AccessReviews(t.ID)
		if rev, err = reviews.Get(r.Context(), r.PathValue("review")); err != nil {
			return err
		}
		rev.Items, err = reviews.Items(r.Context(), rev.ID, pendingOnly)
		return err
	})
	return rev, pol, err
}

func (s *Server) getAccessReview(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	pending := false
	switch v := r.URL.Query().Get("pending"); v {
	case "", "false":
	case "true":
		pending = true
	default:
		middleware.WriteError(w, r, tutela.FieldErrorf("pending", "pending must be true or false"))
		return
	}
	rev, pol, err := s.loadReview(r, p, authz.Read, pending)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	items := s.maskReviewItems(rev.Items, rev.TenantID, pol.Masks)
	if items == nil {
		items = []*sqlstore.AccessReviewItem{}
	}
	middleware.WriteJSON(w, http.StatusOK, reviewDetail{AccessReview: rev, Items: items})
}

// reviewDetail is a review with its items, always listed (a plain review omits them).
type reviewDetail struct {
	*sqlstore.AccessReview
	Items []*sqlstore.AccessReviewItem `json:"items"`
}

type decideRequest struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
}

// decideAccessReviewItem records a keep or revoke (access_reviews REVIEW). A revoke removes the
// grant in the same transaction. Reviewers need not hold what they revoke — taking access away
// is the review's purpose — but nobody decides on their own grants, the last programme
// administrator stays, and super_admin is revoked only by a super-admin.
func (s *Server) decideAccessReviewItem(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req decideRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var it *sqlstore.AccessReviewItem
	var masks map[string]authz.Mask
	var tenantID string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Review, authz.ResAccessReviews)
		if err != nil {
			return err
		}
		masks, tenantID = pol.Masks, t.ID
		it, err = tx.AccessReviews(t.ID).Decide(r.Context(), r.PathValue("review"), r.PathValue("item"), sqlstore.ItemDecision{
			Decision: req.Decision, Comment: req.Comment, ReviewerID: p.UserID, Platform: isPlatform(p)})
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, s.maskReviewItems([]*sqlstore.AccessReviewItem{it}, tenantID, masks)[0])
}

// closeAccessReview ends a review, at or before its deadline (access_reviews MANAGE), and
// reports what became of every grant nobody decided.
func (s *Server) closeAccessReview(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var rev *sqlstore.AccessReview
	var undecided []*sqlstore.AccessReviewItem
	var masks map[string]authz.Mask
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResAccessReviews)
		if err != nil {
			return err
		}
		masks = pol.Masks
		rev, undecided, err = tx.AccessReviews(t.ID).Close(r.Context(), r.PathValue("review"), p.UserID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	undecided = s.maskReviewItems(undecided, rev.TenantID, masks)
	if undecided == nil {
		undecided = []*sqlstore.AccessReviewItem{}
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"review": rev, "undecided": undecided})
}

// reviewCSVHeader is the export's first row.
var reviewCSVHeader = []string{"user_id", "user_email", "kind", "grant", "last_login_at", "dormant", "decision", "decided_by", "decided_at", "comment"}

// exportAccessReview writes the review as CSV (access_reviews EXPORT) for auditors and
// spreadsheets. Every cell goes through csvSafe, since e-mails and comments are user input
// that a spreadsheet would otherwise run as a formula.
func (s *Server) exportAccessReview(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	rev, pol, err := s.loadReview(r, p, authz.Export, false)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	items := s.maskReviewItems(rev.Items, rev.TenantID, pol.Masks)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="access-review-`+rev.ID+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(reviewCSVHeader)
	for _, it := range items {
		decision := it.Decision
		if decision == "" {
			decision = it.Outcome // unreviewed, auto_revoked, … once closed; empty while pending
		}
		row := []string{it.UserID, it.UserEmail, it.Kind, it.Description, csvTime(it.UserLastLoginAt),
			strconv.FormatBool(it.Dormant), decision, it.DecidedBy, csvTime(it.DecidedAt), it.Comment}
		for i := range row {
			row[i] = csvSafe(row[i])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// csvSafe neutralises CSV (formula) injection, following OWASP: a cell starting with = + - @,
// tab or carriage return is prefixed with a single quote so spreadsheets show it as text.
func csvSafe(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + v
	}
	return v
}

// maskReviewItems masks each item's user_email as users.email is masked for the principal:
// review items copy the address, so they are classified like it (and hashed as users.email of
// tenantID, so a hashed address matches the one in the users listing).
func (s *Server) maskReviewItems(items []*sqlstore.AccessReviewItem, tenantID string, masks map[string]authz.Mask) []*sqlstore.AccessReviewItem {
	m, ok := masks["users.email"]
	if !ok || m == authz.MaskFull {
		return items
	}
	out := make([]*sqlstore.AccessReviewItem, len(items))
	for i, it := range items {
		c := *it
		obj := map[string]any{"email": c.UserEmail}
		s.masker.ApplyScoped(obj, map[string]authz.Mask{"email": m}, tenantID, authz.ResUsers)
		c.UserEmail, _ = obj["email"].(string)
		out[i] = &c
	}
	return out
}
