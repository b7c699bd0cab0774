package sqlstore_test

import (
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/sqlstore/storetest"
)

func TestConformance(t *testing.T) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T, opt sqlstore.Options) *sqlstore.DB {
				return sqltest.Open(t, d, opt)
			})
		})
	}
}
