package httpapi_test

import (
	"os"
	"testing"

	"tutela/internal/lazyfree"
	"tutela/sqlstore/sqltest"
)

// The tests and benchmarks run as tutela serve runs: re-executed with lazily freed memory (the
// sign-in benchmarks' hashing memory, internal/lazyfree). Most of this package's tests wait on
// the database: four at a time (sqltest.Main).
func TestMain(m *testing.M) {
	lazyfree.MustReexec()
	os.Exit(sqltest.Main(m, 4))
}
