package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"

	"tutela"
)

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidSlug reports whether s is a tenant slug: 1–63 lowercase letters, digits and inner hyphens.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// DefaultRegion is the region `tutela bootstrap` gives the first tenant when none is named; it
// predates region codes and stays valid so bootstrap keeps working.
const DefaultRegion = "default"

// ValidRegion reports whether s is a data region code (tutela.ValidRegionCode, whose pattern
// httpapi's openapi.json states too) or DefaultRegion.
func ValidRegion(s string) bool { return s == DefaultRegion || tutela.ValidRegionCode(s) }

func validateTenant(t *tutela.Tenant) error {
	switch {
	case !ValidSlug(t.Slug):
		return tutela.FieldErrorf("slug", "slug must be 1-63 lowercase letters, digits or hyphens")
	case strings.TrimSpace(t.Name) == "" || len(t.Name) > 200:
		return tutela.FieldErrorf("name", "name must be 1-200 characters")
	case !tutela.ValidText(t.Name):
		return tutela.InvalidText("name")
	case !ValidRegion(t.Region):
		return tutela.FieldErrorf("data_region", `data_region must be a region code such as "eu", "eu-west" or "ch-geneva-1"`)
	case !t.Status.Valid():
		return tutela.FieldErrorf("status", "status must be active or disabled")
	}
	return nil
}

// CreateTenant inserts t, assigning its ID and creation time. A tenant without a mode serves
// people (provisioning), as every tenant made before modes existed.
func (tx *Tx) CreateTenant(ctx context.Context, t *tutela.Tenant) error {
	if t.Status == "" {
		t.Status = tutela.StatusActive
	}
	if t.Mode == "" {
		t.Mode = tutela.TenantProvisioning
	}
	if !t.Mode.Valid() {
		return tutela.FieldErrorf("mode", "mode must be simulation or provisioning")
	}
	if err := validateTenant(t); err != nil {
		return err
	}
	if err := tx.placeInRegion(ctx, t); err != nil {
		return err
	}
	t.ID, t.CreatedAt = tutela.NewID(), tx.now
	_, err := tx.exec(ctx, `INSERT INTO tenants (id, slug, name, data_region, status, mode, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.ID, t.Slug, t.Name, t.Region, string(t.Status), string(t.Mode), t.CreatedAt)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant with slug %q already exists", t.Slug)
	}
	if err != nil {
		return err
	}
	tx.newTenants[t.ID] = true
	return tx.Record(ctx, "tenant.create", t.ID, "tenant", t.ID, "", map[string]any{"slug": t.Slug, "data_region": t.Region,
		"mode": string(t.Mode)})
}

const tenantCols = `id, slug, name, data_region, status, mode, created_at`

// prefixedTenantCols is tenantCols of the table aliased t (TestPrefixedCols keeps them equal).
const prefixedTenantCols = `t.id, t.slug, t.name, t.data_region, t.status, t.mode, t.created_at`

// tenantRow receives tenantCols (dest) and makes the Tenant of them (tenant), so a statement
// may read a tenant among other columns.
type tenantRow struct {
	t            tutela.Tenant
	status, mode string
}

func (r *tenantRow) dest() []any {
	return []any{&r.t.ID, &r.t.Slug, &r.t.Name, &r.t.Region, &r.status, &r.mode, &r.t.CreatedAt}
}

func (r *tenantRow) tenant() *tutela.Tenant {
	t := r.t
	t.Status, t.Mode, t.CreatedAt = tutela.Status(r.status), tutela.TenantMode(r.mode), t.CreatedAt.UTC()
	return &t
}

func scanTenant(row interface{ Scan(...any) error }) (*tutela.Tenant, error) {
	var r tenantRow
	if err := row.Scan(r.dest()...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		return nil, err
	}
	return r.tenant(), nil
}

// Tenant returns the tenant with the given ID.
func (tx *Tx) Tenant(ctx context.Context, id string) (*tutela.Tenant, error) {
	if !tutela.ValidID(id) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	t, err := scanTenant(tx.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1`, id))
	if err != nil {
		return nil, err
	}
	return t, tx.servesRegion(ctx, id, t)
}

