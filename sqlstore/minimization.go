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

// MinimizationProfiles is the tenant's store of minimization profiles, one per purpose.
type MinimizationProfiles struct {
	tx       *Tx
	tenantID string
}

// MinimizationProfiles returns tenantID's profiles.
func (tx *Tx) MinimizationProfiles(tenantID string) MinimizationProfiles {
	return MinimizationProfiles{tx: tx, tenantID: tenantID}
}

var errNoProfile = tutela.Errorf(tutela.ENOTFOUND, "no minimization profile for this purpose")

// Get returns the profile for purpose (ENOTFOUND when there is none: nothing may pass).
func (r MinimizationProfiles) Get(ctx context.Context, purpose string) (*privacy.Profile, error) {
	if !tutela.ValidID(r.tenantID) || !privacy.ValidPurpose(purpose) {
		return nil, errNoProfile
	}
	var rules string
	p := &privacy.Profile{Purpose: purpose}
	err := r.tx.queryRow(ctx, `SELECT rules, updated_by, updated_at FROM minimization_profiles WHERE tenant_id = $1 AND purpose = $2`,
		r.tenantID, purpose).Scan(&rules, &p.UpdatedBy, &p.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoProfile
	}
	if err != nil {
		return nil, err
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(rules), &p.Fields); err != nil {
		return nil, err
	}
	return p, nil
}

// Put creates or replaces the profile for p.Purpose and records minimization_profile.put with
// the field names per action (no values: a profile holds none).
func (r MinimizationProfiles) Put(ctx context.Context, p *privacy.Profile) error {
	if !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if p.Fields == nil {
		p.Fields = map[string]privacy.Rule{}
	}
	if err := p.Check(); err != nil {
		return err
	}
	rules, err := json.Marshal(p.Fields)
	if err != nil {
		return err
	}
	ev := EventFromContext(ctx, "minimization_profile.put", r.tenantID, "minimization_profile", p.Purpose, "", nil)
	p.UpdatedAt, p.UpdatedBy = r.tx.now.UTC().Truncate(time.Microsecond), ev.ActorID
	if _, err := r.tx.exec(ctx, `INSERT INTO minimization_profiles (tenant_id, purpose, rules, updated_by, updated_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, purpose) DO UPDATE SET rules = excluded.rules,
		updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		r.tenantID, p.Purpose, string(rules), p.UpdatedBy, p.UpdatedAt); err != nil {
		return err
	}
	byAction := map[string]any{}
	for name, rule := range p.Fields {
		l, _ := byAction[string(rule.Action)].([]string)
		byAction[string(rule.Action)] = append(l, name)
	}
	for _, l := range byAction {
		slices.Sort(l.([]string))
	}
	ev.Details = map[string]any{"purpose": p.Purpose, "fields": byAction}
	return r.tx.Audit(ctx, ev)
}
