package httpapi_test

import (
	"os"
	"testing"

	"tutela/sqlstore/sqltest"
)

// Most of this package's tests wait on the database: four at a time (sqltest.Main).
func TestMain(m *testing.M) { os.Exit(sqltest.Main(m, 4)) }
