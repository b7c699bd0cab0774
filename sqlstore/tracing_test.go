package sqlstore_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/tracing"
)

// The authentication-state watcher's polls (four a second on every node, and one after each
// local change to authentication state) record no span: they would bury the traces that
// matter (and showed up among a request's spans in httpapi's tracing test). Other transactions
// still do.
func TestTracing_AuthEpochPollsAreNotTraced(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.WithExporter(exp, 1, true)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Tracer: tp})
	ctx := context.Background()
	for range 3 {
		if err := db.AuthEpochs().Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A change to authentication state: the store polls right after it commits.
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "acme", Name: "Acme", Region: "eu"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var traced bool
	for _, s := range exp.GetSpans() {
		if strings.Contains(s.Name, "AuthEpochs") {
			t.Errorf("span %q: a watcher poll was traced", s.Name)
		}
		traced = traced || strings.Contains(s.Name, "TestTracing_AuthEpochPollsAreNotTraced")
	}
	if !traced {
		t.Fatalf("no span for the tenant's creation (spans: %d): tracing is not on", len(exp.GetSpans()))
	}
}