// TenantBySlug returns the tenant with the given slug.
func (tx *Tx) TenantBySlug(ctx context.Context, slug string) (*tutela.Tenant, error) {
	t, err := scanTenant(tx.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE slug = $1`, slug))
	if err != nil {
		return nil, err
	}
	return t, tx.servesRegion(ctx, slug, t)
}

// ListTenants returns up to limit tenants ordered by ID, after the ID in cursor ("" = start). A
// store bound to a region lists that region's tenants only: the others are served by their own
// region's nodes, and even their names and slugs are theirs to show.
func (tx *Tx) ListTenants(ctx context.Context, cursor string, limit int) ([]*tutela.Tenant, error) {
	scope, args := tx.regionScope("id", false, cursorID(cursor), clampLimit(limit))
	rows, err := tx.query(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id > $1`+scope+` ORDER BY id LIMIT $2`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tutela.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// UpdateTenant saves t's name, region and status (never its mode: PromoteTenant). A store bound to a region changes only its
// region's tenants, and cannot move one out of it: the move is made on a node of neither
// region (docs/residency.md), with the data moved first.
func (tx *Tx) UpdateTenant(ctx context.Context, t *tutela.Tenant) error {
	if err := validateTenant(t); err != nil {
		return err
	}
	if err := tx.placeInRegion(ctx, t); err != nil {
		return err
	}
	if tx.db.region != "" {
		// The tenant must be this region's now too: moving one in from another region would
		// take over data this node must not hold.
		if _, err := tx.Tenant(ctx, t.ID); err != nil {
			return err
		}
	}
	scope, args := tx.regionScope("id", false, t.Name, t.Region, string(t.Status), t.ID)
	res, err := tx.exec(ctx, `UPDATE tenants SET name = $1, data_region = $2, status = $3 WHERE id = $4`+scope, args...)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.update", t.ID, "tenant", t.ID, "", map[string]any{"data_region": t.Region, "status": string(t.Status)})
}

// PromoteTenant moves a tenant from simulation to provisioning and records tenant.promoted
// with the justification given and the approval it ran under ("" for each when there is
// none). There is no way back, and a tenant already in provisioning is a conflict. The row
// changes only while it is still in simulation, so of two concurrent promotions one records.
func (tx *Tx) PromoteTenant(ctx context.Context, t *tutela.Tenant, justification, approvalID string) error {
	scope, args := tx.regionScope("id", false, string(tutela.TenantProvisioning), t.ID, string(tutela.TenantSimulation))
	res, err := tx.exec(ctx, `UPDATE tenants SET mode = $1 WHERE id = $2 AND mode = $3`+scope, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		cur, err := tx.Tenant(ctx, t.ID)
		if err != nil {
			return err
		}
		return tutela.Errorf(tutela.ECONFLICT, "the tenant is already in %s", cur.Mode)
	}
	t.Mode = tutela.TenantProvisioning
	details := map[string]any{"from": string(tutela.TenantSimulation), "to": string(tutela.TenantProvisioning)}
	if approvalID != "" {
		details["approval_id"] = approvalID
	}
	ev := EventFromContext(ctx, "tenant.promoted", t.ID, "tenant", t.ID, "", details)
	ev.Reason = justification
	return tx.Audit(ctx, ev)
}

// cursorID turns an opaque cursor into the ID to continue after. The nil UUID sorts before every
// UUIDv7, so it starts from the beginning in both dialects.
func cursorID(c string) string {
	if c == "" || !tutela.ValidID(c) {
		return "00000000-0000-0000-0000-000000000000"
	}
	return c
}

// MaxPageSize bounds every list query.
const MaxPageSize = 200

func clampLimit(n int) int {
	if n <= 0 || n > MaxPageSize {
		return MaxPageSize
	}
	return n
}

func affectedOne(res sql.Result, err error, notFound string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return tutela.Errorf(tutela.ENOTFOUND, "%s", notFound)
	}
	return nil
}
