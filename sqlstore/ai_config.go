package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"

	"tutela"
	"tutela/ai"
	"tutela/privacy"
)

var (
	errNoModel   = tutela.Errorf(tutela.ENOTFOUND, "model not found")
	errNoPurpose = tutela.Errorf(tutela.ENOTFOUND, "no AI gateway entry for this purpose: it may not use the gateway")
)

const aiModelCols = `tenant_id, name, provider_id, upstream, kind, created_at`

func scanAIModel(row interface{ Scan(...any) error }) (*ai.Model, error) {
	var m ai.Model
	err := row.Scan(&m.TenantID, &m.Name, &m.ProviderID, &m.Upstream, &m.Kind, &m.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoModel
	}
	if err != nil {
		return nil, err
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return &m, nil
}

// PutModel creates the model m.Name or replaces it (keeping its CreatedAt), and records
// ai.model_put. Its provider must be one of the tenant's (else EINVALID, field provider_id); a
// tenant has at most ai.MaxModelsPerTenant models.
func (s AI) PutModel(ctx context.Context, m *ai.Model) error {
	if err := m.Check(); err != nil {
		return err
	}
	// The tenant's row serialises model and purpose changes: a purpose cannot name a model that
	// a concurrent DeleteModel removes, and two creations cannot both pass the cap.
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	n, err := s.tx.count(ctx, `SELECT count(*) FROM ai_providers WHERE tenant_id = $1 AND id = $2`, s.tenantID, m.ProviderID)
	if err != nil {
		return err
	}
	if n == 0 {
		return tutela.FieldErrorf("provider_id", "provider_id must name one of the tenant's providers")
	}
	old, err := s.Model(ctx, m.Name)
	switch {
	case err == nil:
		m.CreatedAt = old.CreatedAt
	case tutela.ErrorCode(err) == tutela.ENOTFOUND:
		total, err := s.tx.count(ctx, `SELECT count(*) FROM ai_models WHERE tenant_id = $1`, s.tenantID)
		if err != nil {
			return err
		}
		if total >= ai.MaxModelsPerTenant {
			return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d AI models; delete one first", ai.MaxModelsPerTenant)
		}
		m.CreatedAt = s.tx.now
	default:
		return err
	}
	m.TenantID = s.tenantID
	if _, err := s.tx.exec(ctx, `INSERT INTO ai_models (`+aiModelCols+`) VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (tenant_id, name) DO UPDATE SET provider_id = excluded.provider_id, upstream = excluded.upstream,
		kind = excluded.kind`, m.TenantID, m.Name, m.ProviderID, m.Upstream, string(m.Kind), m.CreatedAt); err != nil {
		return err
	}
	return s.tx.Record(ctx, "ai.model_put", s.tenantID, "ai_model", m.Name, "", map[string]any{
		"name": m.Name, "provider_id": m.ProviderID, "upstream": m.Upstream, "kind": string(m.Kind), "created": old == nil})
}

// DeleteModel deletes the model and records ai.model_delete. A model a purpose lists is a
// conflict: the purpose would name a model that no longer exists.
func (s AI) DeleteModel(ctx context.Context, name string) error {
	if !ai.ValidModelName(name) {
		return errNoModel
	}
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	m, err := s.Model(ctx, name)
	if err != nil {
		return err
	}
	purposes, err := s.Purposes(ctx)
	if err != nil {
		return err
	}
	var users []string
	for _, p := range purposes {
		if slices.Contains(p.Models, name) {
			users = append(users, p.Purpose)
		}
	}
	if len(users) > 0 {
		return tutela.Errorf(tutela.ECONFLICT, "purposes %v use this model; remove it from them first", users)
	}
	if _, err := s.tx.exec(ctx, `DELETE FROM ai_models WHERE tenant_id = $1 AND name = $2`, s.tenantID, name); err != nil {
		return err
	}
	return s.tx.Record(ctx, "ai.model_delete", s.tenantID, "ai_model", name, "",
		map[string]any{"name": name, "provider_id": m.ProviderID})
}

// Model returns the tenant's model called name.
func (s AI) Model(ctx context.Context, name string) (*ai.Model, error) {
	if !tutela.ValidID(s.tenantID) || !ai.ValidModelName(name) {
		return nil, errNoModel
	}
	return scanAIModel(s.tx.queryRow(ctx, `SELECT `+aiModelCols+` FROM ai_models WHERE tenant_id = $1 AND name = $2`,
		s.tenantID, name))
}

// Models lists the tenant's models by name.
func (s AI) Models(ctx context.Context) ([]*ai.Model, error) {
	out := []*ai.Model{}
	if !tutela.ValidID(s.tenantID) {
		return out, nil
	}
	rows, err := s.tx.query(ctx, `SELECT `+aiModelCols+` FROM ai_models WHERE tenant_id = $1 ORDER BY name`, s.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanAIModel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const aiPurposeCols = `tenant_id, purpose, models, max_output_tokens, updated_at, updated_by`

func scanAIPurpose(row interface{ Scan(...any) error }) (*ai.Purpose, error) {
	var p ai.Purpose
	var models string
	err := row.Scan(&p.TenantID, &p.Purpose, &models, &p.MaxOutputTokens, &p.UpdatedAt, &p.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoPurpose
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(models), &p.Models); err != nil {
		return nil, tutela.Wrap(err, "AI purpose row unreadable")
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return &p, nil
}

// PutPurpose creates or replaces the gateway entry of p.Purpose and records ai.purpose_put.
// Every model it lists must be one of the tenant's (else EINVALID, field models, naming it).
func (s AI) PutPurpose(ctx context.Context, p *ai.Purpose) error {
	if err := p.Check(); err != nil {
		return err
	}
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	// Processing needs a lawful basis: only a purpose in the register may use the gateway.
	if err := s.tx.Consent(s.tenantID).Declared(ctx, p.Purpose); err != nil {
		return err
	}
	for _, name := range p.Models {
		if _, err := s.Model(ctx, name); tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return tutela.FieldErrorf("models", "model %q is not one of the tenant's models", name)
		} else if err != nil {
			return err
		}
	}
	ev := EventFromContext(ctx, "ai.purpose_put", s.tenantID, "ai_purpose", p.Purpose, "", nil)
	p.TenantID, p.UpdatedAt, p.UpdatedBy = s.tenantID, s.tx.now, ev.ActorID
	if _, err := s.tx.exec(ctx, `INSERT INTO ai_purposes (`+aiPurposeCols+`) VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (tenant_id, purpose) DO UPDATE SET models = excluded.models, max_output_tokens = excluded.max_output_tokens,
		updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		p.TenantID, p.Purpose, jsonList(p.Models), p.MaxOutputTokens, p.UpdatedAt, p.UpdatedBy); err != nil {
		return err
	}
	ev.Details = map[string]any{"purpose": p.Purpose, "models": p.Models, "max_output_tokens": p.MaxOutputTokens}
	return s.tx.Audit(ctx, ev)
}

// DeletePurpose deletes the purpose's gateway entry (the purpose may no longer use the gateway)
// and records ai.purpose_delete.
func (s AI) DeletePurpose(ctx context.Context, purpose string) error {
	if !tutela.ValidID(s.tenantID) || !privacy.ValidPurpose(purpose) {
		return errNoPurpose
	}
	res, err := s.tx.exec(ctx, `DELETE FROM ai_purposes WHERE tenant_id = $1 AND purpose = $2`, s.tenantID, purpose)
	if err := affectedOne(res, err, errNoPurpose.Message); err != nil {
		return err
	}
	return s.tx.Record(ctx, "ai.purpose_delete", s.tenantID, "ai_purpose", purpose, "", map[string]any{"purpose": purpose})
}

// Purpose returns the gateway entry of purpose; ENOTFOUND means the purpose may not use the
// gateway at all.
func (s AI) Purpose(ctx context.Context, purpose string) (*ai.Purpose, error) {
	if !tutela.ValidID(s.tenantID) || !privacy.ValidPurpose(purpose) {
		return nil, errNoPurpose
	}
	return scanAIPurpose(s.tx.queryRow(ctx, `SELECT `+aiPurposeCols+` FROM ai_purposes WHERE tenant_id = $1 AND purpose = $2`,
		s.tenantID, purpose))
}

// Purposes lists the tenant's gateway entries by purpose.
func (s AI) Purposes(ctx context.Context) ([]*ai.Purpose, error) {
	out := []*ai.Purpose{}
	if !tutela.ValidID(s.tenantID) {
		return out, nil
	}
	rows, err := s.tx.query(ctx, `SELECT `+aiPurposeCols+` FROM ai_purposes WHERE tenant_id = $1 ORDER BY purpose`, s.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanAIPurpose(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Settings returns the tenant's gateway settings: the defaults (no limits, no national
// identifier detectors) when none were saved.
func (s AI) Settings(ctx context.Context) (*ai.Settings, error) {
	st := &ai.Settings{TenantID: s.tenantID, IDCountries: []string{}}
	if !tutela.ValidID(s.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	var countries string
	err := s.tx.queryRow(ctx, `SELECT requests_per_minute, tokens_per_day, tokens_per_month, id_countries, updated_at, updated_by
		FROM ai_settings WHERE tenant_id = $1`, s.tenantID).Scan(&st.RequestsPerMinute, &st.TokensPerDay, &st.TokensPerMonth,
		&countries, &st.UpdatedAt, &st.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(countries), &st.IDCountries); err != nil {
		return nil, tutela.Wrap(err, "AI settings row unreadable")
	}
	if st.IDCountries == nil {
		st.IDCountries = []string{}
	}
	st.UpdatedAt = st.UpdatedAt.UTC()
	return st, nil
}

// PutSettings saves the tenant's gateway settings and records ai.settings_put with them (they
// hold no secret).
func (s AI) PutSettings(ctx context.Context, st *ai.Settings) error {
	if err := st.Check(); err != nil {
		return err
	}
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	ev := EventFromContext(ctx, "ai.settings_put", s.tenantID, "ai_settings", s.tenantID, "", nil)
	st.TenantID, st.UpdatedAt, st.UpdatedBy = s.tenantID, s.tx.now, ev.ActorID
	_, err := s.tx.exec(ctx, `INSERT INTO ai_settings (tenant_id, requests_per_minute, tokens_per_day, tokens_per_month,
		id_countries, updated_at, updated_by) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (tenant_id) DO UPDATE SET
		requests_per_minute = excluded.requests_per_minute, tokens_per_day = excluded.tokens_per_day,
		tokens_per_month = excluded.tokens_per_month, id_countries = excluded.id_countries, updated_at = excluded.updated_at,
		updated_by = excluded.updated_by`, st.TenantID, st.RequestsPerMinute, st.TokensPerDay, st.TokensPerMonth,
		jsonList(st.IDCountries), st.UpdatedAt, st.UpdatedBy)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return err
	}
	ev.Details = map[string]any{"requests_per_minute": st.RequestsPerMinute, "tokens_per_day": st.TokensPerDay,
		"tokens_per_month": st.TokensPerMonth, "id_countries": st.IDCountries}
	return s.tx.Audit(ctx, ev)
}
