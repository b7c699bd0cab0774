package sqlstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// Both dialects have the same migrations, numbered alike: a schema change made for one store
// only, or numbered differently, would make the stores (and their backups' migration_version)
// disagree.
func TestMigrations_SameNumbersInBothDialects(t *testing.T) {
	t.Parallel()
	versions := func(dir string) []string {
		entries, err := os.ReadDir(filepath.Join("migrations", dir))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".sql") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	pg, lite := versions("postgres"), versions("sqlite")
	if !slices.Equal(pg, lite) {
		t.Fatalf("migrations differ:\npostgres %v\nsqlite   %v", pg, lite)
	}
	for i, name := range pg {
		if want := fmt.Sprintf("%05d_", i+1); !strings.HasPrefix(name, want) {
			t.Errorf("migration %s: want the number %s (no gaps, no repeats)", name, want)
		}
	}
}
