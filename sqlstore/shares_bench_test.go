package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"tutela/partners"
	"tutela/privacy"
	"tutela/sqlstore"
)

// BenchmarkSubjectGetPartnerScope measures what the partner scope adds to a subject's load
// (Subjects.Get in a read transaction): the tenant's own caller (no probe), a partner through
// an active share (one indexed EXISTS probe, then the load) and a partner without one (the
// probe alone, answered as not found, the same work as for a subject that does not exist).
func BenchmarkSubjectGetPartnerScope(b *testing.B) {
	eachDialect(b, func(b *testing.B, sb *subjectBench) {
		ctx := context.Background()
		shared, unshared := sb.writeEncrypted(b), sb.writeEncrypted(b)
		p := &partners.Partner{Name: "Shelter"}
		if err := sb.db.Update(ctx, func(tx *sqlstore.Tx) error {
			if _, err := tx.Consent(sb.tenant).PutPurpose(ctx, &privacy.Purpose{Name: "aid", Description: "Aid",
				LawfulBasis: privacy.BasisContract}); err != nil {
				return err
			}
			if err := tx.Partners(sb.tenant).Create(ctx, p); err != nil {
				return err
			}
			return tx.Shares(sb.tenant).Create(ctx, &partners.Share{PartnerID: p.ID, SubjectID: shared, Purpose: "aid",
				ExpiresAt: time.Now().Add(24 * time.Hour), Justification: "bench"})
		}); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name, partner, id string
			found             bool
		}{{"tenant", "", shared, true}, {"partner-shared", p.ID, shared, true}, {"partner-unshared", p.ID, unshared, false}} {
			b.Run(c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					err := sb.db.View(ctx, func(tx *sqlstore.Tx) error {
						if c.partner != "" {
							tx.ActForPartner(c.partner)
						}
						_, err := tx.Subjects(sb.tenant).Get(ctx, c.id)
						return err
					})
					if (err == nil) != c.found {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
