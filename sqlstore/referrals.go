package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/partners"
	"tutela/referrals"
	"tutela/vault"
)

// Referrals is a tenant's tracked referrals of subjects to its partners (issue 18). Every
// transition is one conditional UPDATE on the state it leaves (so of two concurrent attempts
// exactly one wins), a referral_events row and its audit event, in the caller's transaction.
type Referrals struct {
	tx       *Tx
	tenantID string
}

// Referrals scopes the referral store to one tenant.
func (tx *Tx) Referrals(tenantID string) Referrals { return Referrals{tx: tx, tenantID: tenantID} }

var errNoReferral = tutela.Errorf(tutela.ENOTFOUND, "referral not found")

// referralClockLeeway lets a referral's expiry be computed from a clock read just before this
// transaction's, without letting it outlive referrals.MaxTTL by more than that.
const referralClockLeeway = time.Minute

// MaxReferralsListed caps one List.
const MaxReferralsListed = 1000

const referralCols = `id, tenant_id, partner_id, subject_id, purpose, target_url, key_id, state, outcome, justification,
	created_by, created_at, expires_at, opened_at, confirmed_at, confirmed_by, closed_at, closed_by`

func scanReferral(row interface{ Scan(...any) error }) (*referrals.Referral, error) {
	var r referrals.Referral
	var state string
	var keyID int64
	var opened, confirmed, closed sql.NullTime
	err := row.Scan(&r.ID, &r.TenantID, &r.PartnerID, &r.SubjectID, &r.Purpose, &r.TargetURL, &keyID, &state, &r.Outcome,
		&r.Justification, &r.CreatedBy, &r.CreatedAt, &r.ExpiresAt, &opened, &confirmed, &r.ConfirmedBy, &closed, &r.ClosedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoReferral
	}
	if err != nil {
		return nil, err
	}
	r.KeyID, r.State = uint32(keyID), referrals.State(state) // #nosec G115 -- key IDs are written from uint32 values
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	r.OpenedAt, r.ConfirmedAt, r.ClosedAt = optTime(opened), optTime(confirmed), optTime(closed)
	return &r, nil
}

