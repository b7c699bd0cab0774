package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// RefreshTests are the refresh-token rotation statements the refresh path runs (RFC 9700
// §4.14.2): single use, reuse reported, the session read with the token, and the session's
// activity written with its next token.
var RefreshTests = []Test{
	{"RefreshTokenUsedOnceWithItsSession", testRefreshUseOnce},
	{"RefreshTokenConcurrentUsesOneWins", testRefreshConcurrentUse},
	{"RefreshRenewTouchesSessionAndStoresNext", testRefreshRenew},
	{"RefreshUseReadsTenantAndCredentials", testRefreshUseReads},
	{"RefreshUseRenewStoresTheNextTokenOnce", testRefreshUseRenew},
	{"RefreshRacesRevocation", testRefreshRacesRevocation},
}

// refreshFixture is a user's session with one refresh token, "rt-0".
func refreshFixture(t *testing.T, open Opener) (*sqlstore.DB, *fakeClock, *sqlstore.Session) {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "ana@example.org")
	s := newLimitSession(tn.ID, u.ID, clock.Now())
	s.AbsoluteExpiry = s.AbsoluteExpiry.UTC().Truncate(time.Microsecond) // as PostgreSQL keeps it
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())); err != nil {
			return err
		}
		return tx.CreateRefreshToken(ctx, s.ID, sqlstore.HashToken("rt-0"), s.AbsoluteExpiry)
	})
	return db, clock, s
}

func useRefresh(t *testing.T, db *sqlstore.DB, token string) (*sqlstore.RefreshToken, *sqlstore.Session, error) {
	t.Helper()
	var rt *sqlstore.RefreshToken
	var s *sqlstore.Session
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken(token), sqlstore.HashToken("next-"+token))
		if use != nil {
			rt, s = use.Token, use.Session
		}
		return err
	})
	return rt, s, err
}

func testRefreshUseOnce(t *testing.T, open Opener) {
	db, clock, s := refreshFixture(t, open)
	clock.Add(time.Minute)
	rt, got, err := useRefresh(t, db, "rt-0")
	if err != nil || rt.UsedAt != nil {
		t.Fatalf("first use: %+v, %v; want unused until now", rt, err)
	}
	if rt.SessionID != s.ID || got.ID != s.ID || got.UserID != s.UserID || got.TenantID != s.TenantID ||
		got.TokenVersion != s.TokenVersion || !got.AbsoluteExpiry.Equal(s.AbsoluteExpiry) || got.RevokedAt != nil {
		t.Fatalf("session read with the token = %+v, want %+v", got, s)
	}
	if !rt.ExpiresAt.Equal(s.AbsoluteExpiry) {
		t.Fatalf("token expires %v, want %v", rt.ExpiresAt, s.AbsoluteExpiry)
	}
	// The second use is reuse: reported with the time of the first, with its session (to
	// revoke), and nothing else changes.
	clock.Add(time.Minute)
	again, got, err := useRefresh(t, db, "rt-0")
	if err != nil || again.UsedAt == nil || !again.UsedAt.Equal(clock.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)) {
		t.Fatalf("second use: %+v, %v; want used a minute ago", again, err)
	}
	if got == nil || got.ID != s.ID {
		t.Fatalf("second use's session = %+v, want %s", got, s.ID)
	}
	if _, _, err := useRefresh(t, db, "rt-unknown"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("unknown token: %v, want not_found", err)
	}
}

func testRefreshConcurrentUse(t *testing.T, open Opener) {
	db, _, _ := refreshFixture(t, open)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh, reused := 0, 0
	for range n {
		wg.Go(func() {
			rt, _, err := useRefresh(t, db, "rt-0")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("use: %v", err)
			case rt.UsedAt == nil:
				fresh++
			default:
				reused++
			}
		})
	}
	wg.Wait()
	if fresh != 1 || reused != n-1 {
		t.Fatalf("%d concurrent uses: %d fresh, %d reused; want exactly one fresh", n, fresh, reused)
	}
}

