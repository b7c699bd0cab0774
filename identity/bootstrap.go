// Package identity is sign-in: users' credentials, sessions and tokens. It starts with
// bootstrap, the only way the first platform super-admin comes to exist.
package identity

import (
	"context"
	"strings"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// SetupTokenTTL is how long a bootstrap setup token stays valid.
const SetupTokenTTL = time.Hour

// RoleSuperAdmin is the platform super-administrator role's key.
const RoleSuperAdmin = "super_admin"

// BootstrapResult is what Bootstrap made. Token is shown to the operator once and never stored.
type BootstrapResult struct {
	Tenant        *tutela.Tenant
	User          *tutela.User
	Token         tutela.Secret
	ExpiresAt     time.Time
	TenantCreated bool
}

// Bootstrap creates the first super-admin: the tenant (if it does not exist yet), a user with no
// password, the super_admin grant, and a one-time setup token the person exchanges for a password
// through POST /v1/auth/setup. It refuses when any super-admin exists, so it can never be used
// to mint a second all-powerful account; the check and the grant run under one lock, so two
// concurrent bootstraps on different nodes cannot both pass it.
func Bootstrap(ctx context.Context, db *sqlstore.DB, slug, email, region string) (*BootstrapResult, error) {
	if region == "" {
		region = "default"
	}
	res := &BootstrapResult{}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Lock(ctx, sqlstore.LockBootstrap); err != nil {
			return err
		}
		n, err := tx.CountRoleHolders(ctx, RoleSuperAdmin)
		if err != nil {
			return err
		}
		if n > 0 {
			return tutela.Errorf(tutela.ECONFLICT, "a super-admin already exists; bootstrap runs only once")
		}
		tenant, err := tx.TenantBySlug(ctx, slug)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			tenant = &tutela.Tenant{Slug: slug, Name: slug, Region: region}
			if err = tx.CreateTenant(ctx, tenant); err != nil {
				return err
			}
			res.TenantCreated = true
		}
		if err != nil {
			return err
		}
		return createSuperAdmin(ctx, tx, tenant, strings.TrimSpace(email), res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// createSuperAdmin creates a user of tenant with email, grants it super_admin and a one-time
// setup token (no password, no factor), and fills res: what bootstrap and a super-admin
// recovery both make.
func createSuperAdmin(ctx context.Context, tx *sqlstore.Tx, tenant *tutela.Tenant, email string, res *BootstrapResult) error {
	user := &tutela.User{Email: email}
	if err := tx.Users(tenant.ID).Create(ctx, user); err != nil {
		return err
	}
	if err := tx.Users(tenant.ID).Grant(ctx, user.ID, RoleSuperAdmin, "", nil); err != nil {
		return err
	}
	tok, t, err := tx.Users(tenant.ID).CreateToken(ctx, user.ID, sqlstore.TokenSetup, SetupTokenTTL)
	if err != nil {
		return err
	}
	res.Tenant, res.User, res.Token, res.ExpiresAt = tenant, user, tutela.NewSecret(tok), t.ExpiresAt
	return nil
}
