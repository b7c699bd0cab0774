package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"tutela"
)

// TenantAllowsServiceAccountTakeover reports whether the tenant lets its service accounts
// perform account-takeover operations (authz.TakeoverOperations). Off unless set.
func (tx *Tx) TenantAllowsServiceAccountTakeover(ctx context.Context, tenantID string) (bool, error) {
	var v bool
	err := tx.queryRow(ctx, `SELECT service_accounts_may_take_over FROM tenants WHERE id = $1`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return v, err
}

// SetTenantAllowsServiceAccountTakeover sets that policy; the change is audited.
func (tx *Tx) SetTenantAllowsServiceAccountTakeover(ctx context.Context, tenantID string, v bool) error {
	res, err := tx.exec(ctx, `UPDATE tenants SET service_accounts_may_take_over = $1 WHERE id = $2`, v, tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.service_account_takeover_policy", tenantID, "tenant", tenantID, "",
		map[string]any{"service_accounts_may_take_over_accounts": v})
}
