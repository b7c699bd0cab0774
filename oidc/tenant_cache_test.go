package oidc_test

import (
	"context"
	"net/http"
	"testing"

	"tutela"
	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
)

// A tenant's row is kept for a second (oidc.tenantTTL) so requests do not each begin with a
// tenant lookup; a tenant disabled is refused once the row is read again, and never served
// from a stale row after that.
func TestProvider_DisabledTenantRefusedOnceItsRowIsReadAgain(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			e := oidctest.New(t, d, nil)
			tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
			discovery := e.URL + "/t/acme/.well-known/openid-configuration"
			get := func() int {
				res, err := http.Get(discovery)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			if got := get(); got != http.StatusOK {
				t.Fatalf("active tenant: %d", got)
			}
			ctx := context.Background()
			if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
				tn.Status = tutela.StatusDisabled
				return tx.UpdateTenant(ctx, tn)
			}); err != nil {
				t.Fatal(err)
			}
			oidc.ExpireTenantCache(e.Provider)
			for range 2 {
				if got := get(); got != http.StatusNotFound {
					t.Fatalf("disabled tenant after its row was read again: %d, want 404", got)
				}
			}
		})
	}
}
