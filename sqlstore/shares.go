package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/partners"
)

// Partner scope (issue 18): a transaction acting for a partner organisation's user or service
// account sees a subject only through an active share of that partner. The scope is set once,
// where the principal's policy is loaded (httpapi's principalPolicy), and every subject loader
// of this package asks partnerSees before it reads a row: Subjects.subject and Get (every
// by-ID path: reads, holds, exports, files), List (filtered), Search (filtered) and
// Consent.Check (the processing gate of every purpose-bound read, which also checks the
// share's purpose). A subject the partner may not see is errSubjectNotFound, the answer for a
// subject that does not exist, after the same one probe.

// scopeNone is a partner ID no share carries: a transaction asked to act for two partners sees
// nothing (fail closed).
const scopeNone = "-"

// ActForPartner limits the transaction to what partnerID's shares disclose. It cannot be undone
// within the transaction; a second, different partner leaves it seeing nothing.
func (tx *Tx) ActForPartner(partnerID string) {
	switch {
	case tx.partner == "":
		tx.partner = partnerID
	case tx.partner != partnerID:
		tx.partner = scopeNone
	}
	if !tutela.ValidID(tx.partner) {
		tx.partner = scopeNone
	}
}

// PartnerScope is the partner the transaction acts for ("" when none).
func (tx *Tx) PartnerScope() string { return tx.partner }

// activeShareCond is the condition "an active share of partner $2 discloses subject $3 at $4"
// in tenant $1: not revoked, not expired at the transaction's time, and the partner active.
const activeShareCond = `EXISTS (SELECT 1 FROM partner_shares sh JOIN partners pa ON pa.tenant_id = sh.tenant_id AND pa.id = sh.partner_id
	WHERE sh.tenant_id = $1 AND sh.partner_id = $2 AND sh.subject_id = $3 AND sh.revoked_at IS NULL AND sh.expires_at > $4
	AND pa.status = 'active'`

// partnerSees is nil when the transaction acts for no partner, or when an active share of its
// partner discloses subjectID (for purpose, unless purpose is ""); errSubjectNotFound otherwise.
func (tx *Tx) partnerSees(ctx context.Context, tenantID, subjectID, purpose string) error {
	if tx.partner == "" {
		return nil
	}
	if tx.partner == scopeNone || !tutela.ValidID(tenantID) || !tutela.ValidID(subjectID) {
		return errSubjectNotFound
	}
	q, args := `SELECT `+activeShareCond, []any{tenantID, tx.partner, subjectID, tx.now}
	if purpose != "" {
		q += ` AND sh.purpose = $5`
		args = append(args, purpose)
	}
	var ok bool
	if err := tx.queryRow(ctx, q+`)`, args...).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errSubjectNotFound
	}
	return nil
}

// Shares is a tenant's record of subjects shared with its partners.
type Shares struct {
	tx       *Tx
	tenantID string
}

// Shares scopes the share store to one tenant.
func (tx *Tx) Shares(tenantID string) Shares { return Shares{tx: tx, tenantID: tenantID} }

var errNoShare = tutela.Errorf(tutela.ENOTFOUND, "share not found")

// ErrSimulationShares refuses a share in a tenant in simulation: its subjects are set-up and
// dry-run data, and nothing of them leaves for a partner.
var ErrSimulationShares = tutela.Errorf(tutela.ECONFLICT, "a tenant in simulation shares nothing with partners")

const shareCols = `id, tenant_id, partner_id, subject_id, purpose, expires_at, created_by, created_at, revoked_at, revoked_by, justification`

