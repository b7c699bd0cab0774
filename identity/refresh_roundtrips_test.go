package identity_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// refreshOverCounter signs ana in on a PostgreSQL store whose connections (as the runtime
// role) go through a round-trip counter; dsnQuery is added to the store's DSN.
func refreshOverCounter(t *testing.T, dsnQuery string) (*identity.Service, *sqltest.RoundTripCounter, tutela.Secret) {
	t.Helper()
	sqltest.RequirePostgres(t)
	ctx := context.Background()
	owner, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{})
	counter, proxied := sqltest.CountRoundTrips(t, sqltest.RuntimeRoleDSN(t, owner, dsn))
	db, err := sqlstore.Open(ctx, proxied+dsnQuery, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sqltest.AttachVault(t, db)
	s, g := signInAna(t, db)
	return s, counter, g.RefreshToken
}

// signInAna seeds ana@example.org in tenant acme (a cheap hasher) and signs her in: the
// refresh tests' starting point.
func signInAna(t *testing.T, db *sqlstore.DB) (*identity.Service, *identity.Grant) {
	t.Helper()
	h := cheapHasher(t)
	seedUser(t, db, h, "acme", "ana@example.org", benchPassword)
	s := benchService(t, db, h)
	return s, loginAna(t, s)
}

// loginAna signs ana in again: a new session.
func loginAna(t *testing.T, s *identity.Service) *identity.Grant {
	t.Helper()
	g, err := s.Login(context.Background(), identity.LoginRequest{Tenant: "acme", Email: "ana@example.org",
		Password: tutela.NewSecret(benchPassword), IP: "192.0.2.1", UserAgent: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// refreshRoundTrips is the budget of one refresh on PostgreSQL, COMMIT included: BEGIN with
// the transaction's tenant (one query, sqlstore's pgbegin.go); one statement that marks the
// token used, reads its session, tenant, user and the user's person key, touches the session and
// stores the next token. It was 12 before the token's use and its session became one statement,
// the two tenant reads one, and the session's touch and the next token one; 8 before the
// tenant, user and person key joined the token's statement, 5 before the writes did, 4 before
// the tenant's scope went with BEGIN.
const refreshRoundTrips = 3

// TestRefresh_PostgresRoundTrips counts, on the wire, the round trips a refresh makes on
// PostgreSQL with the driver's default statement caching (each cached statement is one round
// trip): the refresh rate of a node is bounded by them, not by CPU. To see the statements,
// add default_query_exec_mode=exec to the DSN and log counter.Statements().
func TestRefresh_PostgresRoundTrips(t *testing.T) {
	t.Parallel()
	s, counter, rt := refreshOverCounter(t, "")
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		g, err := s.Refresh(ctx, rt, "", "192.0.2.1", "test")
		if err != nil {
			t.Fatal(err)
		}
		rt = g.RefreshToken
	}
	for range 3 { // the first uses of each statement prepare it on their connection
		refresh()
	}
	const n = 5
	before := counter.RoundTrips()
	for range n {
		refresh()
	}
	if got := counter.RoundTrips() - before; got > n*refreshRoundTrips {
		t.Fatalf("%d refreshes made %d round trips, want at most %d each", n, got, refreshRoundTrips)
	}
}
