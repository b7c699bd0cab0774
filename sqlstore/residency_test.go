package sqlstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"tutela/sqlstore"
)

// A store is bound to a region code or to none; anything else (the legacy "default", free text)
// is refused at open, before a query could compare tenants against it.
func TestOpen_RefusesARegionThatIsNotARegionCode(t *testing.T) {
	t.Parallel()
	for _, region := range []string{"default", "EU", "europe", "eu west", "eu-"} {
		db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), sqlstore.Options{Region: region})
		if err == nil {
			db.Close()
			t.Fatalf("Open(region %q) succeeded", region)
		}
		if !strings.Contains(err.Error(), "is not a data region code") {
			t.Fatalf("Open(region %q): %v", region, err)
		}
	}
	db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), sqlstore.Options{Region: "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Region() != "eu-west" {
		t.Fatalf("Region() = %q", db.Region())
	}
}
