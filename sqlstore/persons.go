package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"tutela"
)

// People behind accounts (migration 00028). Approvals compare people, not accounts, so that
// nobody approves their own request through a second account or a service account they made.

// PersonOf returns the person behind an account of the tenant: for a user, their person_id or,
// unlinked, their own ID; for a service account, the person of the user who created it (a
// service account made by a service account inherits its creator, see CreateServiceAccount),
// or "sa:"+ID when no user created it. An unknown account is ENOTFOUND.
func (tx *Tx) PersonOf(ctx context.Context, tenantID, kind, id string) (string, error) {
	if !tutela.ValidID(tenantID) || !tutela.ValidID(id) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "account not found")
	}
	switch kind {
	case tutela.PrincipalUser:
		var p string
		err := tx.queryRow(ctx, `SELECT COALESCE(CAST(person_id AS TEXT), CAST(id AS TEXT)) FROM users
			WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&p)
		if errors.Is(err, sql.ErrNoRows) {
			return "", tutela.Errorf(tutela.ENOTFOUND, "user not found")
		}
		return p, err
	case tutela.PrincipalServiceAccount:
		var creator string
		err := tx.queryRow(ctx, `SELECT created_by FROM service_accounts WHERE tenant_id = $1 AND id = $2`,
			tenantID, id).Scan(&creator)
		if errors.Is(err, sql.ErrNoRows) {
			return "", tutela.Errorf(tutela.ENOTFOUND, "service account not found")
		}
		if err != nil {
			return "", err
		}
		if creator == "" {
			return "sa:" + id, nil
		}
		p, err := tx.PersonOf(ctx, tenantID, tutela.PrincipalUser, creator)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			// The creator's account is gone; their ID still names them.
			return creator, nil
		}
		return p, err
	}
	return "", tutela.Errorf(tutela.ENOTFOUND, "account not found")
}

// LinkPerson records that users userID and sameAs of the tenant are one person: every account
// of either person gets one person_id (the two sets merge). It only ever joins people, which
// makes approvals stricter; there is no unlink. Audits user.person_linked with the
// justification. Already one person: nothing changes and false is returned.
func (tx *Tx) LinkPerson(ctx context.Context, tenantID, userID, sameAs, justification string) (bool, error) {
	if userID == sameAs {
		return false, tutela.FieldErrorf("same_as", "same_as must name another account")
	}
	// Both persons' accounts are rewritten; the tenant lock orders concurrent links.
	if err := tx.lockTenant(ctx, tenantID); err != nil {
		return false, err
	}
	a, err := tx.PersonOf(ctx, tenantID, tutela.PrincipalUser, userID)
	if err != nil {
		return false, err
	}
	b, err := tx.PersonOf(ctx, tenantID, tutela.PrincipalUser, sameAs)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return false, &tutela.Error{Code: tutela.EINVALID, Field: "same_as", Message: "same_as must name a user of this tenant"}
	}
	if err != nil {
		return false, err
	}
	if a == b {
		return false, nil
	}
	if _, err := tx.exec(ctx, `UPDATE users SET person_id = $1 WHERE tenant_id = $2
		AND (CAST(COALESCE(person_id, id) AS TEXT) = $3 OR CAST(COALESCE(person_id, id) AS TEXT) = $4)`,
		a, tenantID, a, b); err != nil {
		return false, err
	}
	return true, tx.Record(ctx, "user.person_linked", tenantID, "user", userID, "", map[string]any{
		"same_as": sameAs, "justification": justification})
}

// ServiceAccountCreator returns the user recorded as having created the tenant's service
// account ("" when none did).
func (tx *Tx) ServiceAccountCreator(ctx context.Context, tenantID, id string) (string, error) {
	if !tutela.ValidID(tenantID) || !tutela.ValidID(id) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	var creator string
	err := tx.queryRow(ctx, `SELECT created_by FROM service_accounts WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&creator)
	if errors.Is(err, sql.ErrNoRows) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	return creator, err
}