func testRefreshRenew(t *testing.T, open Opener) {
	db, clock, s := refreshFixture(t, open)
	clock.Add(10 * time.Minute)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.RenewSession(ctx, s.ID, sqlstore.HashToken("rt-1"), s.AbsoluteExpiry)
	})
	rt, got, err := useRefresh(t, db, "rt-1")
	if err != nil || rt.UsedAt != nil || got.ID != s.ID || !rt.ExpiresAt.Equal(s.AbsoluteExpiry) {
		t.Fatalf("next token: %+v, %v", rt, err)
	}
	if want := clock.Now().UTC().Truncate(time.Microsecond); !got.LastSeenAt.Equal(want) {
		t.Fatalf("last seen %v, want %v (renewal touches the session)", got.LastSeenAt, want)
	}
	// A revoked session is not touched back to life.
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, s.ID, "logout") })
	clock.Add(10 * time.Minute)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.RenewSession(ctx, s.ID, sqlstore.HashToken("rt-2"), s.AbsoluteExpiry)
	})
	var after *sqlstore.Session
	update(t, db, func(tx *sqlstore.Tx) (err error) { after, err = tx.SessionByID(ctx, s.ID); return err })
	if !after.LastSeenAt.Equal(got.LastSeenAt) {
		t.Fatalf("revoked session's last seen moved to %v", after.LastSeenAt)
	}
}

// testRefreshUseReads: what the refresh reads with its token (the tenant, the user's
// credentials: on PostgreSQL in the statement that marks the token) is what Tenant and
// Credentials read on their own, on first use and on reuse; a user whose person key is gone is
// not found, as everywhere.
func testRefreshUseReads(t *testing.T, open Opener) {
	db, clock, s := refreshFixture(t, open)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.Users(s.TenantID).SetPasswordHash(ctx, s.UserID, "$argon2id$test")
	})
	var want *sqlstore.Credentials
	var wantTenant *tutela.Tenant
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		if wantTenant, err = tx.Tenant(ctx, s.TenantID); err != nil {
			return err
		}
		want, err = tx.Users(s.TenantID).Credentials(ctx, s.UserID)
		return err
	})
	check := func(name string, use *sqlstore.RefreshUse) {
		tn, err := use.Tenant(ctx)
		if err != nil || *tn != *wantTenant {
			t.Errorf("%s: tenant = %+v, %v; want %+v", name, tn, err, wantTenant)
		}
		c, err := use.Credentials(ctx)
		if err != nil || *c.User != *want.User || c.PasswordHash != want.PasswordHash || c.TokenVersion != want.TokenVersion ||
			c.MustChangePassword != want.MustChangePassword || c.User.Email != "ana@example.org" {
			t.Errorf("%s: credentials = %+v, %v; want %+v (user %+v)", name, c, err, want, want.User)
		}
	}
	clock.Add(time.Minute)
	for _, name := range []string{"first use", "reuse"} {
		update(t, db, func(tx *sqlstore.Tx) error {
			use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken("rt-0"), sqlstore.HashToken("next-"+name))
			if err != nil {
				return err
			}
			if (use.Token.UsedAt != nil) != (name == "reuse") {
				t.Errorf("%s: used at %v", name, use.Token.UsedAt)
			}
			check(name, use)
			return nil
		})
	}
	// The user's key shredded, their row left behind: the token's session is found, its user
	// is not.
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateRefreshToken(ctx, s.ID, sqlstore.HashToken("rt-1"), s.AbsoluteExpiry); err != nil {
			return err
		}
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: s.TenantID, PersonID: s.UserID, Kind: sqlstore.PersonUser,
			Trigger: sqlstore.ErasureRequest, Reason: "the data subject asked", LegalBasis: "GDPR Art. 17(1)(a)"})
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken("rt-1"), sqlstore.HashToken("rt-2"))
		if err != nil || use.Token.UsedAt != nil || use.Session.ID != s.ID {
			t.Fatalf("token of an erased user: %+v, %v", use, err)
		}
		_, err = use.Credentials(ctx)
		mustCode(t, err, tutela.ENOTFOUND)
		return nil
	})
}

