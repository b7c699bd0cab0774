package sqlstore_test

import (
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/sqlstore/storetest"
)

// TestConformance_Passkeys runs the passkey part of the conformance suite on both dialects
// (kept out of storetest.Run's list while issue 15's branches merge; fold it in there).
func TestConformance_Passkeys(t *testing.T) {
	for _, d := range sqltest.Dialects {
		for _, tc := range storetest.PasskeyTests {
			t.Run(string(d)+"/"+tc.Name, func(t *testing.T) {
				t.Parallel()
				tc.Fn(t, func(t *testing.T, opt sqlstore.Options) *sqlstore.DB { return sqltest.Open(t, d, opt) })
			})
		}
	}
}
