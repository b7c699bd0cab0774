package main

import (
	"fmt"

	"tutela/identity"
)

type recoverCmd struct {
	SuperAdmin recoverSuperAdminCmd `cmd:"" name:"super-admin" help:"Create a new platform super-admin when every one is lost: a one-time setup token, audited with the reason."`
}

type recoverSuperAdminCmd struct {
	Tenant string `required:"" help:"Slug of the existing tenant the new super-admin joins."`
	Email  string `required:"" help:"E-mail address of the new super-admin (not an existing user's)."`
	Reason string `required:"" help:"Why the recovery is needed (recorded in the audit log)."`
}

// Run is host-only by construction: it needs the database and the keys, which the API never
// exposes (identity.RecoverSuperAdmin, docs/RUNBOOKS.md "Lost super-admin").
func (c recoverSuperAdminCmd) Run(e *env) error {
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := identity.RecoverSuperAdmin(e.ctx, m.DB, c.Tenant, c.Email, c.Reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Created super-admin %s in tenant %q (audited as admin.super_admin_recovery).\n\n", res.User.Email, res.Tenant.Slug)
	fmt.Fprintf(e.stdout, "One-time setup token (shown once, valid until %s):\n\n    %s\n\n",
		res.ExpiresAt.Format("2006-01-02 15:04:05 UTC"), res.Token.Reveal())
	fmt.Fprintf(e.stdout, "Exchange it for a password at %s/v1/auth/setup, enrol a second factor, then review the lost accounts.\n", m.BaseURL())
	return nil
}
