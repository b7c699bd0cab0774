package storetest

import (
	"errors"
	"sync"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// TenantModeTests: a tenant starts in simulation or provisioning (the default, as every tenant
// made before modes existed), is promoted once and never goes back.
var TenantModeTests = []Test{
	{"TenantModeDefaultsToProvisioningAndSimulationIsKept", testTenantModeCreate},
	{"TenantModeInvalidRefused", testTenantModeInvalid},
	{"TenantPromotionOnceAuditedNeverBack", testTenantPromotion},
	{"TenantPromotionConcurrentRecordsOnce", testTenantPromotionConcurrent},
}

func readTenant(t *testing.T, db *sqlstore.DB, id string) *tutela.Tenant {
	t.Helper()
	var got *tutela.Tenant
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Tenant(ctx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return got
}

func createSimulation(t *testing.T, db *sqlstore.DB, slug string) *tutela.Tenant {
	t.Helper()
	tn := &tutela.Tenant{Slug: slug, Name: "Tenant " + slug, Region: "eu-west", Mode: tutela.TenantSimulation}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
	return tn
}

func testTenantModeCreate(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	prod := createTenant(t, db, "prod")
	if prod.Mode != tutela.TenantProvisioning || prod.Simulation() {
		t.Fatalf("default mode = %q", prod.Mode)
	}
	sim := createSimulation(t, db, "rehearsal")
	got := readTenant(t, db, sim.ID)
	if got.Mode != tutela.TenantSimulation || !got.Simulation() {
		t.Fatalf("read back mode %q, want simulation", got.Mode)
	}
	if readTenant(t, db, prod.ID).Mode != tutela.TenantProvisioning {
		t.Fatal("provisioning tenant read back in another mode")
	}
	// UpdateTenant saves name, region and status, never the mode: a caller holding a tenant
	// value with another mode cannot promote (or demote) it by saving it.
	got.Mode, got.Name = tutela.TenantProvisioning, "Renamed"
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, got) })
	if after := readTenant(t, db, sim.ID); after.Mode != tutela.TenantSimulation || after.Name != "Renamed" {
		t.Fatalf("after UpdateTenant: %+v", after)
	}
	p := readTenant(t, db, prod.ID)
	p.Mode = tutela.TenantSimulation
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, p) })
	if readTenant(t, db, prod.ID).Mode != tutela.TenantProvisioning {
		t.Fatal("UpdateTenant put a provisioning tenant back in simulation")
	}
}

func testTenantModeInvalid(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	for _, m := range []tutela.TenantMode{"production", "Simulation", " simulation"} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "x", Name: "x", Region: "eu", Mode: m})
		})
		var e *tutela.Error
		if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != "mode" {
			t.Errorf("CreateTenant(mode %q) = %v, want invalid on mode", m, err)
		}
	}
	if n := countTenants(t, db); n != 0 {
		t.Fatalf("%d tenants stored with an invalid mode", n)
	}
}

func countTenants(t *testing.T, db *sqlstore.DB) int {
	t.Helper()
	var n int
	if err := db.View(ctx, func(tx *sqlstore.Tx) error {
		ts, err := tx.ListTenants(ctx, "", 10)
		n = len(ts)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func testTenantPromotion(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	sim := createSimulation(t, db, "rehearsal")
	other := createSimulation(t, db, "other")
	approval := tutela.NewID()
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.PromoteTenant(ctx, sim, "go-live signed off, ticket 42", approval)
	})
	if sim.Mode != tutela.TenantProvisioning || readTenant(t, db, sim.ID).Mode != tutela.TenantProvisioning {
		t.Fatal("promotion did not stick")
	}
	if readTenant(t, db, other.ID).Mode != tutela.TenantSimulation {
		t.Fatal("promoting one tenant promoted another")
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: sim.ID, Action: "tenant.promoted", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d tenant.promoted events, want 1", len(recs))
	}
	ev := recs[0].Event
	if ev.TargetID != sim.ID || ev.Reason != "go-live signed off, ticket 42" || ev.Details["approval_id"] != approval ||
		ev.Details["from"] != "simulation" || ev.Details["to"] != "provisioning" {
		t.Fatalf("tenant.promoted = %+v", ev)
	}
	// Once serving people, there is nothing to promote: a second promotion is a conflict and
	// records nothing.
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PromoteTenant(ctx, sim, "again", "") })
	mustCode(t, err, tutela.ECONFLICT)
	prod := createTenant(t, db, "prod")
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PromoteTenant(ctx, prod, "", "") })
	mustCode(t, err, tutela.ECONFLICT)
	missing := &tutela.Tenant{ID: tutela.NewID()}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PromoteTenant(ctx, missing, "", "") })
	mustCode(t, err, tutela.ENOTFOUND)
	recs, _, err = db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "tenant.promoted", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d tenant.promoted events after refused promotions, want 1", len(recs))
	}
}

func testTenantPromotionConcurrent(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	sim := createSimulation(t, db, "rehearsal")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			tn := *sim
			errs[i] = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PromoteTenant(ctx, &tn, "", "") })
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case tutela.ErrorCode(err) == tutela.ECONFLICT:
		default:
			t.Fatalf("concurrent promotion: %v", err)
		}
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: sim.ID, Action: "tenant.promoted", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(recs) != 1 {
		t.Fatalf("%d promotions succeeded, %d recorded; want exactly 1", ok, len(recs))
	}
}
