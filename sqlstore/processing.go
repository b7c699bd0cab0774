package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"tutela"
	"tutela/privacy"
)

// Processing is a tenant's records of processing and sub-processor register (issue 14, GDPR
// Art. 30 and 28). Only declarations are stored; Generate merges them with the live register of
// purposes and subject schema in one read transaction.
type Processing struct {
	tx       *Tx
	tenantID string
}

// Processing returns tenantID's records-of-processing repository.
func (tx *Tx) Processing(tenantID string) Processing { return Processing{tx: tx, tenantID: tenantID} }

var (
	errControllerNotFound   = tutela.Errorf(tutela.ENOTFOUND, "no controller details are declared for this tenant")
	errSubprocessorNotFound = tutela.Errorf(tutela.ENOTFOUND, "sub-processor not found")
)

// Controller returns the tenant's controller details, or not found when none are declared.
func (p Processing) Controller(ctx context.Context) (*privacy.Controller, error) {
	if !tutela.ValidID(p.tenantID) {
		return nil, errControllerNotFound
	}
	var c privacy.Controller
	err := p.tx.queryRow(ctx, `SELECT name, contact, dpo_contact, representative, updated_at FROM processing_controllers
		WHERE tenant_id = $1`, p.tenantID).Scan(&c.Name, &c.Contact, &c.DPOContact, &c.Representative, &c.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errControllerNotFound
	}
	if err != nil {
		return nil, err
	}
	c.UpdatedAt = c.UpdatedAt.UTC()
	return &c, nil
}

// PutController declares or replaces the controller's details. The audit event names the
// fields that changed, not their values.
func (p Processing) PutController(ctx context.Context, c *privacy.Controller) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := p.lockTenant(ctx); err != nil {
		return err
	}
	old, err := p.Controller(ctx)
	if err != nil && !errors.Is(err, errControllerNotFound) {
		return err
	}
	c.UpdatedAt = p.tx.now
	if _, err := p.tx.exec(ctx, `INSERT INTO processing_controllers (tenant_id, name, contact, dpo_contact, representative, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, contact = excluded.contact,
		dpo_contact = excluded.dpo_contact, representative = excluded.representative, updated_at = excluded.updated_at`,
		p.tenantID, c.Name, c.Contact, c.DPOContact, c.Representative, c.UpdatedAt); err != nil {
		return err
	}
	if old == nil {
		old = &privacy.Controller{}
	}
	changed := changedFields(map[string]bool{"name": old.Name != c.Name, "contact": old.Contact != c.Contact,
		"dpo_contact": old.DPOContact != c.DPOContact, "representative": old.Representative != c.Representative})
	return p.tx.Record(ctx, "processing.controller_update", p.tenantID, "tenant", p.tenantID, "",
		map[string]any{"changed": changed})
}

// lockTenant checks the tenant exists and, on PostgreSQL, serializes this tenant's register
// changes on its row (caps are counted, then rows inserted).
func (p Processing) lockTenant(ctx context.Context) error {
	if !tutela.ValidID(p.tenantID) {
		return errProcessingTenantNotFound
	}
	var id string
	err := p.tx.queryRow(ctx, `SELECT id FROM tenants WHERE id = $1`+p.tx.lockClause("FOR NO KEY UPDATE"), p.tenantID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return errProcessingTenantNotFound
	}
	return err
}

var errProcessingTenantNotFound = tutela.Errorf(tutela.ENOTFOUND, "tenant not found")

