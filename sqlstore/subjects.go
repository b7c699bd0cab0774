package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/privacy"
)

// Subject is a subject's row: IDs and times, never data (the values are in subject_values,
// encrypted under the subject's own key).
type Subject struct {
	ID          string     `json:"id"`
	TenantID    string     `json:"tenant_id"`
	CreatedBy   string     `json:"created_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	ErasedAt    *time.Time `json:"erased_at,omitempty"`
	// MergedInto is the survivor this subject was merged into (identity merge): such a subject
	// is never returned by reads, only by the merge records.
	MergedInto string `json:"-"`
}

// SubjectRecord is a subject with what privacy.Subjects.Open needs: its wrapped key and its
// ciphertexts.
type SubjectRecord struct {
	Subject
	Stored privacy.Stored
}

// Hold is a legal hold on a subject: while active (not released), the subject cannot be erased.
type Hold struct {
	ID         string     `json:"id"`
	SubjectID  string     `json:"subject_id"`
	Reason     string     `json:"reason"`
	PlacedBy   string     `json:"placed_by,omitempty"`
	PlacedAt   time.Time  `json:"placed_at"`
	ReleasedBy string     `json:"released_by,omitempty"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
}

// Subjects is a tenant's subject repository. It stores what privacy.Subjects sealed and returns
// ciphertexts: it never sees a plaintext value nor a key. Every query carries the tenant ID, so
// another tenant's subject is not found.
type Subjects struct {
	tx       *Tx
	tenantID string
}

// Subjects returns tenantID's subject repository.
func (tx *Tx) Subjects(tenantID string) Subjects { return Subjects{tx: tx, tenantID: tenantID} }

var (
	errSubjectNotFound = tutela.Errorf(tutela.ENOTFOUND, "subject not found")
	// ErrSubjectErased is the answer for any use of an erased subject: its data no longer
	// exists. Same code as a missing subject (404), with its own message.
	ErrSubjectErased = tutela.Errorf(tutela.ENOTFOUND, "subject was erased")
	// ErrSubjectMerged is the answer for any use of a subject merged into another (identity
	// merge): not found, without naming the survivor (a reader of one record learns nothing of
	// another). The merge records (SubjectMerges) name it for those who may merge.
	ErrSubjectMerged = tutela.Errorf(tutela.ENOTFOUND, "subject was merged into another subject")
)

// maxHoldReason bounds a hold's reason, in bytes.
const maxHoldReason = 500

const subjectCols = `id, tenant_id, created_by, created_at, updated_at, retain_until, erased_at, merged_into`

func scanSubject(sc interface{ Scan(...any) error }) (*Subject, error) {
	var s Subject
	var retain, erased sql.NullTime
	var merged sql.NullString
	if err := sc.Scan(&s.ID, &s.TenantID, &s.CreatedBy, &s.CreatedAt, &s.UpdatedAt, &retain, &erased, &merged); err != nil {
		return nil, err
	}
	s.MergedInto = merged.String
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	s.RetainUntil, s.ErasedAt = optTime(retain), optTime(erased)
	return &s, nil
}

// subject reads one live subject (lock: a row lock clause, PostgreSQL only). Missing or in
// another tenant: not found; erased: ErrSubjectErased; merged into another: ErrSubjectMerged.
func (r Subjects) subject(ctx context.Context, id, lock string) (*Subject, error) {
	s, err := r.anySubject(ctx, id, lock)
	if err == nil && s.MergedInto != "" {
		return nil, ErrSubjectMerged
	}
	return s, err
}

// anySubject is subject that also returns a subject merged into another.
func (r Subjects) anySubject(ctx context.Context, id, lock string) (*Subject, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return nil, errSubjectNotFound
	}
	if err := r.tx.partnerSees(ctx, r.tenantID, id, ""); err != nil {
		return nil, err
	}
	s, err := scanSubject(r.tx.queryRow(ctx, `SELECT `+subjectCols+` FROM subjects WHERE tenant_id = $1 AND id = $2`+
		r.tx.lockClause(lock), r.tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errSubjectNotFound
	}
	if err != nil {
		return nil, err
	}
	if s.ErasedAt != nil {
		return nil, ErrSubjectErased
	}
	return s, nil
}