// testRefreshUseRenew: after a use, Renew leaves exactly one next token (usable, of the same
// session, expiring with it) and the session touched; a use whose transaction rolls back (a
// refused refresh) leaves the token unused and no next token, even where the use's statement
// already wrote it (PostgreSQL); a reuse stores nothing.
func testRefreshUseRenew(t *testing.T, open Opener) {
	db, clock, s := refreshFixture(t, open)
	tokens := func() int {
		return count(t, db, `SELECT count(*) FROM refresh_tokens WHERE session_id = $1`, s.ID)
	}
	refused := errors.New("refused after the use")
	clock.Add(time.Minute)
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken("rt-0"), sqlstore.HashToken("rt-refused")); err != nil {
			return err
		}
		return refused
	})
	if !errors.Is(err, refused) || tokens() != 1 {
		t.Fatalf("refused use: %v, %d tokens; want the refusal and the one token", err, tokens())
	}
	clock.Add(time.Minute)
	update(t, db, func(tx *sqlstore.Tx) error {
		use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken("rt-0"), sqlstore.HashToken("rt-1"))
		if err != nil {
			return err
		}
		if use.Token.UsedAt != nil {
			t.Errorf("the refused use marked the token: used at %v", use.Token.UsedAt)
		}
		if err := use.Renew(ctx); err != nil {
			return err
		}
		return use.Renew(ctx) // a second call stores nothing more
	})
	next, got, err := useRefresh(t, db, "rt-1")
	if err != nil || next.UsedAt != nil || got.ID != s.ID || !next.ExpiresAt.Equal(s.AbsoluteExpiry) {
		t.Fatalf("next token: %+v, %+v, %v; want unused, of session %s, expiring %v", next, got, err, s.ID, s.AbsoluteExpiry)
	}
	if want := clock.Now().UTC().Truncate(time.Microsecond); !got.LastSeenAt.Equal(want) {
		t.Fatalf("last seen %v, want %v (the renewal touches the session)", got.LastSeenAt, want)
	}
	if _, _, err := useRefresh(t, db, "rt-refused"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("the refused use's next token: %v, want not_found", err)
	}
	// rt-0, rt-1 and, on PostgreSQL, the next of rt-1 (useRefresh does not call Renew).
	want := 2
	if db.Dialect() == sqlstore.Postgres {
		want = 3
	}
	if n := tokens(); n != want {
		t.Fatalf("%d tokens of the session, want %d", n, want)
	}
	// A reuse stores nothing.
	update(t, db, func(tx *sqlstore.Tx) error {
		use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken("rt-0"), sqlstore.HashToken("rt-reuse"))
		if err == nil && use.Token.UsedAt == nil {
			t.Error("reuse not reported")
		}
		return err
	})
	if n := tokens(); n != want {
		t.Fatalf("a reuse stored a token: %d, want %d", n, want)
	}
}

// A refresh and a revocation of the same session at the same moment both succeed, whatever
// their interleaving: the revocation leaves the session revoked, the refresh either rotated
// before it or found its token used. On PostgreSQL the two take the token's and the session's
// row locks; taken in opposite orders they deadlock (one aborted after deadlock_timeout).
func testRefreshRacesRevocation(t *testing.T, open Opener) {
	db, clock, first := refreshFixture(t, open)
	sessions := []*sqlstore.Session{first}
	for i := 1; i < 40; i++ {
		s := newLimitSession(first.TenantID, first.UserID, clock.Now())
		update(t, db, func(tx *sqlstore.Tx) error {
			if err := tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())); err != nil {
				return err
			}
			return tx.CreateRefreshToken(ctx, s.ID, sqlstore.HashToken(fmt.Sprintf("rt-%d", i)), s.AbsoluteExpiry)
		})
		sessions = append(sessions, s)
	}
	for i, s := range sessions {
		token := fmt.Sprintf("rt-%d", i)
		start := make(chan struct{})
		var refreshErr, revokeErr error
		var markedAt *time.Time // when the refresh found its token used: the revocation's time
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			refreshErr = db.Update(ctx, func(tx *sqlstore.Tx) error {
				use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken(token), sqlstore.HashToken("next-"+token))
				if err != nil {
					return err
				}
				if use.Token.UsedAt != nil {
					markedAt = use.Token.UsedAt
					return nil // the revocation came first
				}
				return use.Renew(ctx)
			})
		})
		wg.Go(func() {
			<-start
			revokeErr = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, s.ID, "test") })
		})
		close(start)
		wg.Wait()
		if refreshErr != nil || revokeErr != nil {
			t.Fatalf("round %d: refresh: %v; revocation: %v; want both to succeed", i, refreshErr, revokeErr)
		}
		var got *sqlstore.Session
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.SessionByID(ctx, s.ID); return err }); err != nil {
			t.Fatal(err)
		}
		if got.RevokedAt == nil {
			t.Fatalf("round %d: session not revoked after the race", i)
		}
		// A token the revocation marked carries the revocation's time: how the refresh tells
		// it from a reused one (no reuse alarm for a client signed out elsewhere).
		if markedAt != nil && !markedAt.Equal(*got.RevokedAt) {
			t.Fatalf("round %d: token marked used at %v, session revoked at %v; want the same time", i, markedAt, got.RevokedAt)
		}
	}
}
