package httpapi_test

import (
	"context"

	"tutela/privacy"
	"tutela/sqlstore"
)

// testPurposes are the purposes the tests read subjects for, declared in every tenant seed
// creates: every processing needs a declared lawful basis (issue 14). They are on contract, so
// they need no consent; the consent tests declare their own purposes on consent.
var testPurposes = []string{"case_management", "aid", "ai_triage", "case_review"}

func declareTestPurposes(ctx context.Context, tx *sqlstore.Tx, tenantID string) error {
	for _, name := range testPurposes {
		if _, err := tx.Consent(tenantID).PutPurpose(ctx, &privacy.Purpose{Name: name,
			Description: "Test purpose " + name, LawfulBasis: privacy.BasisContract}); err != nil {
			return err
		}
	}
	return nil
}