// Create stores a new referral after checking, in this order, each refusal leaving nothing
// behind: the justification (required free text) and expiry (after now, at most
// referrals.MaxTTL ahead); the partner is the tenant's (not found) and active (conflict); the
// target is exactly one of the partner's redirect URLs (partners.CheckTarget, invalid on
// target_url); the subject exists and may be processed for the purpose (Consent.Check: not
// found, consent_required, processing_restricted, or an undeclared purpose); the tenant is not
// in simulation (conflict: a dry-run tenant sends no real person anywhere). r.ID is kept when
// set (the token was signed over it), KeyID as signed; State, TenantID and CreatedAt are
// assigned. Audits referral.created with the justification.
func (s Referrals) Create(ctx context.Context, r *referrals.Referral) error {
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err := referrals.ValidJustification(r.Justification); err != nil {
		return err
	}
	r.ExpiresAt = r.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !r.ExpiresAt.After(s.tx.now) || r.ExpiresAt.After(s.tx.now.Add(referrals.MaxTTL+referralClockLeeway)) {
		return tutela.FieldErrorf("ttl_seconds", "a referral expires after now and at most %s ahead", referrals.MaxTTL)
	}
	if len(r.CreatedBy) > 255 || !tutela.ValidText(r.CreatedBy) {
		return tutela.FieldErrorf("created_by", "created_by must be at most 255 bytes of text")
	}
	p, err := s.tx.Partners(s.tenantID).get(ctx, r.PartnerID, "FOR SHARE")
	if err != nil {
		return err
	}
	if p.Status != partners.StatusActive {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "partner_id", Message: "the partner is disabled: it receives no referrals"}
	}
	if err := p.CheckTarget(r.TargetURL); err != nil {
		return err
	}
	if err := s.tx.Consent(s.tenantID).Check(ctx, r.SubjectID, r.Purpose); err != nil {
		return err
	}
	var mode string
	if err := s.tx.queryRow(ctx, `SELECT mode FROM tenants WHERE id = $1`, s.tenantID).Scan(&mode); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		return err
	}
	if mode != "provisioning" {
		return tutela.Errorf(tutela.ECONFLICT, "the tenant is in simulation: referrals send real people to real partners, so they wait for provisioning")
	}
	if r.ID == "" {
		r.ID = tutela.NewID()
	} else if !tutela.ValidID(r.ID) {
		return tutela.FieldErrorf("id", "referral ID is not valid")
	}
	r.TenantID, r.State, r.CreatedAt, r.Outcome = s.tenantID, referrals.StateCreated, s.tx.now, ""
	r.OpenedAt, r.ConfirmedAt, r.ClosedAt, r.ConfirmedBy, r.ClosedBy, r.Events = nil, nil, nil, "", "", nil
	if _, err := s.tx.exec(ctx, `INSERT INTO referrals (`+referralCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,NULL,NULL,'',NULL,'')`,
		r.ID, r.TenantID, r.PartnerID, r.SubjectID, r.Purpose, r.TargetURL, int64(r.KeyID), string(r.State), r.Outcome,
		r.Justification, r.CreatedBy, r.CreatedAt, r.ExpiresAt); err != nil {
		return err
	}
	if err := s.event(ctx, r.ID, referrals.StateCreated, r.CreatedBy, r.Justification); err != nil {
		return err
	}
	return s.tx.Record(ctx, "referral.created", s.tenantID, "referral", r.ID, "", map[string]any{
		"partner_id": r.PartnerID, "subject_id": r.SubjectID, "purpose": r.Purpose, "target_url": r.TargetURL,
		"key_id": r.KeyID, "expires_at": r.ExpiresAt.Format(time.RFC3339), "justification": r.Justification})
}

func (s Referrals) event(ctx context.Context, referralID string, st referrals.State, actor, note string) error {
	_, err := s.tx.exec(ctx, `INSERT INTO referral_events (id, tenant_id, referral_id, state, actor, at, note)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, tutela.NewID(), s.tenantID, referralID, string(st), actor, s.tx.now, note)
	return err
}

