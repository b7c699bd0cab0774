package identity_test

import (
	"context"
	"slices"
	"testing"

	"tutela"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestRefresh_RevokedSessionIsNoReuse: revoking a session marks its refresh token used, and the
// client that still holds that token (signed out on another device, revoked by an admin) is
// refused as a revoked session, not reported as refresh-token reuse — a critical alert in the
// monitoring rules. A token rotated before the revocation and presented again is reuse all the
// same.
func TestRefresh_RevokedSessionIsNoReuse(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqltest.Open(t, d, sqlstore.Options{})
			s, first := signInAna(t, db)
			current, err := s.Refresh(ctx, first.RefreshToken, "", "192.0.2.1", "test")
			if err != nil {
				t.Fatal(err)
			}
			reuseAlarms := func() int {
				t.Helper()
				var evs []*sqlstore.SecurityEvent
				if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
					evs, err = tx.SecurityEvents(ctx, first.User.TenantID, 100)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return len(slices.DeleteFunc(evs, func(e *sqlstore.SecurityEvent) bool { return e.Kind != "refresh_reuse_detected" }))
			}
			// refused presents token, which must be refused, and checks how many reuse alarms
			// there are then.
			refused := func(what string, token tutela.Secret, alarms int) {
				t.Helper()
				if _, err := s.Refresh(ctx, token, "", "192.0.2.1", "test"); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
					t.Fatalf("%s: %v, want unauthenticated", what, err)
				}
				if n := reuseAlarms(); n != alarms {
					t.Fatalf("%s: %d refresh_reuse_detected events after it, want %d", what, n, alarms)
				}
			}
			logout := func(g *identity.Grant) {
				t.Helper()
				if err := s.Logout(ctx, &tutela.Principal{TenantID: g.User.TenantID, UserID: g.User.ID, SessionID: g.Session.ID}); err != nil {
					t.Fatal(err)
				}
			}
			logout(first)
			refused("the signed-out session's refresh token", current.RefreshToken, 0)
			refused("the token rotated before the sign-out", first.RefreshToken, 1)

			// A session revoked with the user's others (which leaves its token unmarked), then
			// signed out: its token is refused as a revoked session all the same.
			other := loginAna(t, s)
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				_, err := tx.Users(other.User.TenantID).RevokeSessions(ctx, other.User.ID, other.Session.ID, "", "revoked_by_admin")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			logout(other)
			refused("the token of a session revoked, then signed out", other.RefreshToken, 1)
		})
	}
}
