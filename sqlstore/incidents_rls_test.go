package sqlstore_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/incidents"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The incident tables (migration 00036) carry row-level security: a runtime role scoped to
// tenant A sees the incident affecting A and not the one affecting only B, A's affected-tenant
// row and A's and the deployment-wide timeline entries and notifications, never B's own — even
// with a query that forgets the tenant. A shared incident shows A only A's part.
func TestRLS_IncidentTablesShowATenantOnlyItsIncidents(t *testing.T) {
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
	var a, b string
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, slug := range []string{"a", "b"} {
			tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			if slug == "a" {
				a = tn.ID
			} else {
				b = tn.ID
			}
		}
		onlyB, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: "B only", Description: "d", Actor: "monitor"})
		if err != nil {
			return err
		}
		shared, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: "Shared", Description: "d", Actor: "monitor"})
		if err != nil {
			return err
		}
		st := tx.Incidents()
		for _, c := range []struct{ id, tenant string }{{onlyB.ID, b}, {shared.ID, a}, {shared.ID, b}} {
			if _, err := st.SetAffected(ctx, c.id, sqlstore.AffectedChange{TenantID: c.tenant}); err != nil {
				return err
			}
		}
		if _, err := st.ConfirmBreach(ctx, shared.ID, tx.Now()); err != nil {
			return err
		}
		for _, tenant := range []string{"", b} {
			if _, err := st.RecordNotification(ctx, shared.ID, &incidents.Notification{Recipient: incidents.ToSubjects, TenantID: tenant,
				To: "subjects"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tables := []string{"incidents", "incident_tenants", "incident_timeline", "incident_notifications"}
	rt, _ := runtimeRole(t, db, dsn, tables...)
	// Timeline: each incident's "opened" entry (deployment-wide), one "affected" entry per
	// tenant row (the tenant's), the shared one's confirmation and two notifications (one B's).
	for table, want := range map[string][3]int{
		"incidents":              {1, 2, 2},
		"incident_tenants":       {1, 2, 3},
		"incident_timeline":      {4, 7, 8}, // A: the shared one's opened, affected A, confirmed, notification (all)
		"incident_notifications": {1, 2, 2},
	} {
		if n := countAs(t, rt, table, a); n != want[0] {
			t.Errorf("%s: tenant A sees %d rows, want %d", table, n, want[0])
		}
		if n := countAs(t, rt, table, b); n != want[1] {
			t.Errorf("%s: tenant B sees %d rows, want %d", table, n, want[1])
		}
		if n := countAs(t, rt, table, "*"); n != want[2] {
			t.Errorf("%s: the platform sees %d rows, want %d", table, n, want[2])
		}
		if n := countAs(t, rt, table, ""); n != 0 {
			t.Errorf("%s: an unscoped transaction sees %d rows", table, n)
		}
	}
}