// Get returns the tenant's referral with its events, its state as of now. Another tenant's,
// an unknown or a malformed ID is not found.
func (s Referrals) Get(ctx context.Context, id string) (*referrals.Referral, error) {
	r, err := s.get(ctx, id, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.tx.query(ctx, `SELECT id, state, actor, at, note FROM referral_events
		WHERE tenant_id = $1 AND referral_id = $2 ORDER BY at, id`, s.tenantID, r.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	r.Events = []referrals.Event{}
	for rows.Next() {
		var e referrals.Event
		var st string
		if err := rows.Scan(&e.ID, &st, &e.Actor, &e.At, &e.Note); err != nil {
			return nil, err
		}
		e.State, e.At = referrals.State(st), e.At.UTC()
		r.Events = append(r.Events, e)
	}
	return r, rows.Err()
}

// get reads the stored row, State as of now.
func (s Referrals) get(ctx context.Context, id, lock string) (*referrals.Referral, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoReferral
	}
	r, err := scanReferral(s.tx.queryRow(ctx, `SELECT `+referralCols+` FROM referrals WHERE tenant_id = $1 AND id = $2`+
		s.tx.lockClause(lock), s.tenantID, id))
	if err != nil {
		return nil, err
	}
	r.State = r.StateAt(s.tx.now)
	return r, nil
}

// ReferralFilter narrows List; empty fields match everything.
type ReferralFilter struct {
	State     referrals.State
	SubjectID string
	PartnerID string
}

// List returns the tenant's referrals matching f, newest first, at most MaxReferralsListed,
// without their events. The state filter reads states as of now (expired includes live
// referrals past their expiry; created, opened and confirmed exclude them).
func (s Referrals) List(ctx context.Context, f ReferralFilter) ([]referrals.Referral, error) {
	out := []referrals.Referral{}
	if f.State != "" && !f.State.Valid() {
		return nil, tutela.FieldErrorf("state", "state must be one of created, opened, confirmed, closed, cancelled, expired")
	}
	if !tutela.ValidID(s.tenantID) || (f.SubjectID != "" && !tutela.ValidID(f.SubjectID)) ||
		(f.PartnerID != "" && !tutela.ValidID(f.PartnerID)) {
		return out, nil
	}
	q, args := `SELECT `+referralCols+` FROM referrals WHERE tenant_id = $1`, []any{s.tenantID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	if f.SubjectID != "" {
		q += ` AND subject_id = ` + arg(f.SubjectID)
	}
	if f.PartnerID != "" {
		q += ` AND partner_id = ` + arg(f.PartnerID)
	}
	switch {
	case f.State == referrals.StateExpired:
		q += ` AND (state = 'expired' OR (state IN ('created', 'opened', 'confirmed') AND expires_at <= ` + arg(s.tx.now) + `))`
	case f.State.Live():
		q += ` AND state = ` + arg(string(f.State)) + ` AND expires_at > ` + arg(s.tx.now)
	case f.State != "":
		q += ` AND state = ` + arg(string(f.State))
	}
	q += ` ORDER BY id DESC LIMIT ` + itoa(MaxReferralsListed)
	rows, err := s.tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanReferral(rows)
		if err != nil {
			return nil, err
		}
		r.State = r.StateAt(s.tx.now)
		out = append(out, *r)
	}
	return out, rows.Err()
}

// Cancel ends a live referral (created, opened or confirmed, not expired): its link no longer
// opens and its partner can no longer confirm it. A closed, cancelled or expired referral is a
// conflict. Audits referral.cancelled with the justification.
func (s Referrals) Cancel(ctx context.Context, id, by, justification string) (*referrals.Referral, error) {
	if err := referrals.ValidJustification(justification); err != nil {
		return nil, err
	}
	r, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if !r.State.Live() {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the referral is %s: only a created, opened or confirmed referral can be cancelled", r.State)
	}
	if err := s.move(ctx, r.ID, r.State, referrals.StateCancelled, `closed_at = $5, closed_by = $6`, by); err != nil {
		return nil, err
	}
	r.State, r.ClosedBy = referrals.StateCancelled, by
	now := s.tx.now
	r.ClosedAt = &now
	if err := s.event(ctx, r.ID, referrals.StateCancelled, by, justification); err != nil {
		return nil, err
	}
	return r, s.tx.Record(ctx, "referral.cancelled", s.tenantID, "referral", r.ID, "", map[string]any{
		"partner_id": r.PartnerID, "justification": justification, "referral_justification": r.Justification})
}

// move sets the referral's state from `from` to `to`, and the columns in set (where $5 is now
// and $6… are extra), only if it is still in `from` and unexpired: a concurrent transition
// that got there first makes this one a conflict.
func (s Referrals) move(ctx context.Context, id string, from, to referrals.State, set string, extra ...any) error {
	args := append([]any{string(to), s.tenantID, id, string(from), s.tx.now}, extra...)
	res, err := s.tx.exec(ctx, `UPDATE referrals SET state = $1, `+set+` WHERE tenant_id = $2 AND id = $3 AND state = $4
		AND expires_at > $5`, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return tutela.Errorf(tutela.ECONFLICT, "the referral changed meanwhile; read it again")
	}
	return nil
}

// checkClaims matches a stored referral against its verified token: the key and expiry it was
// signed with (a token re-signed over another expiry, or under another key, is not found).
func checkClaims(r *referrals.Referral, keyID uint32, expiresAt time.Time) error {
	if r.KeyID != keyID || !r.ExpiresAt.Equal(expiresAt) {
		return errNoReferral
	}
	return nil
}

// gone is a referral whose link no longer works, as tutela.ELINKGONE.
func gone(st referrals.State) error {
	switch st {
	case referrals.StateCancelled:
		return tutela.Errorf(tutela.ELINKGONE, "this referral was cancelled")
	case referrals.StateExpired:
		return tutela.Errorf(tutela.ELINKGONE, "this referral has expired")
	}
	return tutela.Errorf(tutela.ELINKGONE, "this referral link was already used")
}

// OpenReferral spends a referral's link: the person following it, once. The referral is found
// by ID in any tenant (the public route learns the tenant only from the referral, after the
// token's signature), and must match the token's key and expiry (else not found). Cancelled,
// expired or already opened is tutela.ELINKGONE: the link is single use, and of two concurrent
// opens exactly one wins. The partner must still be active and the target still one of its
// redirect URLs (an administrator who withdrew a URL withdrew it for links already sent too),
// and the subject's consent for the purpose must still hold (Consent.Check): else ELINKGONE.
// Audits referral.opened (never the token) and returns the referral.
func (tx *Tx) OpenReferral(ctx context.Context, referralID string, keyID uint32, expiresAt time.Time) (*referrals.Referral, error) {
	if !tutela.ValidID(referralID) {
		return nil, errNoReferral
	}
	r, err := scanReferral(tx.queryRow(ctx, `SELECT `+referralCols+` FROM referrals WHERE id = $1`, referralID))
	if err != nil {
		return nil, err
	}
	if err := checkClaims(r, keyID, expiresAt); err != nil {
		return nil, err
	}
	s := tx.Referrals(r.TenantID)
	if st := r.StateAt(tx.now); st != referrals.StateCreated {
		return nil, gone(st)
	}
	p, err := tx.Partners(r.TenantID).Get(ctx, r.PartnerID)
	if err != nil {
		return nil, err
	}
	if p.Status != partners.StatusActive || p.CheckTarget(r.TargetURL) != nil {
		return nil, tutela.Errorf(tutela.ELINKGONE, "the partner no longer accepts this referral")
	}
	// The consent it was made under must still hold: a withdrawal, an objection, a restriction
	// or an erasure since then ends the referral (without saying which to whoever holds the link).
	switch err := tx.Consent(r.TenantID).Check(ctx, r.SubjectID, r.Purpose); tutela.ErrorCode(err) {
	case "":
	case tutela.ECONSENTREQUIRED, tutela.ERESTRICTED, tutela.ENOTFOUND, tutela.EINVALID:
		return nil, tutela.Errorf(tutela.ELINKGONE, "this referral is no longer valid")
	default:
		return nil, err
	}
	if err := s.move(ctx, r.ID, referrals.StateCreated, referrals.StateOpened, `opened_at = $5`); err != nil {
		if tutela.ErrorCode(err) == tutela.ECONFLICT {
			return nil, tutela.Errorf(tutela.ELINKGONE, "this referral link was already used")
		}
		return nil, err
	}
	now := tx.now
	r.State, r.OpenedAt = referrals.StateOpened, &now
	if err := s.event(ctx, r.ID, referrals.StateOpened, "", ""); err != nil {
		return nil, err
	}
	return r, tx.Record(ctx, "referral.opened", r.TenantID, "referral", r.ID, "", map[string]any{
		"partner_id": r.PartnerID, "key_id": r.KeyID, "justification": r.Justification})
}

// Confirm records a partner's report on a referral, as its service account saID acting for
// partnerID: received moves an opened referral to confirmed; completed and declined close an
// opened or confirmed one, with the outcome. The referral must be this tenant's, match the
// token's key and expiry, and be sent to partnerID (an active partner): else not found, so a
// partner learns nothing of another's referrals. Cancelled or expired is tutela.ELINKGONE; never
// opened, or a transition already made (a replay), is a conflict. Audits referral.confirmed or
// referral.closed; the outcome is stored with the referral and its event, not in the audit log
// (it is the partner's free text about a person).
func (s Referrals) Confirm(ctx context.Context, c referrals.Claims, saID, partnerID string, status referrals.Status,
	outcome string) (*referrals.Referral, error) {
	next := status.Next()
	if next == "" {
		return nil, tutela.FieldErrorf("status", "status must be received, completed or declined")
	}
	if err := referrals.ValidOutcome(outcome); err != nil {
		return nil, err
	}
	r, err := s.get(ctx, c.ReferralID, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if err := checkClaims(r, c.KeyID, c.ExpiresAt); err != nil {
		return nil, err
	}
	if !tutela.ValidID(partnerID) || r.PartnerID != partnerID {
		return nil, errNoReferral
	}
	p, err := s.tx.Partners(s.tenantID).Get(ctx, partnerID)
	if err != nil {
		return nil, err
	}
	if p.Status != partners.StatusActive {
		return nil, errNoReferral
	}
	from := r.State
	switch {
	case from == referrals.StateCancelled || from == referrals.StateExpired:
		return nil, gone(from)
	case from == referrals.StateCreated:
		return nil, tutela.Errorf(tutela.ECONFLICT, "the referral was never opened: nobody has been sent to you yet")
	case from == referrals.StateClosed:
		return nil, tutela.Errorf(tutela.ECONFLICT, "the referral is already closed")
	case next == referrals.StateConfirmed && from != referrals.StateOpened:
		return nil, tutela.Errorf(tutela.ECONFLICT, "the referral is already confirmed")
	}
	now := s.tx.now
	set, action := `confirmed_at = $5, confirmed_by = $6, outcome = $7`, "referral.confirmed"
	if next == referrals.StateClosed {
		set, action = `closed_at = $5, closed_by = $6, outcome = $7`, "referral.closed"
	}
	if err := s.move(ctx, r.ID, from, next, set, saID, outcome); err != nil {
		return nil, err
	}
	if next == referrals.StateConfirmed {
		r.ConfirmedAt, r.ConfirmedBy = &now, saID
	} else {
		r.ClosedAt, r.ClosedBy = &now, saID
	}
	r.State, r.Outcome = next, outcome
	if err := s.event(ctx, r.ID, next, saID, outcome); err != nil {
		return nil, err
	}
	return r, s.tx.Record(ctx, action, s.tenantID, "referral", r.ID, "", map[string]any{
		"partner_id": r.PartnerID, "status": string(status), "justification": r.Justification})
}

// ReferralKeysSource is the rewrap source of the referrals keyset. Referral tokens are signed
// with it and never stored (only the referral's key ID is), so there is nothing to rewrap:
// retiring an old key after a rotation ends every referral it signed (its link no longer
// opens, its partner can no longer confirm it), and `keys retire` is allowed to do so.
func ReferralKeysSource() vault.RewrapSource { return referralKeys{} }

type referralKeys struct{}

func (referralKeys) Name() string { return "referrals" }

// Next lists nothing: no token is stored anywhere.
func (referralKeys) Next(context.Context, string, int) ([]vault.RewrapItem, error) { return nil, nil }

// Save has nothing to write.
func (referralKeys) Save(context.Context, []vault.RewrapItem) error { return nil }

// eraseSubjectReferrals is a subject's erasure reaching their referrals (finishErasure): the
// free texts written about them (the justification, the partner's outcome, the events' notes)
// are replaced by ErasedPlaceholder, and a live referral is cancelled so its link opens nothing
// and its partner confirms nothing. The rows stay, with their states and times, as the record
// that a referral was made (the audit log keeps its own copy until audit retention prunes it).
// Idempotent: it reports how many referrals it changed.
func (tx *Tx) eraseSubjectReferrals(ctx context.Context, tenantID, subjectID string) (int64, error) {
	if _, err := tx.exec(ctx, `UPDATE referral_events SET note = $1
		WHERE tenant_id = $2 AND note <> '' AND note <> $1
		AND referral_id IN (SELECT id FROM referrals WHERE tenant_id = $2 AND subject_id = $3)`,
		ErasedPlaceholder, tenantID, subjectID); err != nil {
		return 0, err
	}
	res, err := tx.exec(ctx, `UPDATE referrals SET justification = $1,
		outcome = CASE WHEN outcome = '' THEN '' ELSE $1 END,
		state = CASE WHEN state IN ('created', 'opened', 'confirmed') THEN 'cancelled' ELSE state END
		WHERE tenant_id = $2 AND subject_id = $3 AND justification <> $1`, ErasedPlaceholder, tenantID, subjectID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
