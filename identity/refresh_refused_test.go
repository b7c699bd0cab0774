package identity_test

import (
	"context"
	"testing"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestRefresh_RefusedUseWritesNothing attacks the refresh's optimistic writes (on PostgreSQL the
// statement that uses the token already touches the session and stores the next token; every
// refusal must roll them back): a Tutela session's refresh token presented at a relying party's
// token endpoint (wrong client) and at another tenant's is refused, the session keeps its
// last-seen time and its one refresh token, and the token still works for its owner afterwards
// (a refusal must not burn it).
func TestRefresh_RefusedUseWritesNothing(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqltest.Open(t, d, sqlstore.Options{})
			s, g := signInAna(t, db)
			state := func() (int, time.Time) {
				t.Helper()
				var n int
				if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM refresh_tokens WHERE session_id = $1`,
					g.Session.ID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				var seen *sqlstore.Session
				if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { seen, err = tx.SessionByID(ctx, g.Session.ID); return err }); err != nil {
					t.Fatal(err)
				}
				return n, seen.LastSeenAt
			}
			tokens, seen := state()
			time.Sleep(2 * time.Millisecond) // a touch would move last_seen_at
			for name, req := range map[string]identity.ClientRefresh{
				"wrong client": {TenantID: g.User.TenantID, ClientID: "rp-attacker", Token: g.RefreshToken, IP: "203.0.113.9"},
				"wrong tenant": {TenantID: tutela.NewID(), ClientID: "rp-attacker", Token: g.RefreshToken, IP: "203.0.113.9"},
			} {
				if _, err := s.RefreshClient(ctx, req); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
					t.Fatalf("%s: %v, want unauthenticated", name, err)
				}
				if n, at := state(); n != tokens || !at.Equal(seen) {
					t.Fatalf("%s: %d refresh tokens, last seen %v; want %d and %v unchanged", name, n, at, tokens, seen)
				}
			}
			if _, err := s.Refresh(ctx, g.RefreshToken, "", "192.0.2.1", "test"); err != nil {
				t.Fatalf("the owner's refresh after the refused uses: %v", err)
			}
			if n, _ := state(); n != tokens+1 {
				t.Fatalf("%d refresh tokens after the owner's refresh, want %d", n, tokens+1)
			}
		})
	}
}
