package identity_test

import (
	"context"
	"slices"
	"testing"

	"tutela"
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
			if err := s.Logout(ctx, &tutela.Principal{TenantID: first.User.TenantID, UserID: first.User.ID,
				SessionID: first.Session.ID}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Refresh(ctx, current.RefreshToken, "", "192.0.2.1", "test"); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("the signed-out session's refresh token: %v, want unauthenticated", err)
			}
			if n := reuseAlarms(); n != 0 {
				t.Fatalf("%d refresh_reuse_detected events for the token the sign-out ended, want 0", n)
			}
			if _, err := s.Refresh(ctx, first.RefreshToken, "", "203.0.113.9", "test"); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("the token rotated before the sign-out: %v, want unauthenticated", err)
			}
			if n := reuseAlarms(); n != 1 {
				t.Fatalf("%d refresh_reuse_detected events for a rotated token presented again, want 1", n)
			}

			// A session revoked with the user's others (which leaves its token unmarked), then
			// signed out: its token is refused as a revoked session all the same.
			other := loginAna(t, s)
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				_, err := tx.Users(other.User.TenantID).RevokeSessions(ctx, other.User.ID, other.Session.ID, "", "revoked_by_admin")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := s.Logout(ctx, &tutela.Principal{TenantID: other.User.TenantID, UserID: other.User.ID,
				SessionID: other.Session.ID}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Refresh(ctx, other.RefreshToken, "", "192.0.2.1", "test"); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("the token of a session revoked, then signed out: %v, want unauthenticated", err)
			}
			if n := reuseAlarms(); n != 1 {
				t.Fatalf("%d refresh_reuse_detected events after a revoked session's token, want still 1", n)
			}
		})
	}
}