// Create stores a new subject sealed by privacy.Subjects.SealNew: its wrapped key, ciphertexts
// and digests. The audit event names the fields set, never their values.
func (r Subjects) Create(ctx context.Context, s *privacy.Sealed) (*Subject, error) {
	if !tutela.ValidID(r.tenantID) || s == nil || !tutela.ValidID(s.SubjectID) || s.Wrapped == nil || len(s.Clear) > 0 {
		return nil, tutela.Errorf(tutela.EINVALID, "a new subject needs a sealed record from privacy.Subjects.SealNew")
	}
	if len(s.Values) == 0 {
		return nil, tutela.FieldErrorf("values", "at least one field value is required")
	}
	schema, err := r.tx.SubjectSchema(r.tenantID).get(ctx, "FOR SHARE")
	if err != nil {
		return nil, err
	}
	if err := checkSealed(schema, s); err != nil {
		return nil, err
	}
	ev := EventFromContext(ctx, "subject.create", r.tenantID, "subject", s.SubjectID, "", nil)
	now := r.tx.now
	// retain_until: the longest retention among the fields set (Update recomputes it).
	days := 0
	for name := range s.Values {
		f, _ := schema.Field(name)
		days = max(days, f.RetentionDays)
	}
	out := &Subject{ID: s.SubjectID, TenantID: r.tenantID, CreatedBy: ev.ActorID, CreatedAt: now, UpdatedAt: now}
	retain := now.AddDate(0, 0, days)
	out.RetainUntil = &retain
	if _, err := r.tx.exec(ctx, `INSERT INTO subjects (id, tenant_id, created_by, created_at, updated_at, retain_until) VALUES ($1, $2, $3, $4, $4, $5)`,
		s.SubjectID, r.tenantID, ev.ActorID, now, retain); err != nil {
		return nil, err
	}
	if err := r.tx.PersonKeys(r.tenantID).Create(ctx, s.SubjectID, PersonSubject, s.Wrapped); err != nil {
		return nil, err
	}
	if err := r.insertValues(ctx, s); err != nil {
		return nil, err
	}
	set, _ := s.Fields()
	ev.Details = map[string]any{"fields": set}
	if err := r.tx.Audit(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// insertValues upserts a sealed change's ciphertexts and inserts its digests, one statement
// each.
func (r Subjects) insertValues(ctx context.Context, s *privacy.Sealed) error {
	if len(s.Values) > 0 {
		var rows []string
		args := []any{r.tenantID, s.SubjectID, r.tx.now}
		for _, name := range slices.Sorted(maps.Keys(s.Values)) {
			rows = append(rows, fmt.Sprintf("($1, $2, $%d, $%d, $3)", len(args)+1, len(args)+2))
			args = append(args, name, s.Values[name])
		}
		if _, err := r.tx.exec(ctx, `INSERT INTO subject_values (tenant_id, subject_id, field, ciphertext, updated_at) VALUES `+
			strings.Join(rows, ", ")+`
			ON CONFLICT (tenant_id, subject_id, field) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
			args...); err != nil {
			return err
		}
	}
	if len(s.Digests) > 0 {
		var rows []string
		args := []any{r.tenantID, s.SubjectID}
		for _, name := range slices.Sorted(maps.Keys(s.Digests)) {
			d := s.Digests[name]
			rows = append(rows, fmt.Sprintf("($1, $%d, $%d, $%d, $2)", len(args)+1, len(args)+2, len(args)+3))
			args = append(args, name, int64(d.KeyID), d.Sum)
		}
		if _, err := r.tx.exec(ctx, `INSERT INTO subject_index (tenant_id, field, key_id, digest, subject_id) VALUES `+
			strings.Join(rows, ", "), args...); err != nil {
			return err
		}
	}
	return nil
}

// write stores a sealed change to an existing subject: it removes cleared fields and the old
// digests of every field changed, stores the new values and digests, and recomputes
// retain_until: now plus the longest retention among the fields the subject holds after the
// change (now when it holds none: nothing is left to keep).
func (r Subjects) write(ctx context.Context, s *privacy.Sealed) error {
	now := r.tx.now
	for _, name := range s.Clear {
		if _, err := r.tx.exec(ctx, `DELETE FROM subject_values WHERE tenant_id = $1 AND subject_id = $2 AND field = $3`,
			r.tenantID, s.SubjectID, name); err != nil {
			return err
		}
	}
	// Every field changed loses its old digests (under any key); the searchable ones set get
	// their new digest.
	for name := range s.Types {
		if _, err := r.tx.exec(ctx, `DELETE FROM subject_index WHERE tenant_id = $1 AND subject_id = $2 AND field = $3`,
			r.tenantID, s.SubjectID, name); err != nil {
			return err
		}
	}
	if err := r.insertValues(ctx, s); err != nil {
		return err
	}
	var days sql.NullInt64
	if err := r.tx.queryRow(ctx, `SELECT max(f.retention_days) FROM subject_values v
		JOIN subject_fields f ON f.tenant_id = v.tenant_id AND f.name = v.field
		WHERE v.tenant_id = $1 AND v.subject_id = $2`, r.tenantID, s.SubjectID).Scan(&days); err != nil {
		return err
	}
	retain := now.AddDate(0, 0, int(days.Int64))
	_, err := r.tx.exec(ctx, `UPDATE subjects SET updated_at = $1, retain_until = $2 WHERE tenant_id = $3 AND id = $4`,
		now, retain, r.tenantID, s.SubjectID)
	return err
}

// Update stores a change sealed by privacy.Subjects.SealUpdate. The audit event names the fields
// set and cleared.
func (r Subjects) Update(ctx context.Context, s *privacy.Sealed) (*Subject, error) {
	if s == nil || s.Wrapped != nil || len(s.Types) == 0 {
		return nil, tutela.Errorf(tutela.EINVALID, "a subject change needs a sealed record from privacy.Subjects.SealUpdate")
	}
	if _, err := r.subject(ctx, s.SubjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	schema, err := r.tx.SubjectSchema(r.tenantID).get(ctx, "FOR SHARE")
	if err != nil {
		return nil, err
	}
	if err := checkSealed(schema, s); err != nil {
		return nil, err
	}
	if err := r.write(ctx, s); err != nil {
		return nil, err
	}
	set, cleared := s.Fields()
	if err := r.tx.Record(ctx, "subject.update", r.tenantID, "subject", s.SubjectID, "", map[string]any{
		"set": nonNil(set), "cleared": nonNil(cleared)}); err != nil {
		return nil, err
	}
	return r.subject(ctx, s.SubjectID, "")
}

// Get returns a live subject with its wrapped key and ciphertexts. It writes no audit event:
// the caller records the read with its purpose and the fields it returned.
func (r Subjects) Get(ctx context.Context, id string) (*SubjectRecord, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return nil, errSubjectNotFound
	}
	if err := r.tx.partnerSees(ctx, r.tenantID, id, ""); err != nil {
		return nil, err
	}
	// The row and the wrapped key in one round trip: a read costs two queries, not three.
	var wrapped []byte
	var s Subject
	var retain, erased sql.NullTime
	var merged sql.NullString
	err := r.tx.queryRow(ctx, `SELECT s.id, s.tenant_id, s.created_by, s.created_at, s.updated_at, s.retain_until, s.erased_at,
		s.merged_into, k.wrapped
		FROM subjects s LEFT JOIN person_keys k ON k.tenant_id = s.tenant_id AND k.person_id = s.id
		WHERE s.tenant_id = $1 AND s.id = $2`, r.tenantID, id).Scan(&s.ID, &s.TenantID, &s.CreatedBy, &s.CreatedAt, &s.UpdatedAt,
		&retain, &erased, &merged, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errSubjectNotFound
	}
	if err != nil {
		return nil, err
	}
	if erased.Valid {
		return nil, ErrSubjectErased
	}
	if merged.Valid {
		return nil, ErrSubjectMerged
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	s.RetainUntil, s.ErasedAt = optTime(retain), optTime(erased)
	rows, err := r.tx.query(ctx, `SELECT field, ciphertext FROM subject_values WHERE tenant_id = $1 AND subject_id = $2 ORDER BY field`,
		r.tenantID, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rec := &SubjectRecord{Subject: s, Stored: privacy.Stored{SubjectID: id, Wrapped: wrapped, Values: map[string][]byte{}}}
	for rows.Next() {
		var f string
		var ct []byte
		if err := rows.Scan(&f, &ct); err != nil {
			return nil, err
		}
		rec.Stored.Values[f] = ct
	}
	return rec, rows.Err()
}

// List returns live subjects (IDs and times only), oldest first, up to limit after cursor (a
// subject ID). A transaction acting for a partner lists only the subjects an active share of
// the partner discloses.
func (r Subjects) List(ctx context.Context, cursor string, limit int) ([]*Subject, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, nil
	}
	q, args := `SELECT `+subjectCols+` FROM subjects WHERE tenant_id = $1 AND erased_at IS NULL AND merged_into IS NULL AND id > $2`,
		[]any{r.tenantID, cursorID(cursor), clampLimit(limit)}
	if r.tx.partner == scopeNone {
		return []*Subject{}, nil
	}
	if r.tx.partner != "" {
		q += ` AND EXISTS (SELECT 1 FROM partner_shares sh JOIN partners pa ON pa.tenant_id = sh.tenant_id AND pa.id = sh.partner_id
			WHERE sh.tenant_id = $1 AND sh.partner_id = $4 AND sh.subject_id = subjects.id AND sh.revoked_at IS NULL
			AND sh.expires_at > $5 AND pa.status = 'active')`
		args = append(args, r.tx.partner, r.tx.now)
	}
	rows, err := r.tx.query(ctx, q+` ORDER BY id LIMIT $3`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Subject{}
	for rows.Next() {
		s, err := scanSubject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Search returns the IDs of live subjects whose field has one of digests (privacy.Subjects.
// SearchDigests: the searched value's digests under each enabled blind-index key). It compares
// digests by SQL equality only: no LIKE, no key, nothing decrypted, so a miss costs the same
// index probe as a hit and reveals nothing by its timing beyond the result. A field that is not
// searchable is refused.
func (r Subjects) Search(ctx context.Context, field string, digests []privacy.Digest, limit int) ([]string, error) {
	schema, err := r.tx.SubjectSchema(r.tenantID).Get(ctx)
	if err != nil {
		return nil, err
	}
	if f, ok := schema.Field(field); !ok || !f.Searchable {
		return nil, tutela.FieldErrorf("field", "%s is not a searchable field of this tenant's subject schema", field)
	}
	out := []string{}
	if len(digests) == 0 || !tutela.ValidID(r.tenantID) {
		return out, nil
	}
	args := []any{r.tenantID, field}
	tuple := "($%d, $%d)"
	if r.tx.db.dialect == Postgres {
		tuple = "($%d::bigint, $%d::bytea)"
	}
	tuples := make([]string, len(digests))
	for i, d := range digests {
		tuples[i] = fmt.Sprintf(tuple, len(args)+1, len(args)+2)
		args = append(args, int64(d.KeyID), d.Sum)
	}
	args = append(args, clampLimit(limit))
	// A subject has one digest per field (write replaces them all), so no DISTINCT. SQLite's
	// planner, without statistics, would walk subject_index_subject to honour the ORDER BY (a
	// scan of the tenant's whole index); the unary + keeps it on the primary key's equality probe.
	order := "i.subject_id"
	if r.tx.db.dialect == SQLite {
		order = "+i.subject_id"
	}
	rows, err := r.tx.query(ctx, `SELECT i.subject_id FROM subject_index i
		JOIN subjects s ON s.tenant_id = i.tenant_id AND s.id = i.subject_id
		WHERE i.tenant_id = $1 AND i.field = $2 AND s.erased_at IS NULL AND s.merged_into IS NULL
		AND (i.key_id, i.digest) IN (VALUES `+strings.Join(tuples, ", ")+`)
		ORDER BY `+order+` LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if r.tx.partner == "" {
		return out, nil
	}
	// A partner finds only what its shares disclose: the others are left out as if they did
	// not match (Consent.Check then keeps only those shared for the search's purpose).
	seen := out[:0]
	for _, id := range out {
		switch err := r.tx.partnerSees(ctx, r.tenantID, id, ""); {
		case err == nil:
			seen = append(seen, id)
		case tutela.ErrorCode(err) != tutela.ENOTFOUND:
			return nil, err
		}
	}
	return seen, nil
}

// PlaceHold puts a legal hold on a live subject. The reason is required: it is what an erasure
// refused because of the hold names.
func (r Subjects) PlaceHold(ctx context.Context, subjectID, reason string) (*Hold, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxHoldReason || !tutela.ValidText(reason) {
		return nil, tutela.FieldErrorf("reason", "reason is required: one line of at most %d bytes", maxHoldReason)
	}
	if _, err := r.subject(ctx, subjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	ev := EventFromContext(ctx, "subject.hold.place", r.tenantID, "subject", subjectID, "", nil)
	h := &Hold{ID: tutela.NewID(), SubjectID: subjectID, Reason: reason, PlacedBy: ev.ActorID, PlacedAt: r.tx.now}
	if _, err := r.tx.exec(ctx, `INSERT INTO subject_holds (id, tenant_id, subject_id, reason, placed_by, placed_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, h.ID, r.tenantID, subjectID, h.Reason, h.PlacedBy, h.PlacedAt); err != nil {
		return nil, err
	}
	ev.Details = map[string]any{"hold_id": h.ID, "reason": h.Reason}
	return h, r.tx.Audit(ctx, ev)
}

// ReleaseHold releases an active hold of subjectID. A hold already released, of another subject
// or tenant, is not found.
func (r Subjects) ReleaseHold(ctx context.Context, subjectID, holdID string) (*Hold, error) {
	if _, err := r.subject(ctx, subjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	if !tutela.ValidID(holdID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "active hold not found")
	}
	ev := EventFromContext(ctx, "subject.hold.release", r.tenantID, "subject", subjectID, "", map[string]any{"hold_id": holdID})
	res, err := r.tx.exec(ctx, `UPDATE subject_holds SET released_by = $1, released_at = $2
		WHERE tenant_id = $3 AND subject_id = $4 AND id = $5 AND released_at IS NULL`,
		ev.ActorID, r.tx.now, r.tenantID, subjectID, holdID)
	if err := affectedOne(res, err, "active hold not found"); err != nil {
		return nil, err
	}
	if err := r.tx.Audit(ctx, ev); err != nil {
		return nil, err
	}
	holds, err := r.holds(ctx, subjectID, false)
	if err != nil {
		return nil, err
	}
	for _, h := range holds {
		if h.ID == holdID {
			return h, nil
		}
	}
	return nil, tutela.Errorf(tutela.ENOTFOUND, "active hold not found")
}

// Holds lists a subject's holds, active and released, oldest first. A share discloses a
// subject's record to a partner, not the legal matters around it: for a partner, none.
func (r Subjects) Holds(ctx context.Context, subjectID string) ([]*Hold, error) {
	if r.tx.partner != "" {
		return nil, errSubjectNotFound
	}
	if _, err := r.subject(ctx, subjectID, ""); err != nil && !errors.Is(err, ErrSubjectErased) {
		return nil, err
	}
	return r.holds(ctx, subjectID, false)
}

// ActiveHolds lists a subject's active holds, oldest first.
func (r Subjects) ActiveHolds(ctx context.Context, subjectID string) ([]*Hold, error) {
	if _, err := r.subject(ctx, subjectID, ""); err != nil {
		return nil, err
	}
	return r.holds(ctx, subjectID, true)
}

// mergedInto lists the live (not erased) subjects merged into survivorID, locked, by ID.
func (r Subjects) mergedInto(ctx context.Context, survivorID string) ([]string, error) {
	rows, err := r.tx.query(ctx, `SELECT id FROM subjects WHERE tenant_id = $1 AND merged_into = $2 AND erased_at IS NULL
		ORDER BY id`+r.tx.lockClause("FOR UPDATE"), r.tenantID, survivorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (r Subjects) holds(ctx context.Context, subjectID string, activeOnly bool) ([]*Hold, error) {
	q := `SELECT id, subject_id, reason, placed_by, placed_at, released_by, released_at FROM subject_holds
		WHERE tenant_id = $1 AND subject_id = $2`
	if activeOnly {
		q += ` AND released_at IS NULL`
	}
	rows, err := r.tx.query(ctx, q+` ORDER BY placed_at, id`, r.tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Hold{}
	for rows.Next() {
		var h Hold
		var by sql.NullString
		var at sql.NullTime
		if err := rows.Scan(&h.ID, &h.SubjectID, &h.Reason, &h.PlacedBy, &h.PlacedAt, &by, &at); err != nil {
			return nil, err
		}
		h.PlacedAt, h.ReleasedBy, h.ReleasedAt = h.PlacedAt.UTC(), by.String, optTime(at)
		out = append(out, &h)
	}
	return out, rows.Err()
}

// Erase crypto-shreds a subject (tx.ErasePerson: the key, values, digests and exports go, the
// ledger and audit log record who, why and on what legal basis) and marks its row erased. An
// active legal hold refuses it with a conflict naming the hold's reason, changing nothing.
//
// The subjects merged into it (identity merge) are the same person: they are erased with it, in
// this transaction, each with its own ledger entry. Their values stayed under their own keys
// (for unmerging), so the survivor's erasure must shred those keys too.
func (r Subjects) Erase(ctx context.Context, subjectID, reason, legalBasis, trigger string) (*Erasure, error) {
	if _, err := r.subject(ctx, subjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	merged, err := r.mergedInto(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	for _, id := range append([]string{subjectID}, merged...) {
		active, err := r.holds(ctx, id, true)
		if err != nil {
			return nil, err
		}
		if len(active) > 0 {
			return nil, tutela.Errorf(tutela.ECONFLICT, "subject is under a legal hold (%s); release the hold before erasing", active[0].Reason)
		}
	}
	for _, id := range merged {
		m := &Erasure{TenantID: r.tenantID, PersonID: id, Kind: PersonSubject, Trigger: trigger,
			Reason: strings.TrimSpace(reason), LegalBasis: strings.TrimSpace(legalBasis)}
		if err := r.tx.ErasePerson(ctx, m); err != nil {
			return nil, err
		}
		if _, err := r.tx.finishErasure(ctx, r.tenantID, id, PersonSubject, m.ErasedAt); err != nil {
			return nil, err
		}
	}
	e := &Erasure{TenantID: r.tenantID, PersonID: subjectID, Kind: PersonSubject, Trigger: trigger,
		Reason: strings.TrimSpace(reason), LegalBasis: strings.TrimSpace(legalBasis)}
	if err := r.tx.ErasePerson(ctx, e); err != nil {
		return nil, err
	}
	if _, err := r.tx.finishErasure(ctx, r.tenantID, subjectID, PersonSubject, e.ErasedAt); err != nil {
		return nil, err
	}
	return e, nil
}
