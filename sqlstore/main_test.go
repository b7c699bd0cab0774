package sqlstore_test

import (
	"os"
	"testing"

	"tutela/sqlstore/sqltest"
)

// Most of this package's tests wait on the database: six at a time (sqltest.Main).
func TestMain(m *testing.M) { os.Exit(sqltest.Main(m, 6)) }
