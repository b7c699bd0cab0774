package sqlstore

import (
	"context"
	"strconv"
	"strings"

	"tutela"
)

// Data residency (docs/residency.md): a store opened with Options.Region serves the tenants of
// that region only. The check sits where a tenant is resolved (Tenant, TenantBySlug) and where
// one is written (CreateTenant, UpdateTenant): every request names its tenant through those, so
// a tenant of another region is refused before any of its data is read for the caller, and
// nothing is written for it. Background work that selects rows of many tenants at once (the job
// queue, the retention sweeps) scopes its queries with regionScope instead.

// Region is the data region the store serves, "" when it is not bound to one.
func (db *DB) Region() string { return db.region }

// servesRegion refuses t when the store is bound to another region than t's. ref is the tenant
// as the caller named it (ID or slug), the only part of the tenant the message repeats. The
// refusal is noted in the request's metadata for its residency.refused audit event: the
// transaction it ends rolls back, so the store cannot record it here.
func (tx *Tx) servesRegion(ctx context.Context, ref string, t *tutela.Tenant) error {
	node := tx.db.region
	if node == "" || t.Region == node {
		return nil
	}
	tutela.NoteResidencyRefusal(ctx, tutela.ResidencyRefusal{TenantID: t.ID, TenantRegion: t.Region, NodeRegion: node})
	return wrongRegion(ref, t.Region, node)
}

func wrongRegion(ref, tenantRegion, node string) error {
	return tutela.Errorf(tutela.EWRONGREGION, "tenant %q belongs to data region %q and this node serves region %q: "+
		"send the request to a node of region %q", ref, tenantRegion, node, tenantRegion)
}

// placeInRegion refuses to create a tenant in, or move one to, another region than the store's:
// its data would then be written by a node outside the region it must stay in. The refusal is
// noted for the request's residency.refused event, like servesRegion's.
func (tx *Tx) placeInRegion(ctx context.Context, t *tutela.Tenant) error {
	node := tx.db.region
	if node == "" || t.Region == node {
		return nil
	}
	tutela.NoteResidencyRefusal(ctx, tutela.ResidencyRefusal{TenantID: t.ID, TenantRegion: t.Region, NodeRegion: node})
	return &tutela.Error{Code: tutela.EWRONGREGION, Field: "data_region", Message: "this node serves data region " +
		strconv.Quote(node) + " and cannot place a tenant in region " + strconv.Quote(t.Region) +
		": create or move it through a node of that region"}
}

// regionScope returns the condition that limits a query to the tenants of the store's region,
// to append to its WHERE clause, and args with the region added as its parameter; col is the
// column holding the tenant ID, and with nullable a row of no tenant matches too (it belongs to
// no region, so any node may do it). A store bound to no region gets "" and args unchanged.
func (tx *Tx) regionScope(col string, nullable bool, args ...any) (string, []any) {
	return tx.regionScopeOf(col, "id", nullable, args)
}

// regionScopeText is regionScope for a column that holds tenant IDs as text (jobs.tenant_id),
// which PostgreSQL does not compare with a UUID.
func (tx *Tx) regionScopeText(col string, nullable bool, args ...any) (string, []any) {
	return tx.regionScopeOf(col, "CAST(id AS TEXT)", nullable, args)
}

// regionWhere is regionScope for a query with no WHERE clause of its own: " WHERE cond", or ""
// on a store bound to no region.
func (tx *Tx) regionWhere(col string) (string, []any) {
	scope, args := tx.regionScope(col, false)
	if scope == "" {
		return "", nil
	}
	return " WHERE" + strings.TrimPrefix(scope, " AND"), args
}

func (tx *Tx) regionScopeOf(col, id string, nullable bool, args []any) (string, []any) {
	if tx.db.region == "" {
		return "", args
	}
	args = append(args, tx.db.region)
	cond := col + ` IN (SELECT ` + id + ` FROM tenants WHERE data_region = $` + strconv.Itoa(len(args)) + `)`
	if nullable {
		cond = `(` + col + ` IS NULL OR ` + cond + `)`
	}
	return ` AND ` + cond, args
}
