package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
	"tutela/authz"
)

// Access review states, item kinds, decisions and close outcomes.
const (
	ReviewOpen   = "open"
	ReviewClosed = "closed"

	ReviewKindRole       = "role"
	ReviewKindPermission = "permission"

	DecisionKeep   = "keep"
	DecisionRevoke = "revoke"

	// Outcomes of items nobody decided, set when the review closes.
	OutcomeUnreviewed       = "unreviewed"         // reported; the grant stays
	OutcomeAutoRevoked      = "auto_revoked"       // the tenant chose auto_revoke
	OutcomeLastAdminKept    = "last_admin_kept"    // auto_revoke would have left no programme administrator
	OutcomePlatformRoleKept = "platform_role_kept" // super_admin is revoked only by a super-admin, never automatically
)

// DefaultDormantDays is how long without a sign-in flags an account as dormant unless the
// review says otherwise.
const DefaultDormantDays = 90

// MaxReviewPeriod bounds a review's deadline: a review left open for years certifies nothing.
const MaxReviewPeriod = 366 * 24 * time.Hour

// AccessReview is one re-certification of every grant in a tenant.
type AccessReview struct {
	ID          string              `json:"id"`
	TenantID    string              `json:"tenant_id"`
	CreatedBy   string              `json:"created_by,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	Deadline    time.Time           `json:"deadline"`
	AutoRevoke  bool                `json:"auto_revoke"`
	DormantDays int                 `json:"dormant_days"`
	Status      string              `json:"status"`
	ClosedAt    *time.Time          `json:"closed_at,omitempty"`
	ClosedBy    string              `json:"closed_by,omitempty"`
	Counts      ReviewCounts        `json:"counts"`
	Items       []*AccessReviewItem `json:"items,omitempty"`
}

// ReviewCounts summarises a review's items.
type ReviewCounts struct {
	Items       int `json:"items"`
	Pending     int `json:"pending"` // open and not yet decided
	Kept        int `json:"kept"`
	Revoked     int `json:"revoked"` // by a reviewer
	AutoRevoked int `json:"auto_revoked"`
	Unreviewed  int `json:"unreviewed"` // closed without a decision and not revoked
	Dormant     int `json:"dormant"`
}

// AccessReviewItem is one grant as it stood when the review opened, and what became of it.
// It copies the user's e-mail, the grant's text and the last sign-in instead of referencing
// them, so the record stays whole after the revocations and deletions the review leads to.
type AccessReviewItem struct {
	ID               string     `json:"id"`
	ReviewID         string     `json:"review_id"`
	UserID           string     `json:"user_id"`
	UserEmail        string     `json:"user_email,omitempty"`
	UserDisplayName  string     `json:"user_display_name"`
	Kind             string     `json:"kind"`
	RoleKey          string     `json:"role_key,omitempty"`
	UserPermissionID string     `json:"permission_grant_id,omitempty"`
	Description      string     `json:"description"`
	GrantExpiresAt   *time.Time `json:"grant_expires_at,omitempty"`
	UserLastLoginAt  *time.Time `json:"user_last_login_at,omitempty"`
	Dormant          bool       `json:"dormant"`
	Decision         string     `json:"decision,omitempty"`
	DecidedBy        string     `json:"decided_by,omitempty"`
	DecidedAt        *time.Time `json:"decided_at,omitempty"`
	Comment          string     `json:"comment,omitempty"`
	Outcome          string     `json:"outcome,omitempty"`
}

// Pending reports whether the item still awaits a decision.
func (it *AccessReviewItem) Pending() bool { return it.Decision == "" && it.Outcome == "" }

// AccessReviews is the access review repository of one tenant; every query carries the tenant.
type AccessReviews struct {
	tx       *Tx
	tenantID string
}

// AccessReviews returns tenantID's access review repository.
func (tx *Tx) AccessReviews(tenantID string) AccessReviews {
	return AccessReviews{tx: tx, tenantID: tenantID}
}

var errReviewNotFound = tutela.Errorf(tutela.ENOTFOUND, "access review not found")
var errReviewItemNotFound = tutela.Errorf(tutela.ENOTFOUND, "access review item not found")

// Open validates r (Deadline, AutoRevoke, DormantDays, CreatedBy), stores it and snapshots every
// unexpired role grant and per-user allow of every user in the tenant as its items. Denies are
// not snapshotted: they only narrow access, and revoking one would widen it.
func (a AccessReviews) Open(ctx context.Context, r *AccessReview) error {
	now := a.tx.now
	r.Deadline = r.Deadline.UTC().Truncate(time.Microsecond) // what both dialects store
	if r.DormantDays == 0 {
		r.DormantDays = DefaultDormantDays
	}
	switch {
	case r.Deadline.IsZero():
		return tutela.FieldErrorf("deadline", "deadline is required")
	case !r.Deadline.After(now):
		return tutela.FieldErrorf("deadline", "deadline must be in the future")
	case r.Deadline.Sub(now) > MaxReviewPeriod:
		return tutela.FieldErrorf("deadline", "deadline must be within a year")
	case r.DormantDays < 1 || r.DormantDays > 3650:
		return tutela.FieldErrorf("dormant_days", "dormant_days must be 1-3650")
	}
	if err := a.tx.lockTenant(ctx, a.tenantID); err != nil {
		return err
	}
	n, err := a.tx.count(ctx, `SELECT count(*) FROM access_reviews WHERE tenant_id = $1 AND status = 'open'`, a.tenantID)
	if err != nil {
		return err
	}
	if n >= MaxOpenReviewsPerTenant {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d access reviews open at once; close one first", MaxOpenReviewsPerTenant)
	}
	r.ID, r.TenantID, r.CreatedAt, r.Status = tutela.NewID(), a.tenantID, now, ReviewOpen
	r.ClosedAt, r.ClosedBy = nil, ""
	_, err = a.tx.exec(ctx, `INSERT INTO access_reviews (id, tenant_id, created_by, created_at, deadline, auto_revoke, dormant_days, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, a.tenantID, nullID(r.CreatedBy), now, r.Deadline, r.AutoRevoke, r.DormantDays, ReviewOpen)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return err
	}
	items, err := a.snapshot(ctx, r)
	if err != nil {
		return err
	}
	for _, it := range items {
		// The copies of the user's e-mail and name are sealed under the user's person key, so
		// erasing the user shreds them with every other copy.
		email, err := a.tx.sealFor(ctx, a.tenantID, it.UserID, fieldItemEmail, it.ID, it.UserEmail)
		if err != nil {
			return err
		}
		name, err := a.tx.sealFor(ctx, a.tenantID, it.UserID, fieldItemName, it.ID, it.UserDisplayName)
		if err != nil {
			return err
		}
		_, err = a.tx.exec(ctx, `INSERT INTO access_review_items (id, review_id, tenant_id, user_id, user_email, user_display_name,
			kind, role_key, user_permission_id, description, grant_expires_at, user_last_login_at, dormant,
			user_email_sealed, user_display_name_sealed)
			VALUES ($1, $2, $3, $4, '', '', $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			it.ID, r.ID, a.tenantID, it.UserID, it.Kind, nullID(it.RoleKey), nullID(it.UserPermissionID),
			it.Description, optTimeArg(it.GrantExpiresAt), optTimeArg(it.UserLastLoginAt), it.Dormant, email, name)
		if err != nil {
			return err
		}
	}
	r.Items = items
	r.Counts = ReviewCounts{Items: len(items), Pending: len(items)}
	for _, it := range items {
		if it.Dormant {
			r.Counts.Dormant++
		}
	}
	return a.tx.Record(ctx, "access_review.open", a.tenantID, "access_review", r.ID, "", map[string]any{
		"deadline": r.Deadline.Format(time.RFC3339), "auto_revoke": r.AutoRevoke, "dormant_days": r.DormantDays,
		"items": len(items), "dormant": r.Counts.Dormant})
}

// snapshot reads the tenant's current grants. Every row is read before anything is written:
// PostgreSQL cannot run a statement on a connection with open rows.
func (a AccessReviews) snapshot(ctx context.Context, r *AccessReview) ([]*AccessReviewItem, error) {
	now := a.tx.now
	dormantBefore := now.Add(-time.Duration(r.DormantDays) * 24 * time.Hour)
	var items []*AccessReviewItem
	var sealed []*sealedUser
	// An account that never signed in counts from its creation, so a new account is not dormant
	// but one created long ago and never used is.
	scan := func(rows *sql.Rows, kind string) error {
		defer rows.Close()
		for rows.Next() {
			it := &AccessReviewItem{ID: tutela.NewID(), ReviewID: r.ID, Kind: kind}
			var created time.Time
			var last, exp sql.NullTime
			var res, action, maxClass string
			var su sealedUser
			dest := []any{&it.UserID, &su.email, &su.name, &created, &last, &exp}
			if kind == ReviewKindRole {
				dest = append(dest, &it.RoleKey)
			} else {
				dest = append(dest, &it.UserPermissionID, &res, &action, &maxClass)
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			it.GrantExpiresAt, it.UserLastLoginAt = optTime(exp), optTime(last)
			seen := created.UTC()
			if it.UserLastLoginAt != nil {
				seen = *it.UserLastLoginAt
			}
			it.Dormant = !seen.After(dormantBefore)
			if kind == ReviewKindRole {
				it.Description = "role " + it.RoleKey
			} else {
				p := authz.Permission{Resource: res, Action: authz.Action(action), MaxClass: authz.Classification(maxClass)}
				it.Description = string(authz.Allow) + " " + p.String()
			}
			items, sealed = append(items, it), append(sealed, &su)
		}
		return rows.Err()
	}
	rows, err := a.tx.query(ctx, `SELECT u.id, u.email_sealed, u.display_name_sealed, u.created_at, u.last_login_at, ur.expires_at, ro.key
		FROM user_roles ur JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id JOIN roles ro ON ro.id = ur.role_id
		WHERE ur.tenant_id = $1 AND (ur.expires_at IS NULL OR ur.expires_at > $2)
		ORDER BY ro.key`, a.tenantID, now)
	if err != nil {
		return nil, err
	}
	if err := scan(rows, ReviewKindRole); err != nil {
		return nil, err
	}
	nRoles := len(items)
	rows, err = a.tx.query(ctx, `SELECT u.id, u.email_sealed, u.display_name_sealed, u.created_at, u.last_login_at, up.expires_at,
		CAST(up.id AS TEXT), p.resource_type, p.action, COALESCE(p.max_classification, '')
		FROM user_permissions up JOIN users u ON u.tenant_id = up.tenant_id AND u.id = up.user_id
		JOIN permissions p ON p.id = up.permission_id
		WHERE up.tenant_id = $1 AND up.effect = 'allow' AND (up.expires_at IS NULL OR up.expires_at > $2)
		ORDER BY up.granted_at, up.id`, a.tenantID, now)
	if err != nil {
		return nil, err
	}
	if err := scan(rows, ReviewKindPermission); err != nil {
		return nil, err
	}
	users := a.tx.Users(a.tenantID)
	for i, it := range items {
		u := &tutela.User{ID: it.UserID, TenantID: a.tenantID}
		if err := users.openListed(ctx, u, sealed[i]); err != nil {
			return nil, err
		}
		it.UserEmail, it.UserDisplayName = u.Email, u.DisplayName
	}
	// By address, as the reviewer reads them (the database holds only ciphertexts to sort).
	byEmail := func(x, y *AccessReviewItem) int {
		return strings.Compare(tutela.NormalizeEmail(x.UserEmail), tutela.NormalizeEmail(y.UserEmail))
	}
	slices.SortStableFunc(items[:nRoles], byEmail)
	slices.SortStableFunc(items[nRoles:], byEmail)
	return items, nil
}

const reviewCols = `r.id, r.tenant_id, COALESCE(CAST(r.created_by AS TEXT), ''), r.created_at, r.deadline, r.auto_revoke,
	r.dormant_days, r.status, r.closed_at, COALESCE(CAST(r.closed_by AS TEXT), ''),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.decision IS NULL AND i.outcome IS NULL),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.decision = 'keep'),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.decision = 'revoke'),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.outcome = 'auto_revoked'),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.outcome IS NOT NULL AND i.outcome <> 'auto_revoked'),
	(SELECT count(*) FROM access_review_items i WHERE i.tenant_id = r.tenant_id AND i.review_id = r.id AND i.dormant)`

func scanReview(row interface{ Scan(...any) error }) (*AccessReview, error) {
	var r AccessReview
	var closed sql.NullTime
	c := &r.Counts
	err := row.Scan(&r.ID, &r.TenantID, &r.CreatedBy, &r.CreatedAt, &r.Deadline, &r.AutoRevoke, &r.DormantDays, &r.Status, &closed,
		&r.ClosedBy, &c.Items, &c.Pending, &c.Kept, &c.Revoked, &c.AutoRevoked, &c.Unreviewed, &c.Dormant)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errReviewNotFound
	}
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.Deadline, r.ClosedAt = r.CreatedAt.UTC(), r.Deadline.UTC(), optTime(closed)
	return &r, nil
}

// Get returns the tenant's review with counts but without items. Another tenant's review is
// not found.
func (a AccessReviews) Get(ctx context.Context, id string) (*AccessReview, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(a.tenantID) {
		return nil, errReviewNotFound
	}
	return scanReview(a.tx.queryRow(ctx, `SELECT `+reviewCols+` FROM access_reviews r WHERE r.tenant_id = $1 AND r.id = $2`, a.tenantID, id))
}

// List returns up to limit of the tenant's reviews ordered by ID (creation order), after
// cursor ("" = start).
func (a AccessReviews) List(ctx context.Context, cursor string, limit int) ([]*AccessReview, error) {
	if !tutela.ValidID(a.tenantID) {
		return nil, nil
	}
	rows, err := a.tx.query(ctx, `SELECT `+reviewCols+` FROM access_reviews r WHERE r.tenant_id = $1 AND r.id > $2
		ORDER BY r.id LIMIT $3`, a.tenantID, cursorID(cursor), clampLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AccessReview
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Fields the user's person key seals review items' copies under.
const (
	fieldItemEmail = "access_review_items.user_email"
	fieldItemName  = "access_review_items.user_display_name"
)

const itemCols = `id, review_id, user_id, user_email_sealed, user_display_name_sealed, kind, COALESCE(role_key, ''),
	COALESCE(CAST(user_permission_id AS TEXT), ''), description, grant_expires_at, user_last_login_at, dormant,
	COALESCE(decision, ''), COALESCE(CAST(decided_by AS TEXT), ''), decided_at, comment, COALESCE(outcome, '')`

// scannedItem is an item with its sealed copies of the user's e-mail and name, opened by
// openItems once the rows are closed (opening reads person_keys).
type scannedItem struct {
	*AccessReviewItem
	email, name []byte
}

func scanItem(row interface{ Scan(...any) error }) (*scannedItem, error) {
	var it AccessReviewItem
	si := &scannedItem{AccessReviewItem: &it}
	var exp, last, decided sql.NullTime
	err := row.Scan(&it.ID, &it.ReviewID, &it.UserID, &si.email, &si.name, &it.Kind, &it.RoleKey, &it.UserPermissionID,
		&it.Description, &exp, &last, &it.Dormant, &it.Decision, &it.DecidedBy, &decided, &it.Comment, &it.Outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errReviewItemNotFound
	}
	if err != nil {
		return nil, err
	}
	it.GrantExpiresAt, it.UserLastLoginAt, it.DecidedAt = optTime(exp), optTime(last), optTime(decided)
	return si, nil
}

// openItems opens the items' copies of e-mail and name; an erased user's read ErasedPlaceholder.
func (a AccessReviews) openItems(ctx context.Context, items []*scannedItem) ([]*AccessReviewItem, error) {
	out := make([]*AccessReviewItem, len(items))
	for i, si := range items {
		var err error
		if si.UserEmail, err = a.tx.openFor(ctx, a.tenantID, si.UserID, fieldItemEmail, si.ID, si.email); err != nil {
			return nil, err
		}
		if si.UserDisplayName, err = a.tx.openFor(ctx, a.tenantID, si.UserID, fieldItemName, si.ID, si.name); err != nil {
			return nil, err
		}
		out[i] = si.AccessReviewItem
	}
	return out, nil
}

// Items returns a review's items ordered by user e-mail and grant; pendingOnly keeps those still
// awaiting a decision.
func (a AccessReviews) Items(ctx context.Context, reviewID string, pendingOnly bool) ([]*AccessReviewItem, error) {
	if !tutela.ValidID(reviewID) || !tutela.ValidID(a.tenantID) {
		return nil, errReviewNotFound
	}
	q := `SELECT ` + itemCols + ` FROM access_review_items WHERE tenant_id = $1 AND review_id = $2`
	if pendingOnly {
		q += ` AND decision IS NULL AND outcome IS NULL`
	}
	rows, err := a.tx.query(ctx, q+` ORDER BY kind, description, id`, a.tenantID, reviewID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var scanned []*scannedItem
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		scanned = append(scanned, it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out, err := a.openItems(ctx, scanned)
	if err != nil {
		return nil, err
	}
	// By address, then as the query ordered them (the database holds only ciphertexts to sort).
	slices.SortStableFunc(out, func(x, y *AccessReviewItem) int {
		return strings.Compare(x.UserEmail, y.UserEmail)
	})
	return out, nil
}

// Item returns one item of the tenant's review.
func (a AccessReviews) Item(ctx context.Context, reviewID, itemID string) (*AccessReviewItem, error) {
	if !tutela.ValidID(reviewID) || !tutela.ValidID(itemID) || !tutela.ValidID(a.tenantID) {
		return nil, errReviewItemNotFound
	}
	si, err := scanItem(a.tx.queryRow(ctx, `SELECT `+itemCols+` FROM access_review_items WHERE tenant_id = $1 AND review_id = $2 AND id = $3`,
		a.tenantID, reviewID, itemID))
	if err != nil {
		return nil, err
	}
	out, err := a.openItems(ctx, []*scannedItem{si})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ItemDecision is a reviewer's decision on one item.
type ItemDecision struct {
	Decision   string // keep or revoke
	Comment    string
	ReviewerID string
	// Platform says the reviewer holds the platform role: only they may revoke super_admin.
	Platform bool
}

// Decide records a reviewer's decision on an item of an open review before its deadline. A
// revoke removes the grant in the same transaction, so access ends when the decision commits.
// Nobody decides on their own grants (a reviewer would keep their own access), a decision is
// final, and the tenant's last programme administrator cannot be revoked.
func (a AccessReviews) Decide(ctx context.Context, reviewID, itemID string, d ItemDecision) (*AccessReviewItem, error) {
	if d.Decision != DecisionKeep && d.Decision != DecisionRevoke {
		return nil, tutela.FieldErrorf("decision", "decision must be keep or revoke")
	}
	if utf8.RuneCountInString(d.Comment) > 1000 {
		return nil, tutela.FieldErrorf("comment", "comment must be at most 1000 characters")
	}
	if !tutela.ValidFreeText(d.Comment) {
		// Free text over several lines; PostgreSQL refuses NUL and invalid UTF-8 (a 500 otherwise).
		return nil, tutela.FieldErrorf("comment", "comment must be UTF-8 text without NUL")
	}
	rev, err := a.Get(ctx, reviewID)
	if err != nil {
		return nil, err
	}
	it, err := a.Item(ctx, reviewID, itemID)
	if err != nil {
		return nil, err
	}
	if it.UserID == d.ReviewerID {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "you cannot review your own access")
	}
	if rev.Status != ReviewOpen {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the review is closed")
	}
	if !a.tx.now.Before(rev.Deadline) {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the review's deadline has passed; close it")
	}
	if d.Decision == DecisionRevoke && it.Kind == ReviewKindRole && it.RoleKey == authz.RoleSuperAdmin && !d.Platform {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "only a super-admin may revoke super_admin")
	}
	// Touching the review row first serialises this decision with a concurrent close: on
	// PostgreSQL the close either committed already (and this finds the review closed) or waits
	// for this decision and then sees it.
	res, err := a.tx.exec(ctx, `UPDATE access_reviews SET status = status WHERE tenant_id = $1 AND id = $2 AND status = 'open'`,
		a.tenantID, reviewID)
	if err := affectedOne(res, err, ""); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, tutela.Errorf(tutela.ECONFLICT, "the review is closed")
		}
		return nil, err
	}
	res, err = a.tx.exec(ctx, `UPDATE access_review_items SET decision = $1, decided_by = $2, decided_at = $3, comment = $4
		WHERE tenant_id = $5 AND review_id = $6 AND id = $7 AND decision IS NULL AND outcome IS NULL`,
		d.Decision, nullID(d.ReviewerID), a.tx.now, d.Comment, a.tenantID, reviewID, itemID)
	if err := affectedOne(res, err, ""); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, tutela.Errorf(tutela.ECONFLICT, "the item has already been decided")
		}
		return nil, err
	}
	gone := false
	if d.Decision == DecisionRevoke {
		if it.Kind == ReviewKindRole && it.RoleKey == authz.RoleProgramAdmin {
			last, err := a.tx.IsLastProgramAdmin(ctx, a.tenantID, it.UserID)
			if err != nil {
				return nil, err
			}
			if last {
				return nil, tutela.Errorf(tutela.ECONFLICT, "this is the tenant's last programme administrator; appoint another first")
			}
		}
		if gone, err = a.revoke(ctx, it); err != nil {
			return nil, err
		}
	}
	it.Decision, it.DecidedBy, it.Comment = d.Decision, d.ReviewerID, d.Comment
	now := a.tx.now
	it.DecidedAt = &now
	return it, a.tx.Record(ctx, "access_review.decide", a.tenantID, "access_review_item", it.ID, "", map[string]any{
		"review_id": reviewID, "user_id": it.UserID, "grant": it.Description, "decision": d.Decision,
		"dormant": it.Dormant, "grant_already_removed": gone})
}

// revoke removes the item's grant through the user repository (which records its own audit
// event). A grant already removed since the review opened is not an error: the decision stands.
func (a AccessReviews) revoke(ctx context.Context, it *AccessReviewItem) (alreadyGone bool, err error) {
	users := a.tx.Users(a.tenantID)
	if it.Kind == ReviewKindRole {
		err = users.RevokeRole(ctx, it.UserID, it.RoleKey)
	} else {
		err = users.RevokePermission(ctx, it.UserID, it.UserPermissionID)
	}
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return true, nil
	}
	return false, err
}

// Close ends a review (at or before its deadline) and settles every item nobody decided: it is
// reported as unreviewed, or revoked when the review has auto_revoke — except the tenant's last
// programme administrator and super_admin grants, which are reported instead. It returns the
// closed review and the undecided items with their outcome. closedBy "" is the system closing
// the review at its deadline (CloseDueAccessReviews). A review already closed is a conflict.
func (a AccessReviews) Close(ctx context.Context, reviewID, closedBy string) (*AccessReview, []*AccessReviewItem, error) {
	rev, err := a.Get(ctx, reviewID)
	if err != nil {
		return nil, nil, err
	}
	now := a.tx.now
	res, err := a.tx.exec(ctx, `UPDATE access_reviews SET status = 'closed', closed_at = $1, closed_by = $2
		WHERE tenant_id = $3 AND id = $4 AND status = 'open'`, now, nullID(closedBy), a.tenantID, reviewID)
	if err := affectedOne(res, err, ""); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, nil, tutela.Errorf(tutela.ECONFLICT, "the review is already closed")
		}
		return nil, nil, err
	}
	undecided, err := a.Items(ctx, reviewID, true)
	if err != nil {
		return nil, nil, err
	}
	for _, it := range undecided {
		it.Outcome = OutcomeUnreviewed
		if rev.AutoRevoke {
			switch {
			case it.Kind == ReviewKindRole && it.RoleKey == authz.RoleSuperAdmin:
				it.Outcome = OutcomePlatformRoleKept
			case it.Kind == ReviewKindRole && it.RoleKey == authz.RoleProgramAdmin:
				last, err := a.tx.IsLastProgramAdmin(ctx, a.tenantID, it.UserID)
				if err != nil {
					return nil, nil, err
				}
				if last {
					it.Outcome = OutcomeLastAdminKept
				} else {
					it.Outcome = OutcomeAutoRevoked
				}
			default:
				it.Outcome = OutcomeAutoRevoked
			}
		}
		if _, err := a.tx.exec(ctx, `UPDATE access_review_items SET outcome = $1 WHERE tenant_id = $2 AND id = $3`,
			it.Outcome, a.tenantID, it.ID); err != nil {
			return nil, nil, err
		}
		if it.Outcome == OutcomeUnreviewed {
			continue
		}
		gone := false
		if it.Outcome == OutcomeAutoRevoked {
			if gone, err = a.revoke(ctx, it); err != nil {
				return nil, nil, err
			}
		}
		if err := a.tx.Record(ctx, "access_review."+it.Outcome, a.tenantID, "access_review_item", it.ID, "", map[string]any{
			"review_id": reviewID, "user_id": it.UserID, "grant": it.Description, "dormant": it.Dormant,
			"grant_already_removed": gone}); err != nil {
			return nil, nil, err
		}
	}
	if rev, err = a.Get(ctx, reviewID); err != nil {
		return nil, nil, err
	}
	c := rev.Counts
	return rev, undecided, a.tx.Record(ctx, "access_review.close", a.tenantID, "access_review", reviewID, "", map[string]any{
		"before_deadline": now.Before(rev.Deadline), "automatic": closedBy == "", "auto_revoke": rev.AutoRevoke,
		"items": c.Items, "kept": c.Kept, "revoked": c.Revoked, "auto_revoked": c.AutoRevoked, "unreviewed": c.Unreviewed})
}

// DueReview names an open review whose deadline has passed.
type DueReview struct {
	TenantID string
	ReviewID string
}

// DueAccessReviews lists up to limit open reviews of every tenant whose deadline is at or before
// now, oldest deadline first. It reads across tenants, so it is for the system's own sweeper,
// not for a tenant-scoped caller (PostgreSQL row-level security would hide other tenants anyway).
func (tx *Tx) DueAccessReviews(ctx context.Context, now time.Time, limit int) ([]DueReview, error) {
	// A node bound to a data region closes its region's reviews only (residency.go).
	scope, args := tx.regionScope("tenant_id", false, now.UTC(), clampLimit(limit))
	rows, err := tx.query(ctx, `SELECT tenant_id, id FROM access_reviews WHERE status = 'open' AND deadline <= $1`+scope+`
		ORDER BY deadline, id LIMIT $2`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DueReview
	for rows.Next() {
		var d DueReview
		if err := rows.Scan(&d.TenantID, &d.ReviewID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// dueReviewBatch bounds the reviews one sweep closes; the next sweep takes the rest.
const dueReviewBatch = 100

// CloseDueAccessReviews closes open reviews whose deadline has passed (up to dueReviewBatch a
// call, oldest first), as the system, with the same outcomes as a manual close: a deadline is a
// promise that undecided grants are settled (and, with auto_revoke, removed) then, not whenever
// an administrator remembers. Each review closes in its own transaction, so one failure neither
// undoes nor stops the others; their errors are joined. Every node may run it at once: a review
// another node (or an administrator) closed first is a conflict in Close and is skipped, not
// counted. Request metadata in ctx is dropped so the close is attributed to the system and sees
// every tenant.
func (db *DB) CloseDueAccessReviews(ctx context.Context) (closed int, err error) {
	ctx = tutela.WithRequestMeta(ctx, nil)
	var due []DueReview
	if err := db.View(ctx, func(tx *Tx) (err error) {
		due, err = tx.DueAccessReviews(ctx, tx.Now(), dueReviewBatch)
		return err
	}); err != nil {
		return 0, err
	}
	var errs []error
	for _, d := range due {
		err := db.Update(ctx, func(tx *Tx) error {
			_, _, err := tx.AccessReviews(d.TenantID).Close(ctx, d.ReviewID, "")
			return err
		})
		switch {
		case err == nil:
			closed++
		case tutela.ErrorCode(err) == tutela.ECONFLICT:
			// Closed meanwhile by another node or an administrator.
		default:
			errs = append(errs, fmt.Errorf("close access review %s of tenant %s: %w", d.ReviewID, d.TenantID, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return closed, errors.Join(errs...)
}

func optTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

func optTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
