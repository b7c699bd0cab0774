package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"tutela"
	"tutela/partners"
)

// Partners is a tenant's partner organisations (issue 18). Shares and referrals have their
// own files; this one holds the organisations and their allow-listed redirect URLs.
type Partners struct {
	tx       *Tx
	tenantID string
}

// Partners scopes the partner store to one tenant.
func (tx *Tx) Partners(tenantID string) Partners { return Partners{tx: tx, tenantID: tenantID} }

var errNoPartner = tutela.Errorf(tutela.ENOTFOUND, "partner not found")

const partnerCols = `id, tenant_id, name, status, redirect_urls, created_by, created_at, updated_at`

// Create stores a new partner (validated; ID assigned, active unless given, times now) and
// audits partner.created. A name already used in the tenant is a conflict.
func (s Partners) Create(ctx context.Context, p *partners.Partner) error {
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if p.Status == "" {
		p.Status = partners.StatusActive
	}
	if p.RedirectURLs == nil {
		p.RedirectURLs = []string{}
	}
	if err := p.Validate(); err != nil {
		return err
	}
	p.ID, p.TenantID, p.CreatedAt, p.UpdatedAt = tutela.NewID(), s.tenantID, s.tx.now, s.tx.now
	urls, err := json.Marshal(p.RedirectURLs)
	if err != nil {
		return err
	}
	if _, err := s.tx.exec(ctx, `INSERT INTO partners (`+partnerCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		p.ID, p.TenantID, p.Name, string(p.Status), string(urls), p.CreatedBy, p.CreatedAt, p.UpdatedAt); err != nil {
		if tutela.ErrorCode(err) == tutela.ECONFLICT {
			return &tutela.Error{Code: tutela.ECONFLICT, Field: "name", Message: "a partner with this name exists"}
		}
		return err
	}
	return s.tx.Record(ctx, "partner.created", s.tenantID, "partner", p.ID, "",
		map[string]any{"name": p.Name, "redirect_urls": p.RedirectURLs})
}

// Get returns the tenant's partner; another tenant's, an unknown or a malformed ID is not found.
func (s Partners) Get(ctx context.Context, id string) (*partners.Partner, error) {
	return s.get(ctx, id, "")
}

func (s Partners) get(ctx context.Context, id, lock string) (*partners.Partner, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoPartner
	}
	return scanPartner(s.tx.queryRow(ctx, `SELECT `+partnerCols+` FROM partners WHERE tenant_id = $1 AND id = $2`+
		s.tx.lockClause(lock), s.tenantID, id))
}

// List returns the tenant's partners by name.
func (s Partners) List(ctx context.Context) ([]partners.Partner, error) {
	out := []partners.Partner{}
	if !tutela.ValidID(s.tenantID) {
		return out, nil
	}
	rows, err := s.tx.query(ctx, `SELECT `+partnerCols+` FROM partners WHERE tenant_id = $1 ORDER BY name, id`, s.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPartner(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// PartnerUpdate changes a partner; nil fields stay as they are.
type PartnerUpdate struct {
	Name         *string
	Status       *partners.Status
	RedirectURLs *[]string
}

// Update changes a partner and audits partner.updated with what changed (URLs in full: they
// are where people are sent, so an auditor must see each version).
func (s Partners) Update(ctx context.Context, id string, u PartnerUpdate) (*partners.Partner, error) {
	p, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	details := map[string]any{}
	if u.Name != nil && *u.Name != p.Name {
		p.Name, details["name"] = *u.Name, *u.Name
	}
	if u.Status != nil && *u.Status != p.Status {
		p.Status, details["status"] = *u.Status, string(*u.Status)
	}
	if u.RedirectURLs != nil {
		p.RedirectURLs, details["redirect_urls"] = *u.RedirectURLs, *u.RedirectURLs
		if p.RedirectURLs == nil {
			p.RedirectURLs = []string{}
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(details) == 0 {
		return p, nil
	}
	urls, err := json.Marshal(p.RedirectURLs)
	if err != nil {
		return nil, err
	}
	p.UpdatedAt = s.tx.now
	if _, err := s.tx.exec(ctx, `UPDATE partners SET name = $1, status = $2, redirect_urls = $3, updated_at = $4
		WHERE tenant_id = $5 AND id = $6`, p.Name, string(p.Status), string(urls), p.UpdatedAt, s.tenantID, p.ID); err != nil {
		if tutela.ErrorCode(err) == tutela.ECONFLICT {
			return nil, &tutela.Error{Code: tutela.ECONFLICT, Field: "name", Message: "a partner with this name exists"}
		}
		return nil, err
	}
	return p, s.tx.Record(ctx, "partner.updated", s.tenantID, "partner", p.ID, "", details)
}

func scanPartner(row interface{ Scan(...any) error }) (*partners.Partner, error) {
	var p partners.Partner
	var status, urls string
	err := row.Scan(&p.ID, &p.TenantID, &p.Name, &status, &urls, &p.CreatedBy, &p.CreatedAt, &p.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoPartner
	}
	if err != nil {
		return nil, err
	}
	p.Status = partners.Status(status)
	if err := json.Unmarshal([]byte(urls), &p.RedirectURLs); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}
