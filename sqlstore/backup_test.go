package sqlstore_test

import (
	"context"
	"slices"
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

func TestSnapshot_PostgresTablesInForeignKeyOrder(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{})
	snap, err := db.Snapshot(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Remove()
	var order []string
	for _, td := range snap.Tables {
		order = append(order, td.Name)
	}
	for _, pair := range [][2]string{{"tenants", "users"}, {"users", "sessions"}, {"sessions", "refresh_tokens"},
		{"roles", "user_roles"}, {"access_reviews", "access_review_items"}} {
		if slices.Index(order, pair[0]) > slices.Index(order, pair[1]) || slices.Index(order, pair[0]) < 0 {
			t.Fatalf("%s must come before %s: %v", pair[0], pair[1], order)
		}
	}
	if slices.Contains(order, "goose_db_version") {
		t.Fatal("goose's table is dumped")
	}
	latest, err := sqlstore.LatestMigration(sqlstore.Postgres)
	if err != nil || snap.MigrationVersion != latest {
		t.Fatalf("snapshot at migration %d, latest %d (%v)", snap.MigrationVersion, latest, err)
	}
}

func TestInUse_FreshlyMigratedIsEmpty(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		inUse, which, err := db.InUse(context.Background())
		if err != nil || inUse {
			t.Fatalf("fresh database in use (%s): %v", which, err)
		}
	})
}