// Create records a new share after checking everything it needs, so no caller can skip one: a
// justification; an expiry in the future and at most a year away; the tenant provisioning (a
// tenant in simulation shares nothing); the partner active; the subject live and processable
// for purpose now (Consent.Check: a declared purpose, consent where the purpose needs it, no
// objection or restriction). It audits share.created with the justification. A refusal changes
// nothing.
func (s Shares) Create(ctx context.Context, sh *partners.Share) error {
	if err := partners.ValidJustification(sh.Justification); err != nil {
		return err
	}
	// Checked as stored (microseconds, UTC): an expiry a few nanoseconds after now would
	// otherwise pass and be stored as now, a share born expired.
	sh.ExpiresAt = sh.ExpiresAt.UTC().Truncate(time.Microsecond)
	if err := partners.CheckExpiry(sh.ExpiresAt, s.tx.now); err != nil {
		return err
	}
	if !tutela.ValidID(s.tenantID) {
		return errTenantNotFound
	}
	var mode string
	if err := s.tx.queryRow(ctx, `SELECT mode FROM tenants WHERE id = $1`, s.tenantID).Scan(&mode); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errTenantNotFound
		}
		return err
	}
	if mode != "provisioning" {
		return ErrSimulationShares
	}
	p, err := s.tx.Partners(s.tenantID).get(ctx, sh.PartnerID, "FOR SHARE")
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return &tutela.Error{Code: tutela.ENOTFOUND, Field: "partner_id", Message: "partner not found"}
	}
	if err != nil {
		return err
	}
	if p.Status != partners.StatusActive {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "partner_id", Message: "the partner is disabled: it receives no new shares"}
	}
	if _, err := s.tx.Subjects(s.tenantID).subject(ctx, sh.SubjectID, "FOR UPDATE"); err != nil {
		return err
	}
	n, err := s.tx.count(ctx, `SELECT count(*) FROM partner_shares WHERE tenant_id = $1 AND subject_id = $2`, s.tenantID, sh.SubjectID)
	if err != nil {
		return err
	}
	if n >= MaxSharesPerSubject {
		return tutela.Errorf(tutela.ECONFLICT, "a subject has at most %d shares, revoked and expired ones included", MaxSharesPerSubject)
	}
	if err := s.tx.Consent(s.tenantID).Check(ctx, sh.SubjectID, sh.Purpose); err != nil {
		return err
	}
	sh.ID, sh.TenantID, sh.CreatedAt = tutela.NewID(), s.tenantID, s.tx.now
	sh.RevokedAt, sh.RevokedBy = nil, ""
	if _, err := s.tx.exec(ctx, `INSERT INTO partner_shares (`+shareCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL,'',$9)`,
		sh.ID, sh.TenantID, sh.PartnerID, sh.SubjectID, sh.Purpose, sh.ExpiresAt, sh.CreatedBy, sh.CreatedAt, sh.Justification); err != nil {
		return err
	}
	return s.tx.Record(ctx, "share.created", s.tenantID, "share", sh.ID, "", map[string]any{
		"partner_id": sh.PartnerID, "subject_id": sh.SubjectID, "purpose": sh.Purpose,
		"expires_at": sh.ExpiresAt.Format(time.RFC3339), "justification": sh.Justification})
}

var errTenantNotFound = tutela.Errorf(tutela.ENOTFOUND, "tenant not found")

// Get returns one of the tenant's shares, active or not.
func (s Shares) Get(ctx context.Context, id string) (*partners.Share, error) {
	return s.get(ctx, id, "")
}

func (s Shares) get(ctx context.Context, id, lock string) (*partners.Share, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoShare
	}
	return scanShare(s.tx.queryRow(ctx, `SELECT `+shareCols+` FROM partner_shares WHERE tenant_id = $1 AND id = $2`+
		s.tx.lockClause(lock), s.tenantID, id))
}

// ForSubject lists a subject's shares, newest first, revoked and expired ones included (the
// record of what was disclosed). A subject the transaction may not see is not found.
func (s Shares) ForSubject(ctx context.Context, subjectID string) ([]partners.Share, error) {
	if _, err := s.tx.Subjects(s.tenantID).subject(ctx, subjectID, ""); err != nil && !errors.Is(err, ErrSubjectErased) {
		return nil, err
	}
	return s.list(ctx, `subject_id = $2`, subjectID)
}

// ForPartner lists a partner's shares, newest first, revoked and expired ones included.
func (s Shares) ForPartner(ctx context.Context, partnerID string) ([]partners.Share, error) {
	if _, err := s.tx.Partners(s.tenantID).Get(ctx, partnerID); err != nil {
		return nil, err
	}
	return s.list(ctx, `partner_id = $2`, partnerID)
}

// MaxSharesPerSubject caps a subject's shares, revoked and expired ones included (they stay
// on record), so a subject's listing is always complete.
const MaxSharesPerSubject = 1000

// maxListedShares bounds one listing: a subject's is complete (MaxSharesPerSubject); a
// partner's gives its newest shares.
const maxListedShares = 1000

func (s Shares) list(ctx context.Context, where string, arg string) ([]partners.Share, error) {
	out := []partners.Share{}
	rows, err := s.tx.query(ctx, `SELECT `+shareCols+` FROM partner_shares WHERE tenant_id = $1 AND `+where+`
		ORDER BY created_at DESC, id DESC LIMIT $3`, s.tenantID, arg, maxListedShares)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		sh, err := scanShare(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *sh)
	}
	return out, rows.Err()
}

// Revoke ends a share of subjectID now and audits share.revoked with the justification. A share
// already revoked is a conflict; one of another subject or tenant is not found. An expired share
// may still be revoked (the record then says it was withdrawn, not only lapsed).
func (s Shares) Revoke(ctx context.Context, subjectID, id, by, justification string) (*partners.Share, error) {
	if err := partners.ValidJustification(justification); err != nil {
		return nil, err
	}
	sh, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if sh.SubjectID != subjectID {
		return nil, errNoShare
	}
	if sh.RevokedAt != nil {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the share is already revoked")
	}
	now := s.tx.now
	res, err := s.tx.exec(ctx, `UPDATE partner_shares SET revoked_at = $1, revoked_by = $2 WHERE tenant_id = $3 AND id = $4
		AND revoked_at IS NULL`, now, by, s.tenantID, id)
	if err := affectedOne(res, err, "share not found"); err != nil {
		return nil, err
	}
	sh.RevokedAt, sh.RevokedBy = &now, by
	return sh, s.tx.Record(ctx, "share.revoked", s.tenantID, "share", sh.ID, "", map[string]any{
		"partner_id": sh.PartnerID, "subject_id": sh.SubjectID, "purpose": sh.Purpose, "justification": justification})
}

func scanShare(row interface{ Scan(...any) error }) (*partners.Share, error) {
	var sh partners.Share
	var revoked sql.NullTime
	err := row.Scan(&sh.ID, &sh.TenantID, &sh.PartnerID, &sh.SubjectID, &sh.Purpose, &sh.ExpiresAt, &sh.CreatedBy, &sh.CreatedAt,
		&revoked, &sh.RevokedBy, &sh.Justification)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoShare
	}
	if err != nil {
		return nil, err
	}
	sh.ExpiresAt, sh.CreatedAt, sh.RevokedAt = sh.ExpiresAt.UTC(), sh.CreatedAt.UTC(), optTime(revoked)
	return &sh, nil
}

// PartnerOf returns the partner organisation userID belongs to, "" for the tenant's own people
// (and for a user that does not exist: callers that need the user load it themselves).
func (r Users) PartnerOf(ctx context.Context, userID string) (string, error) {
	if !tutela.ValidID(r.tenantID) || !tutela.ValidID(userID) {
		return "", nil
	}
	var partner sql.NullString
	err := r.tx.queryRow(ctx, `SELECT CAST(partner_id AS TEXT) FROM users WHERE tenant_id = $1 AND id = $2`, r.tenantID, userID).Scan(&partner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return partner.String, err
}

// errPartnerRoleOnly refuses to give a partner's user anything but the partner role.
var errPartnerRoleOnly = tutela.Errorf(tutela.EFORBIDDEN, "a partner organisation's user holds only the partner role: no other role or permission may be granted")

// errPartnerRoleForPartners refuses the partner role to the tenant's own people.
var errPartnerRoleForPartners = tutela.Errorf(tutela.EFORBIDDEN, "the partner role is only for partner organisations' users (create them under the partner)")

// checkRoleForUser enforces that a partner's user holds only the partner role and that only a
// partner's user holds it; Grant calls it before any row is written.
func (r Users) checkRoleForUser(ctx context.Context, userID, roleKey string) error {
	partner, err := r.PartnerOf(ctx, userID)
	if err != nil {
		return err
	}
	switch {
	case partner != "" && roleKey != authz.RolePartner:
		return errPartnerRoleOnly
	case partner == "" && roleKey == authz.RolePartner:
		return errPartnerRoleForPartners
	}
	return nil
}

// CreatePartnerUser creates a user of partnerID (which must be an active partner of the tenant)
// holding the partner role and nothing else, and audits partner.user_created. The user sets a
// password through the usual reset or enrolment flow.
func (r Users) CreatePartnerUser(ctx context.Context, u *tutela.User, partnerID, grantedBy string) error {
	p, err := r.tx.Partners(r.tenantID).get(ctx, partnerID, "FOR SHARE")
	if err != nil {
		return err
	}
	if p.Status != partners.StatusActive {
		return tutela.Errorf(tutela.ECONFLICT, "the partner is disabled: it gets no new users")
	}
	if err := r.Create(ctx, u); err != nil {
		return err
	}
	if _, err := r.tx.exec(ctx, `UPDATE users SET partner_id = $1 WHERE tenant_id = $2 AND id = $3`, p.ID, r.tenantID, u.ID); err != nil {
		return err
	}
	if err := r.Grant(ctx, u.ID, authz.RolePartner, grantedBy, nil); err != nil {
		return err
	}
	return r.tx.Record(ctx, "partner.user_created", r.tenantID, "user", u.ID, "", map[string]any{"partner_id": p.ID})
}

// ListByPartner lists partnerID's users, oldest first.
func (r Users) ListByPartner(ctx context.Context, partnerID string) ([]*tutela.User, error) {
	if _, err := r.tx.Partners(r.tenantID).Get(ctx, partnerID); err != nil {
		return nil, err
	}
	out, err := r.listWhere(ctx, `partner_id = $2 ORDER BY id LIMIT $3`, partnerID, MaxPageSize)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []*tutela.User{}
	}
	return out, nil
}
