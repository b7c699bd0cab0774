package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestPGBegin_ScopeTravelsWithBegin checks what a PostgreSQL transaction runs under now that
// BEGIN and its scope go in one query (pgbegin.go): the tenant row-level security sees, the
// statement timeout of a caller with a deadline (and only for that transaction), read-only
// views — and a tenant value that could not be inlined safely, which must still be the scope,
// set by the parameterized statement, never written into SQL.
func TestPGBegin_ScopeTravelsWithBegin(t *testing.T) {
	t.Parallel()
	// One connection: what a transaction set must not outlive it on the connection the next
	// one gets.
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{MaxOpenConns: 1})
	ctx := context.Background()
	scoped := func(tenantID string) context.Context {
		return tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r",
			Principal: &tutela.Principal{Kind: "user", TenantID: tenantID, UserID: tutela.NewID()}})
	}
	settings := func(ctx context.Context, view bool) (tenant, timeout, readOnly string) {
		t.Helper()
		run := db.Update
		if view {
			run = db.View
		}
		if err := run(ctx, func(tx *sqlstore.Tx) error {
			return tx.QueryRowForBench(ctx, `SELECT current_setting('tutela.tenant'), current_setting('statement_timeout'),
				current_setting('transaction_read_only')`).Scan(&tenant, &timeout, &readOnly)
		}); err != nil {
			t.Fatal(err)
		}
		return tenant, timeout, readOnly
	}
	_, roleTimeout, _ := settings(ctx, false)

	if tn, to, ro := settings(ctx, false); tn != "*" || to != roleTimeout || ro != "off" {
		t.Fatalf("platform work: tenant %q, timeout %q, read only %q; want *, %q, off", tn, to, ro, roleTimeout)
	}
	id := tutela.NewID()
	dctx, cancel := context.WithTimeout(scoped(id), time.Minute)
	defer cancel()
	if tn, to, ro := settings(dctx, true); tn != id || to == roleTimeout || ro != "on" {
		t.Fatalf("tenant view with a deadline: tenant %q, timeout %q, read only %q; want %s, not %q, on", tn, to, ro, id, roleTimeout)
	}
	// A deadline further away than statement_timeout can say is its largest value, not an error.
	far, cancelFar := context.WithDeadline(ctx, time.Now().AddDate(100, 0, 0))
	defer cancelFar()
	if _, to, _ := settings(far, false); to != "2147483647ms" {
		t.Fatalf("a deadline a century away: timeout %q, want the largest, 2147483647ms", to)
	}
	if tn, to, _ := settings(ctx, false); tn != "*" || to != roleTimeout {
		t.Fatalf("after a scoped transaction: tenant %q, timeout %q; want * and %q (transaction-local)", tn, to, roleTimeout)
	}
	for _, hostile := range []string{"x', true); SELECT set_config('tutela.tenant', '*", "*' OR '1'='1", tutela.NewID() + "'"} {
		if tn, _, _ := settings(scoped(hostile), false); tn != hostile {
			t.Fatalf("tenant %q scoped as %q, want the value itself", hostile, tn)
		}
	}
}