func changedFields(m map[string]bool) []string {
	out := []string{}
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

const recordCols = `purpose, subject_categories, recipients, transfers, retention_note, security_measures, created_at, updated_at`

func scanRecord(sc interface{ Scan(...any) error }) (*privacy.Record, error) {
	var r privacy.Record
	var subjects, recipients, transfers string
	if err := sc.Scan(&r.Purpose, &subjects, &recipients, &transfers, &r.RetentionNote, &r.SecurityMeasures,
		&r.CreatedAt, &r.UpdatedAt); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		s string
		v any
	}{{subjects, &r.SubjectCategories}, {recipients, &r.Recipients}, {transfers, &r.Transfers}} {
		if err := json.Unmarshal([]byte(c.s), c.v); err != nil {
			return nil, err
		}
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return &r, nil
}

// Records lists the declared records by purpose.
func (p Processing) Records(ctx context.Context) ([]*privacy.Record, error) {
	out := []*privacy.Record{}
	if !tutela.ValidID(p.tenantID) {
		return out, nil
	}
	rows, err := p.tx.query(ctx, `SELECT `+recordCols+` FROM processing_records WHERE tenant_id = $1 ORDER BY purpose`, p.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutRecord declares or replaces what is known about the processing for r.Purpose, which must
// be in the register of purposes (not found otherwise: there is nothing to record against a
// purpose without a lawful basis).
func (p Processing) PutRecord(ctx context.Context, r *privacy.Record) (created bool, err error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	if _, err := p.tx.Consent(p.tenantID).purpose(ctx, r.Purpose, "FOR UPDATE"); err != nil {
		return false, err
	}
	old, err := scanRecord(p.tx.queryRow(ctx, `SELECT `+recordCols+` FROM processing_records WHERE tenant_id = $1 AND purpose = $2`,
		p.tenantID, r.Purpose))
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	r.UpdatedAt, r.CreatedAt = p.tx.now, p.tx.now
	action := "processing.record_create"
	changed := []string{"recipients", "retention_note", "security_measures", "subject_categories", "transfers"}
	if old != nil {
		r.CreatedAt, action = old.CreatedAt, "processing.record_update"
		changed = changedFields(map[string]bool{"subject_categories": !slices.Equal(old.SubjectCategories, r.SubjectCategories),
			"recipients": !slices.Equal(old.Recipients, r.Recipients), "transfers": !slices.Equal(old.Transfers, r.Transfers),
			"retention_note": old.RetentionNote != r.RetentionNote, "security_measures": old.SecurityMeasures != r.SecurityMeasures})
	}
	if _, err := p.tx.exec(ctx, `INSERT INTO processing_records (tenant_id, `+recordCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (tenant_id, purpose) DO UPDATE SET subject_categories = excluded.subject_categories,
		recipients = excluded.recipients, transfers = excluded.transfers, retention_note = excluded.retention_note,
		security_measures = excluded.security_measures, updated_at = excluded.updated_at`,
		p.tenantID, r.Purpose, enc(r.SubjectCategories), enc(r.Recipients), enc(r.Transfers), r.RetentionNote,
		r.SecurityMeasures, r.CreatedAt, r.UpdatedAt); err != nil {
		return false, err
	}
	unsafe := 0
	for _, tr := range r.Transfers {
		if tr.Safeguard == privacy.SafeguardNone {
			unsafe++
		}
	}
	return old == nil, p.tx.Record(ctx, action, p.tenantID, "purpose", r.Purpose, "", map[string]any{
		"changed": changed, "transfers": len(r.Transfers), "transfers_without_safeguard": unsafe})
}

// Generate builds the tenant's record of processing from the live register of purposes and
// subject schema, the declarations and the active sub-processors, all read in this transaction.
func (p Processing) Generate(ctx context.Context) (*privacy.RecordsOfProcessing, error) {
	t, err := p.tx.Tenant(ctx, p.tenantID)
	if err != nil {
		return nil, err
	}
	in := privacy.RecordsInput{}
	if in.Controller, err = p.Controller(ctx); err != nil && !errors.Is(err, errControllerNotFound) {
		return nil, err
	}
	if in.Purposes, err = p.tx.Consent(p.tenantID).Purposes(ctx); err != nil {
		return nil, err
	}
	if in.Schema, err = p.tx.SubjectSchema(p.tenantID).Get(ctx); err != nil {
		return nil, err
	}
	if in.Records, err = p.Records(ctx); err != nil {
		return nil, err
	}
	if in.Subprocessors, err = p.Subprocessors(ctx, false); err != nil {
		return nil, err
	}
	purposes, gaps := privacy.BuildRecords(in)
	return &privacy.RecordsOfProcessing{TenantID: t.ID, TenantSlug: t.Slug, TenantName: t.Name, GeneratedAt: p.tx.now,
		Gaps: gaps, Controller: in.Controller, Purposes: purposes, Subprocessors: in.Subprocessors}, nil
}

const subprocessorCols = `id, name, service, locations, data_categories, transfer_safeguard, safeguard_details, contract_ref,
	status, added_at, updated_at, removed_at`

func scanSubprocessor(sc interface{ Scan(...any) error }) (*privacy.Subprocessor, error) {
	var s privacy.Subprocessor
	var locations, categories, safeguard, status string
	var removed sql.NullTime
	if err := sc.Scan(&s.ID, &s.Name, &s.Service, &locations, &categories, &safeguard, &s.SafeguardDetails, &s.ContractRef,
		&status, &s.AddedAt, &s.UpdatedAt, &removed); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(locations), &s.Locations); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(categories), &s.DataCategories); err != nil {
		return nil, err
	}
	s.TransferSafeguard, s.Status = privacy.Safeguard(safeguard), privacy.SubprocessorStatus(status)
	s.AddedAt, s.UpdatedAt = s.AddedAt.UTC(), s.UpdatedAt.UTC()
	if removed.Valid {
		at := removed.Time.UTC()
		s.RemovedAt = &at
	}
	return &s, nil
}

// Subprocessors lists the register in the order sub-processors were added; removed ones only
// with includeRemoved.
func (p Processing) Subprocessors(ctx context.Context, includeRemoved bool) ([]*privacy.Subprocessor, error) {
	out := []*privacy.Subprocessor{}
	if !tutela.ValidID(p.tenantID) {
		return out, nil
	}
	q := `SELECT ` + subprocessorCols + ` FROM subprocessors WHERE tenant_id = $1`
	if !includeRemoved {
		q += ` AND status = 'active'`
	}
	rows, err := p.tx.query(ctx, q+` ORDER BY added_at, id`, p.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSubprocessor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Subprocessor returns one sub-processor of the tenant, removed or not.
func (p Processing) Subprocessor(ctx context.Context, id string) (*privacy.Subprocessor, error) {
	return p.subprocessor(ctx, id, "")
}

func (p Processing) subprocessor(ctx context.Context, id, lock string) (*privacy.Subprocessor, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(p.tenantID) {
		return nil, errSubprocessorNotFound
	}
	s, err := scanSubprocessor(p.tx.queryRow(ctx, `SELECT `+subprocessorCols+` FROM subprocessors WHERE tenant_id = $1 AND id = $2`+
		p.tx.lockClause(lock), p.tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errSubprocessorNotFound
	}
	return s, err
}

// AddSubprocessor adds s to the register as active; s.ID and the dates are set here.
func (p Processing) AddSubprocessor(ctx context.Context, s *privacy.Subprocessor) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := p.lockTenant(ctx); err != nil {
		return err
	}
	var n int
	if err := p.tx.queryRow(ctx, `SELECT COUNT(*) FROM subprocessors WHERE tenant_id = $1`, p.tenantID).Scan(&n); err != nil {
		return err
	}
	if n >= privacy.MaxSubprocessors {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant's sub-processor register holds at most %d entries, removed ones included", privacy.MaxSubprocessors)
	}
	s.ID, s.Status, s.AddedAt, s.UpdatedAt, s.RemovedAt = tutela.NewID(), privacy.SubprocessorActive, p.tx.now, p.tx.now, nil
	if err := p.writeSubprocessor(ctx, s, true); err != nil {
		return err
	}
	return p.tx.Record(ctx, "subprocessor.add", p.tenantID, "subprocessor", s.ID, "", map[string]any{
		"locations": slices.Clone(s.Locations), "transfer_safeguard": string(s.TransferSafeguard)})
}

// UpdateSubprocessor replaces an active sub-processor's declared fields; a removed one is a
// conflict (its row is history).
func (p Processing) UpdateSubprocessor(ctx context.Context, s *privacy.Subprocessor) error {
	if err := s.Validate(); err != nil {
		return err
	}
	old, err := p.subprocessor(ctx, s.ID, "FOR UPDATE")
	if err != nil {
		return err
	}
	if old.Status != privacy.SubprocessorActive {
		return tutela.Errorf(tutela.ECONFLICT, "the sub-processor was removed; its entry is kept unchanged as history")
	}
	s.Status, s.AddedAt, s.UpdatedAt, s.RemovedAt = old.Status, old.AddedAt, p.tx.now, nil
	if err := p.writeSubprocessor(ctx, s, false); err != nil {
		return err
	}
	changed := changedFields(map[string]bool{"name": old.Name != s.Name, "service": old.Service != s.Service,
		"locations": !slices.Equal(old.Locations, s.Locations), "data_categories": !slices.Equal(old.DataCategories, s.DataCategories),
		"transfer_safeguard": old.TransferSafeguard != s.TransferSafeguard, "safeguard_details": old.SafeguardDetails != s.SafeguardDetails,
		"contract_ref": old.ContractRef != s.ContractRef})
	return p.tx.Record(ctx, "subprocessor.update", p.tenantID, "subprocessor", s.ID, "", map[string]any{"changed": changed})
}

// RemoveSubprocessor marks an active sub-processor removed as of now; the row stays.
func (p Processing) RemoveSubprocessor(ctx context.Context, id string) (*privacy.Subprocessor, error) {
	s, err := p.subprocessor(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if s.Status != privacy.SubprocessorActive {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the sub-processor was already removed on %s", s.RemovedAt.Format(time.DateOnly))
	}
	now := p.tx.now
	if _, err := p.tx.exec(ctx, `UPDATE subprocessors SET status = 'removed', removed_at = $1, updated_at = $1
		WHERE tenant_id = $2 AND id = $3`, now, p.tenantID, id); err != nil {
		return nil, err
	}
	s.Status, s.RemovedAt, s.UpdatedAt = privacy.SubprocessorRemoved, &now, now
	return s, p.tx.Record(ctx, "subprocessor.remove", p.tenantID, "subprocessor", id, "", map[string]any{})
}

func (p Processing) writeSubprocessor(ctx context.Context, s *privacy.Subprocessor, insert bool) error {
	locations, err := json.Marshal(s.Locations)
	if err != nil {
		return err
	}
	categories, err := json.Marshal(s.DataCategories)
	if err != nil {
		return err
	}
	if insert {
		_, err = p.tx.exec(ctx, `INSERT INTO subprocessors (tenant_id, `+subprocessorCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)`, p.tenantID, s.ID, s.Name, s.Service,
			string(locations), string(categories), string(s.TransferSafeguard), s.SafeguardDetails, s.ContractRef,
			string(s.Status), s.AddedAt, s.UpdatedAt)
		return err
	}
	_, err = p.tx.exec(ctx, `UPDATE subprocessors SET name = $1, service = $2, locations = $3, data_categories = $4,
		transfer_safeguard = $5, safeguard_details = $6, contract_ref = $7, updated_at = $8 WHERE tenant_id = $9 AND id = $10`,
		s.Name, s.Service, string(locations), string(categories), string(s.TransferSafeguard), s.SafeguardDetails,
		s.ContractRef, s.UpdatedAt, p.tenantID, s.ID)
	return err
}
