package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The records-of-processing tables (migration 00023) carry row-level security: a runtime role
// scoped to tenant A sees none of B's controller, declarations or sub-processors, even with a
// query that forgets the tenant.
func TestRLS_ProcessingTablesSeeOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var a, b *tutela.Tenant
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		a, b = &tutela.Tenant{Slug: "a", Name: "A", Region: "eu"}, &tutela.Tenant{Slug: "b", Name: "B", Region: "eu"}
		for _, tn := range []*tutela.Tenant{a, b} {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			if _, err := tx.Consent(tn.ID).PutPurpose(ctx, &privacy.Purpose{Name: "aid", Description: "Aid", LawfulBasis: privacy.BasisContract}); err != nil {
				return err
			}
			p := tx.Processing(tn.ID)
			if err := p.PutController(ctx, &privacy.Controller{Name: tn.Name, Contact: "c"}); err != nil {
				return err
			}
			if _, err := p.PutRecord(ctx, &privacy.Record{Purpose: "aid"}); err != nil {
				return err
			}
			if err := p.AddSubprocessor(ctx, &privacy.Subprocessor{Name: "S", Service: "s", Locations: []string{"DE"}, ContractRef: "x"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tables := []string{"processing_controllers", "processing_records", "subprocessors"}
	wantOneRowPerTenant(t, db, dsn, a.ID, tables...)
}
