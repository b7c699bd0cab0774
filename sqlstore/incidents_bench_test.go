package sqlstore_test

import (
	"context"
	"fmt"
	"testing"

	"tutela"
	"tutela/incidents"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// BenchmarkSweepIncidents_NothingDue is what every node pays each minute when no reminder is
// due, with 500 confirmed breaches whose clocks are running: one indexed range scan.
func BenchmarkSweepIncidents_NothingDue(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, d, sqlstore.Options{})
			for i := range 500 {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					inc, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: fmt.Sprint("breach ", i), Description: "d", Actor: "monitor"})
					if err == nil {
						_, err = tx.Incidents().ConfirmBreach(ctx, inc.ID, tx.Now())
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
					due, err := tx.SweepIncidents(ctx)
					if err == nil && len(due) > 0 {
						err = fmt.Errorf("swept %d", len(due))
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIncidentLifecycle is one breach as the store sees it: opened, a tenant added,
// confirmed, the authority's notification recorded, each in its own transaction as the API
// runs them.
func BenchmarkIncidentLifecycle(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, d, sqlstore.Options{})
			tenantID := ""
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				tn := &tutela.Tenant{Slug: "bench", Name: "Bench", Region: "eu-west"}
				err := tx.CreateTenant(ctx, tn)
				tenantID = tn.ID
				return err
			}); err != nil {
				b.Fatal(err)
			}
			n := 120
			b.ReportAllocs()
			for b.Loop() {
				var id string
				steps := []func(tx *sqlstore.Tx) error{
					func(tx *sqlstore.Tx) error {
						inc, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: "breach", Description: "d", Actor: "monitor"})
						if err == nil {
							id = inc.ID
						}
						return err
					},
					func(tx *sqlstore.Tx) error {
						_, err := tx.Incidents().SetAffected(ctx, id, sqlstore.AffectedChange{TenantID: tenantID, SubjectsApprox: &n})
						return err
					},
					func(tx *sqlstore.Tx) error { _, err := tx.Incidents().ConfirmBreach(ctx, id, tx.Now()); return err },
					func(tx *sqlstore.Tx) error {
						_, err := tx.Incidents().RecordNotification(ctx, id, &incidents.Notification{Recipient: incidents.ToAuthority, To: "CNIL"})
						return err
					},
				}
				for _, step := range steps {
					if err := db.Update(ctx, step); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
