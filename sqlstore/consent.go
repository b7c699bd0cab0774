package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"tutela"
	"tutela/audit"
	"tutela/privacy"
)

// Consent is a tenant's register of purposes and its subjects' consents, objections and
// restrictions (issue 14). Check is what every processing of a subject for a purpose asks first,
// in the processing's own transaction: a withdrawal committed on any node refuses the next read.
type Consent struct {
	tx       *Tx
	tenantID string
}

// Consent returns tenantID's consent repository.
func (tx *Tx) Consent(tenantID string) Consent { return Consent{tx: tx, tenantID: tenantID} }

var errPurposeNotFound = tutela.Errorf(tutela.ENOTFOUND, "purpose not found in this tenant's register of purposes")

const purposeCols = `name, description, lawful_basis, notice_id, notice_version, consent_min_version, created_at, updated_at`

func scanPurpose(sc interface{ Scan(...any) error }) (*privacy.Purpose, error) {
	var p privacy.Purpose
	var basis string
	if err := sc.Scan(&p.Name, &p.Description, &basis, &p.NoticeID, &p.NoticeVersion, &p.ConsentMinVersion,
		&p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	p.LawfulBasis = privacy.LawfulBasis(basis)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

// Purposes lists the tenant's purposes by name.
func (c Consent) Purposes(ctx context.Context) ([]*privacy.Purpose, error) {
	rows, err := c.tx.query(ctx, `SELECT `+purposeCols+` FROM processing_purposes WHERE tenant_id = $1 ORDER BY name`, c.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*privacy.Purpose{}
	for rows.Next() {
		p, err := scanPurpose(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Purpose returns one purpose of the register (lock: a row lock clause, PostgreSQL only).
func (c Consent) Purpose(ctx context.Context, name string) (*privacy.Purpose, error) {
	return c.purpose(ctx, name, "")
}

func (c Consent) purpose(ctx context.Context, name, lock string) (*privacy.Purpose, error) {
	if !privacy.ValidName(name) || !tutela.ValidID(c.tenantID) {
		return nil, errPurposeNotFound
	}
	p, err := scanPurpose(c.tx.queryRow(ctx, `SELECT `+purposeCols+` FROM processing_purposes
		WHERE tenant_id = $1 AND name = $2`+c.tx.lockClause(lock), c.tenantID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errPurposeNotFound
	}
	return p, err
}

// PutPurpose declares a purpose or changes one. A purpose's lawful basis is fixed once
// declared (a basis cannot be swapped after the fact: declare a new purpose), so is its notice,
// and its notice version and the lowest version a consent counts for only grow. Raising ConsentMinVersion is
// how a new notice requires re-consent: consents to earlier versions stop counting at once.
func (c Consent) PutPurpose(ctx context.Context, p *privacy.Purpose) (created bool, err error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	old, err := c.purpose(ctx, p.Name, "FOR UPDATE")
	switch {
	case errors.Is(err, errPurposeNotFound):
		var n int
		if err := c.tx.queryRow(ctx, `SELECT COUNT(*) FROM processing_purposes WHERE tenant_id = $1`, c.tenantID).Scan(&n); err != nil {
			return false, err
		}
		if n >= privacy.MaxRegisteredPurposes {
			return false, tutela.Errorf(tutela.ECONFLICT, "a tenant may declare at most %d purposes", privacy.MaxRegisteredPurposes)
		}
		p.CreatedAt, p.UpdatedAt = c.tx.now, c.tx.now
		if _, err := c.tx.exec(ctx, `INSERT INTO processing_purposes (tenant_id, `+purposeCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, c.tenantID, p.Name, p.Description, string(p.LawfulBasis),
			p.NoticeID, p.NoticeVersion, p.ConsentMinVersion, p.CreatedAt, p.UpdatedAt); err != nil {
			return false, err
		}
		return true, c.tx.Record(ctx, "purpose.create", c.tenantID, "purpose", p.Name, "", purposeDetails(p))
	case err != nil:
		return false, err
	}
	switch {
	case old.LawfulBasis != p.LawfulBasis:
		return false, tutela.Errorf(tutela.ECONFLICT, "purpose %s is processed on %s; a lawful basis cannot change after the fact: declare a new purpose", p.Name, old.LawfulBasis)
	case old.NoticeID != p.NoticeID:
		// Consents name a notice by version only in consent_state: another notice's version N
		// would inherit the consents given to this one's version N.
		return false, tutela.FieldErrorf("notice_id", "purpose %s's notice is %s; a purpose's notice cannot be swapped: publish a new version of it, or declare a new purpose", p.Name, old.NoticeID)
	case p.NoticeVersion < old.NoticeVersion:
		return false, tutela.FieldErrorf("notice_version", "notice_version may not go back from %d", old.NoticeVersion)
	case p.ConsentMinVersion < old.ConsentMinVersion:
		return false, tutela.FieldErrorf("consent_min_version", "consent_min_version may not go back from %d: consents it voided stay void", old.ConsentMinVersion)
	}
	p.CreatedAt, p.UpdatedAt = old.CreatedAt, c.tx.now
	if _, err := c.tx.exec(ctx, `UPDATE processing_purposes SET description = $1, notice_id = $2, notice_version = $3,
		consent_min_version = $4, updated_at = $5 WHERE tenant_id = $6 AND name = $7`,
		p.Description, p.NoticeID, p.NoticeVersion, p.ConsentMinVersion, p.UpdatedAt, c.tenantID, p.Name); err != nil {
		return false, err
	}
	d := purposeDetails(p)
	d["previous_notice_version"], d["previous_consent_min_version"] = old.NoticeVersion, old.ConsentMinVersion
	return false, c.tx.Record(ctx, "purpose.update", c.tenantID, "purpose", p.Name, "", d)
}

func purposeDetails(p *privacy.Purpose) map[string]any {
	return map[string]any{"lawful_basis": string(p.LawfulBasis), "notice_id": p.NoticeID,
		"notice_version": p.NoticeVersion, "consent_min_version": p.ConsentMinVersion}
}

// Check reports whether subjectID may be processed for purpose now: nil, or an error saying
// why not. A purpose missing from the register is refused (every processing needs a declared
// lawful basis); a subject that does not exist or was erased is not found; a restricted
// subject is ERESTRICTED; a purpose on consent needs the subject's latest record to be a grant
// to a notice version of at least ConsentMinVersion, and an objection to a purpose refuses
// it: both ECONSENTREQUIRED. One query, in the caller's transaction: no cache, so a withdrawal
// committed on any node refuses the next processing everywhere.
func (c Consent) Check(ctx context.Context, subjectID, purpose string) error {
	if !tutela.ValidID(subjectID) {
		return errSubjectNotFound
	}
	// A partner processes a subject only for the purpose an active share of theirs names;
	// anything else is a subject that does not exist, before the purpose is even looked up.
	if c.tx.partner != "" {
		if !privacy.ValidName(purpose) {
			return errSubjectNotFound
		}
		if err := c.tx.partnerSees(ctx, c.tenantID, subjectID, purpose); err != nil {
			return err
		}
	}
	if !privacy.ValidName(purpose) || !tutela.ValidID(c.tenantID) {
		return errUndeclaredPurpose(purpose)
	}
	var basis string
	var minVersion int
	var action sql.NullString
	var version sql.NullInt64
	var restricted, objected bool
	var live sql.NullInt64 // NULL: no such subject in this tenant; 0: erased; 2: merged into another
	err := c.tx.queryRow(ctx, `SELECT p.lawful_basis, p.consent_min_version, cs.action, cs.notice_version,
		EXISTS (SELECT 1 FROM subject_restrictions r WHERE r.tenant_id = $1 AND r.subject_id = $2),
		EXISTS (SELECT 1 FROM subject_objections o WHERE o.tenant_id = $1 AND o.subject_id = $2 AND o.purpose = $3),
		(SELECT CASE WHEN s.erased_at IS NOT NULL THEN 0 WHEN s.merged_into IS NOT NULL THEN 2 ELSE 1 END
			FROM subjects s WHERE s.tenant_id = $1 AND s.id = $2)
		FROM processing_purposes p
		LEFT JOIN consent_state cs ON cs.tenant_id = p.tenant_id AND cs.subject_id = $2 AND cs.purpose = p.name
		WHERE p.tenant_id = $1 AND p.name = $3`, c.tenantID, subjectID, purpose).
		Scan(&basis, &minVersion, &action, &version, &restricted, &objected, &live)
	if errors.Is(err, sql.ErrNoRows) {
		return errUndeclaredPurpose(purpose)
	}
	if err != nil {
		return err
	}
	switch {
	case !live.Valid:
		// Fail closed: a purpose on another basis would otherwise allow a subject that is not
		// (or no longer) there.
		return errSubjectNotFound
	case live.Int64 == 0:
		return ErrSubjectErased
	case live.Int64 == 2:
		// The survivor holds its consents now (SubjectMerges.Merge moved them).
		return ErrSubjectMerged
	case restricted:
		return tutela.Errorf(tutela.ERESTRICTED, "processing of this subject is restricted: only storage is allowed until the restriction is lifted")
	case objected:
		return tutela.Errorf(tutela.ECONSENTREQUIRED, "the subject objected to processing for %s", purpose)
	case !privacy.LawfulBasis(basis).NeedsConsent():
		return nil
	case !action.Valid:
		return tutela.Errorf(tutela.ECONSENTREQUIRED, "the subject has not consented to %s", purpose)
	case action.String != string(privacy.ConsentGranted):
		return tutela.Errorf(tutela.ECONSENTREQUIRED, "the subject withdrew consent to %s", purpose)
	case version.Int64 < int64(minVersion):
		return tutela.Errorf(tutela.ECONSENTREQUIRED, "the subject consented to version %d of the notice for %s; version %d or later requires re-consent",
			version.Int64, purpose, minVersion)
	}
	return nil
}

// Declared refuses a purpose that is not in the register, with the same error Check gives: for
// a processing that asks about the purpose before it has a subject (a search).
func (c Consent) Declared(ctx context.Context, purpose string) error {
	_, err := c.Purpose(ctx, purpose)
	if errors.Is(err, errPurposeNotFound) {
		return errUndeclaredPurpose(purpose)
	}
	return err
}

func errUndeclaredPurpose(purpose string) error {
	return tutela.FieldErrorf("purpose", "%q is not in this tenant's register of purposes: declare it with its lawful basis first", purpose)
}

const consentCols = `id, subject_id, purpose, action, basis, notice_id, notice_version, channel, recorded_by,
	actor_type, actor_id, evidence, recorded_at`

// Record appends rec to the subject's consent history and makes it the current state for its
// purpose unless the state already holds a newer record, with its audit event. Records are
// stamped with their transaction's time, so a grant whose transaction began before a
// withdrawal's can commit after it: the state moves only forward in (recorded_at, id), the
// order History lists, so Check always answers from the history's latest record and a late
// older grant cannot undo a newer withdrawal (fail closed). rec.ID is set by the caller (the evidence's seal binds it);
// rec.EvidenceSealed holds the evidence sealed under the subject's key (privacy.EvidenceField).
// The purpose must be on consent; a grant names the purpose's notice and a version the purpose
// accepts (ConsentMinVersion to NoticeVersion); a withdrawal takes the current notice when it
// names none. The subject must exist and not be erased.
func (c Consent) Record(ctx context.Context, rec *privacy.ConsentRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if !tutela.ValidID(rec.ID) {
		return tutela.FieldErrorf("id", "a consent record needs its ID before it is sealed")
	}
	if (rec.Evidence != "") != (len(rec.EvidenceSealed) > 0) {
		return tutela.FieldErrorf("evidence", "evidence must be sealed under the subject's key before it is stored")
	}
	if _, err := c.tx.Subjects(c.tenantID).subject(ctx, rec.SubjectID, "FOR UPDATE"); err != nil {
		return err
	}
	p, err := c.Purpose(ctx, rec.Purpose)
	if errors.Is(err, errPurposeNotFound) {
		return errUndeclaredPurpose(rec.Purpose)
	}
	if err != nil {
		return err
	}
	if !p.LawfulBasis.NeedsConsent() {
		return tutela.FieldErrorf("purpose", "%s is processed on %s, not consent: there is no consent to record (an objection is a data-subject request)", p.Name, p.LawfulBasis)
	}
	if rec.Action == privacy.ConsentWithdrawn && rec.NoticeID == "" && rec.NoticeVersion == 0 {
		rec.NoticeID, rec.NoticeVersion = p.NoticeID, p.NoticeVersion
	}
	switch {
	case rec.NoticeID != p.NoticeID:
		return tutela.FieldErrorf("notice_id", "purpose %s's notice is %s", p.Name, p.NoticeID)
	case rec.NoticeVersion > p.NoticeVersion || rec.NoticeVersion < 1:
		return tutela.FieldErrorf("notice_version", "notice %s has versions 1 to %d", p.NoticeID, p.NoticeVersion)
	case rec.Action == privacy.ConsentGranted && rec.NoticeVersion < p.ConsentMinVersion:
		return tutela.FieldErrorf("notice_version", "consent to notice version %d no longer counts: version %d or later is required", rec.NoticeVersion, p.ConsentMinVersion)
	}
	ev := EventFromContext(ctx, "consent."+string(rec.Action), c.tenantID, "subject", rec.SubjectID, "", map[string]any{
		"record_id": rec.ID, "purpose": rec.Purpose, "lawful_basis": string(rec.Basis), "notice_id": rec.NoticeID,
		"notice_version": rec.NoticeVersion, "channel": rec.Channel, "recorded_by": rec.RecordedBy,
		"evidence": rec.Evidence != ""})
	// The handler's rule again, where every path meets: a person (or an unauthenticated
	// caller) never records as the subject, so never without evidence. Only a service account
	// (the subject-facing app) and the platform's own work (no request) may.
	person := ev.ActorType != audit.ActorServiceAccount && ev.ActorType != audit.ActorSystem
	if _, err := privacy.RecordedBy(person, rec.RecordedBy); err != nil {
		return err
	}
	rec.ActorType, rec.ActorID, rec.At = ev.ActorType, ev.ActorID, c.tx.now
	var evidence any
	if len(rec.EvidenceSealed) > 0 {
		evidence = rec.EvidenceSealed
	}
	if _, err := c.tx.exec(ctx, `INSERT INTO consent_records (tenant_id, `+consentCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, c.tenantID, rec.ID, rec.SubjectID,
		rec.Purpose, string(rec.Action), string(rec.Basis), rec.NoticeID, rec.NoticeVersion, rec.Channel, rec.RecordedBy,
		rec.ActorType, rec.ActorID, evidence, rec.At); err != nil {
		return err
	}
	if _, err := c.tx.exec(ctx, `INSERT INTO consent_state (tenant_id, subject_id, purpose, action, notice_version, record_id, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, subject_id, purpose) DO UPDATE SET
		action = excluded.action, notice_version = excluded.notice_version, record_id = excluded.record_id,
		updated_at = excluded.updated_at
		WHERE consent_state.updated_at < excluded.updated_at
		   OR (consent_state.updated_at = excluded.updated_at AND consent_state.record_id < excluded.record_id)`, c.tenantID, rec.SubjectID, rec.Purpose, string(rec.Action), rec.NoticeVersion,
		rec.ID, rec.At); err != nil {
		return err
	}
	return c.tx.Audit(ctx, ev)
}

// History returns the subject's consent records, oldest first, with their sealed evidence. It
// serves erased subjects too: the history proves what consent there was (GDPR Art. 7(1)); their
// evidence no longer opens. A survivor's history includes the records of the subjects merged
// into it (they stay under the merged subject's ID: the history is append-only); each record's
// SubjectID says whose key seals its evidence.
func (c Consent) History(ctx context.Context, subjectID string) ([]*privacy.ConsentRecord, error) {
	if !tutela.ValidID(subjectID) || !tutela.ValidID(c.tenantID) {
		return []*privacy.ConsentRecord{}, nil
	}
	// A share lets a partner process a subject for its purpose, not read the consent history.
	if c.tx.partner != "" {
		return nil, errSubjectNotFound
	}
	rows, err := c.tx.query(ctx, `SELECT `+consentCols+` FROM consent_records WHERE tenant_id = $1 AND (subject_id = $2
		OR subject_id IN (SELECT m.id FROM subjects m WHERE m.tenant_id = $1 AND m.merged_into = $2))
		ORDER BY recorded_at, id`, c.tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*privacy.ConsentRecord{}
	for rows.Next() {
		var r privacy.ConsentRecord
		var action, basis string
		if err := rows.Scan(&r.ID, &r.SubjectID, &r.Purpose, &action, &basis, &r.NoticeID, &r.NoticeVersion, &r.Channel,
			&r.RecordedBy, &r.ActorType, &r.ActorID, &r.EvidenceSealed, &r.At); err != nil {
			return nil, err
		}
		r.Action, r.Basis, r.At = privacy.ConsentAction(action), privacy.ConsentBasis(basis), r.At.UTC()
		out = append(out, &r)
	}
	return out, rows.Err()
}
