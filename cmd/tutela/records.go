package main

import (
	"encoding/json"
	"fmt"
	"io"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
)

// privacyRecordsCmd prints a tenant's record of processing activities (GDPR Art. 30), generated
// from the live configuration as GET /v1/tenants/{tenant}/records-of-processing does, for
// auditors who work offline.
type privacyRecordsCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
	Format string `enum:"json,csv" default:"json" help:"json (the full record, gaps first) or csv (one row per purpose and data category)."`
}

func (c privacyRecordsCmd) Run(e *env) error {
	return withTenant(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		rop, err := tx.Processing(t.ID).Generate(e.ctx)
		if err != nil {
			return err
		}
		if c.Format == "csv" {
			return privacy.WriteRecordsCSV(e.stdout, rop)
		}
		return writeIndented(e.stdout, rop)
	})
}

// privacySubprocessorsCmd prints a tenant's sub-processor register.
type privacySubprocessorsCmd struct {
	Tenant         string `required:"" help:"The tenant (slug or ID)."`
	Format         string `enum:"json,csv" default:"json" help:"json or csv."`
	IncludeRemoved bool   `name:"include-removed" help:"Also list removed sub-processors (with their removal date)."`
}

func (c privacySubprocessorsCmd) Run(e *env) error {
	return withTenant(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		subs, err := tx.Processing(t.ID).Subprocessors(e.ctx, c.IncludeRemoved)
		if err != nil {
			return err
		}
		if c.Format == "csv" {
			return privacy.WriteSubprocessorsCSV(e.stdout, subs)
		}
		return writeIndented(e.stdout, map[string]any{"subprocessors": subs})
	})
}

// withTenant opens the store and runs fn in a read transaction for the tenant ref names (slug
// or ID); an unknown tenant is an error, never an empty record.
func withTenant(e *env, ref string, fn func(*sqlstore.Tx, *tutela.Tenant) error) error {
	return inTenant(e, ref, false, fn)
}

// withTenantTx is withTenant in a write transaction.
func withTenantTx(e *env, ref string, fn func(*sqlstore.Tx, *tutela.Tenant) error) error {
	return inTenant(e, ref, true, fn)
}

func inTenant(e *env, ref string, write bool, fn func(*sqlstore.Tx, *tutela.Tenant) error) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.inTenant(e, ref, write, fn)
}

// inTenant runs fn in a transaction on m's store for the tenant ref names (slug or ID).
func (m *Main) inTenant(e *env, ref string, write bool, fn func(*sqlstore.Tx, *tutela.Tenant) error) error {
	run := m.DB.View
	if write {
		run = m.DB.Update
	}
	return run(e.ctx, func(tx *sqlstore.Tx) error {
		var t *tutela.Tenant
		var err error
		if tutela.ValidID(ref) {
			t, err = tx.Tenant(e.ctx, ref)
		} else {
			t, err = tx.TenantBySlug(e.ctx, ref)
		}
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return fmt.Errorf("--tenant %q: no such tenant (give a tenant slug or ID)", ref)
		}
		if err != nil {
			return err
		}
		return fn(tx, t)
	})
}

func writeIndented(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
