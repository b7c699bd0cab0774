package identity

import (
	"context"
	"strings"

	"tutela"
	"tutela/sqlstore"
)

// MaxRecoveryReason is the longest reason a super-admin recovery takes, in characters.
const MaxRecoveryReason = 500

// RecoverSuperAdmin is the host's way back when every platform super-admin is lost (left,
// locked out for good, factors gone): a new user in an existing tenant with no password and no
// factor, the super_admin grant, and a one-time setup token (SetupTokenTTL, stored only as a
// hash) the person exchanges for a password at POST /v1/auth/setup, then enrols a second factor.
// Nothing about the lost accounts changes: the new super-admin decides about them (revoke their
// sessions, disable them) through the API, audited as usual.
//
// It is not an API: only someone who can run `tutela` against the database and its keys can
// call it, who could already change the database directly; the point is that the recovery is
// recorded (admin.super_admin_recovery, with the reason and how many super-admins existed) in
// the same transaction, not silent. It creates no password, so there is nothing default to
// guess; an unused token expires.
func RecoverSuperAdmin(ctx context.Context, db *sqlstore.DB, slug, email, reason string) (*BootstrapResult, error) {
	email = strings.TrimSpace(email)
	if !tutela.ValidJustification(reason, MaxRecoveryReason) {
		return nil, tutela.Errorf(tutela.EINVALID, "reason: say why the recovery is needed (free text, at most %d characters)", MaxRecoveryReason)
	}
	res := &BootstrapResult{}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		// The bootstrap lock: a recovery and a bootstrap on two nodes are serialized.
		if err := tx.Lock(ctx, sqlstore.LockBootstrap); err != nil {
			return err
		}
		existing, err := tx.CountRoleHolders(ctx, RoleSuperAdmin)
		if err != nil {
			return err
		}
		tenant, err := tx.TenantBySlug(ctx, slug)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return tutela.Errorf(tutela.ENOTFOUND, "no tenant %q: recover into the tenant the super-admins belong to", slug)
		}
		if err != nil {
			return err
		}
		if err := createSuperAdmin(ctx, tx, tenant, email, res); err != nil {
			return err
		}
		return tx.Record(ctx, "admin.super_admin_recovery", tenant.ID, "user", res.User.ID, "",
			map[string]any{"reason": reason, "existing_super_admins": existing})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
