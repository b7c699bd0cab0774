package sqlstore_test

import (
	"context"
	"database/sql"
	"slices"
	"sort"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// openUnwatched opens a migrated store on dsn whose watcher only polls when the test says so.
func openUnwatched(t *testing.T, dsn string, clock *clocktest.Clock) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	return db
}

// The triggers of migration 00038 and the statement classifier (writesAuthState) cover the same
// tables: a table the cached reads use with no trigger would leave other nodes stale forever.
func TestAuthEpochs_TriggersCoverAuthTables(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			db := sqltest.Open(t, d, sqlstore.Options{})
			q := `SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'auth_epoch_%'`
			if d == sqlstore.Postgres {
				q = `SELECT DISTINCT c.relname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid WHERE tg.tgname LIKE 'auth_epoch_%'`
			}
			rows, err := db.SQL().Query(q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				got = append(got, s)
			}
			want := sqlstore.AuthTables()
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("tables with epoch triggers %v, tables the classifier watches %v", got, want)
			}
		})
	}
}

func TestAuthEpochs_ClassifiesStatements(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{
		`UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND revoked_at IS NULL`:                   false,
		`UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3`:                       true,
		`UPDATE sessions SET token_hash = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING tenant_id`: true,
		`UPDATE users SET last_login_at = $1 WHERE tenant_id = $2 AND id = $3`:                         false,
		`UPDATE users SET token_version = token_version + 1, updated_at = $1 WHERE id = $2`:            true,
		`UPDATE mfa_factors SET last_used_at = $1 WHERE id = $2`:                                       false,
		`UPDATE mfa_factors SET last_step = $1, last_used_at = $2, active = TRUE WHERE id = $3`:        true,
		`INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3)`:                     true,
		`DELETE FROM role_permissions WHERE role_id = $1`:                                              true,
		`insert or ignore into service_account_secrets (id) values ($1)`:                               true,
		`SELECT status FROM users WHERE id = $1`:                                                       false,
		`INSERT INTO audit_events (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET id = excluded.id`:    false,
		`INSERT INTO sessions (id, tenant_id) VALUES ($1, $2)`:                                         false,
		`DELETE FROM sessions WHERE id = $1`:                                                           true,
		// A WITH of several writes: each table's own SET list decides (the refresh's statement).
		`WITH used AS (UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 RETURNING session_id),
			touched AS (UPDATE sessions SET last_seen_at = $1 WHERE id IN (SELECT session_id FROM used))
			SELECT 1`: false,
		`WITH used AS (UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 RETURNING session_id),
			touched AS (UPDATE sessions SET revoked_at = $1 WHERE id IN (SELECT session_id FROM used))
			SELECT 1`: true,
		`WITH a AS (UPDATE sessions SET last_seen_at = $1 WHERE id = $2) UPDATE users SET status = $3 WHERE id = $4`: true,
		`UPDATE sessions s SET revoked_at = $1 WHERE s.id = $2`:                                                      true, // an alias: no SET list found, so yes
	} {
		if got := sqlstore.WritesAuthState(q); got != want {
			t.Errorf("writesAuthState(%q) = %v, want %v", q, got, want)
		}
	}
}

// One store, its watcher driven by hand: a local change polls at once, activity does not, an
// entry is trusted only while the last good poll is younger than AuthEpochMaxAge, and a failed
// poll renews nothing.
func TestAuthEpochs_WatcherFreshnessAndLocalChanges(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			db := openUnwatched(t, sqltest.DSN(t, d), clock)
			w := db.AuthEpochs()
			c := sqlstore.NewAuthCache[string, int](w, 8)
			c.Put(w.Ticket(), "k", "t", 1, time.Time{})
			if c.Len() != 0 {
				t.Fatal("cached before the watcher ever polled")
			}
			tn := &tutela.Tenant{Slug: "w", Name: "W", Region: "eu"}
			u := &tutela.User{Email: "u@example.org", DisplayName: "U"}
			sess := &sqlstore.Session{TokenVersion: 1, AMR: []string{"pwd"}, IdleTimeout: time.Hour}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.CreateTenant(ctx, tn); err != nil {
					return err
				}
				if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
					return err
				}
				sess.TenantID, sess.UserID, sess.AbsoluteExpiry = tn.ID, u.ID, tx.Now().Add(24*time.Hour)
				return tx.CreateSession(ctx, sess, sqlstore.HashToken(tutela.NewID()))
			}); err != nil {
				t.Fatal(err)
			}
			if err := w.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			c.Put(w.Ticket(), "k", tn.ID, 1, time.Time{})
			if _, ok := c.Get("k", clock.Now()); !ok {
				t.Fatal("fresh entry missed")
			}
			// Activity: no poll, the entry stands.
			clock.Add(2 * time.Minute)
			if err := w.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			polls := w.Polls()
			c.Put(w.Ticket(), "k", tn.ID, 1, time.Time{})
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.TouchSession(ctx, sess.ID) }); err != nil {
				t.Fatal(err)
			}
			if w.Polls() != polls {
				t.Fatal("a last-seen touch made its transaction poll")
			}
			if _, ok := c.Get("k", clock.Now()); !ok {
				t.Fatal("a last-seen touch invalidated the tenant's entries")
			}
			// A local revocation: polled after commit, the entry is gone before Update returns.
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, sess.ID, "logout") }); err != nil {
				t.Fatal(err)
			}
			if w.Polls() == polls {
				t.Fatal("a revocation did not poll after its commit")
			}
			if _, ok := c.Get("k", clock.Now()); ok {
				t.Fatal("entry still valid after a local revocation")
			}
			// Staleness bound: 1 ns short of AuthEpochMaxAge still trusted, at it not.
			c.Put(w.Ticket(), "k", tn.ID, 2, time.Time{})
			if err := w.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			clock.Add(sqlstore.AuthEpochMaxAge - time.Nanosecond)
			if _, ok := c.Get("k", clock.Now()); !ok {
				t.Fatal("entry dropped before AuthEpochMaxAge")
			}
			// A failed poll (here: cancelled) renews nothing.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if err := w.Poll(cancelled); err == nil {
				t.Fatal("cancelled poll succeeded")
			}
			clock.Add(time.Nanosecond)
			if _, ok := c.Get("k", clock.Now()); ok {
				t.Fatal("entry trusted although the last good poll began AuthEpochMaxAge ago")
			}
			// The watcher polls again: new entries are trusted again.
			if err := w.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			c.Put(w.Ticket(), "k", tn.ID, 3, time.Time{})
			if v, ok := c.Get("k", clock.Now()); !ok || v != 3 {
				t.Fatal("entry missed after the watcher recovered")
			}
			// A closed store: polls fail, the caches are bypassed once the last good poll ages.
			db.Close()
			if err := w.Poll(ctx); err == nil {
				t.Fatal("poll of a closed store succeeded")
			}
			clock.Add(sqlstore.AuthEpochMaxAge)
			if _, ok := c.Get("k", clock.Now()); ok {
				t.Fatal("entry trusted with the database gone for AuthEpochMaxAge")
			}
		})
	}
}

// A cache never holds more than its bound: the least recently used entry goes.
func TestAuthCache_Bounded(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := openUnwatched(t, sqltest.DSN(t, sqlstore.SQLite), clock)
	w := db.AuthEpochs()
	if err := w.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	const bound = 100
	c := sqlstore.NewAuthCache[int, int](w, bound)
	for i := range 3 * bound {
		c.Put(w.Ticket(), i, "t", i, time.Time{})
		if i == bound/2 {
			c.Get(0, clock.Now()) // recently used: survives the next evictions
		}
	}
	if c.Len() != bound {
		t.Fatalf("cache holds %d entries, bound %d", c.Len(), bound)
	}
	if _, ok := c.Get(1, clock.Now()); ok {
		t.Fatal("oldest entry not evicted")
	}
	if _, ok := c.Get(3*bound-1, clock.Now()); !ok {
		t.Fatal("newest entry evicted")
	}
	if sqlstore.NewAuthCache[int, int](w, 0) == nil {
		t.Fatal("default bound")
	}
}

// PostgreSQL hands out sequence values in one order and commits in another: a bump that takes
// its version first but commits after a later one must still reach the watcher.
func TestAuthEpochs_PostgresLateCommitSeen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := openUnwatched(t, sqltest.PostgresURL(t), clock)
	var a, b *tutela.Tenant
	var ua, ub *tutela.User
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		a, b = &tutela.Tenant{Slug: "a", Name: "A", Region: "eu"}, &tutela.Tenant{Slug: "b", Name: "B", Region: "eu"}
		ua, ub = &tutela.User{Email: "a@example.org", DisplayName: "A"}, &tutela.User{Email: "b@example.org", DisplayName: "B"}
		for _, p := range []struct {
			t *tutela.Tenant
			u *tutela.User
		}{{a, ua}, {b, ub}} {
			if err := tx.CreateTenant(ctx, p.t); err != nil {
				return err
			}
			if err := tx.Users(p.t.ID).Create(ctx, p.u); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w := db.AuthEpochs()
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	ea := w.Epoch(a.ID)
	early, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback()
	if _, err := early.ExecContext(ctx, `UPDATE users SET token_version = token_version + 1 WHERE id = $1`, ua.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE users SET token_version = token_version + 1 WHERE id = $1`, ub.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Epoch(a.ID) != ea {
		t.Fatal("uncommitted bump seen")
	}
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Epoch(a.ID) <= ea {
		t.Fatalf("a bump committed after a later version was polled is lost: epoch %d, was %d", w.Epoch(a.ID), ea)
	}
}

// Under the non-owner runtime role with row-level security in force, a tenant-scoped
// transaction that revokes one of its sessions still bumps its tenant's epoch (the bump runs as
// the function's owner), without any privilege on auth_epochs beyond reading it; and reading it
// in that scope shows no other tenant's row.
func TestAuthEpochs_PostgresRuntimeRoleBumpsOwnTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := openUnwatched(t, dsn, clock)
	var a, b *tutela.Tenant
	sess := &sqlstore.Session{TokenVersion: 1, AMR: []string{"pwd"}, IdleTimeout: time.Hour}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		a, b = &tutela.Tenant{Slug: "a", Name: "A", Region: "eu"}, &tutela.Tenant{Slug: "b", Name: "B", Region: "eu"}
		for _, tn := range []*tutela.Tenant{a, b} {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
		}
		u := &tutela.User{Email: "x@example.org", DisplayName: "X"}
		if err := tx.Users(a.ID).Create(ctx, u); err != nil {
			return err
		}
		sess.TenantID, sess.UserID, sess.AbsoluteExpiry = a.ID, u.ID, tx.Now().Add(time.Hour)
		return tx.CreateSession(ctx, sess, sqlstore.HashToken(tutela.NewID()))
	}); err != nil {
		t.Fatal(err)
	}
	epoch := func(id string) int64 {
		var e int64
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { e, err = tx.AuthEpoch(ctx, id); return err }); err != nil {
			t.Fatal(err)
		}
		return e
	}
	ea, eb := epoch(a.ID), epoch(b.ID)
	rt, _ := runtimeRole(t, db, dsn, "auth_epochs")
	if _, err := db.SQL().ExecContext(ctx, `GRANT SELECT, UPDATE ON sessions TO `+roleOf(t, rt)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.SQL().ExecContext(context.Background(), `REVOKE ALL ON sessions FROM `+roleOf(t, rt))
	})
	tx, err := rt.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', $1, true)`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE id = $1`, sess.ID); err != nil {
		t.Fatalf("tenant-scoped revocation as the runtime role: %v", err)
	}
	var seen int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM auth_epochs WHERE tenant_id = $1`, b.ID).Scan(&seen); err != nil || seen != 0 {
		t.Fatalf("tenant A's scope sees %d rows of tenant B's epoch (%v)", seen, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := epoch(a.ID); got <= ea {
		t.Fatalf("tenant A's epoch %d → %d after a revocation by the runtime role", ea, got)
	}
	if got := epoch(b.ID); got != eb {
		t.Fatalf("tenant B's epoch moved %d → %d", eb, got)
	}
}

// roleOf is the name of the role rt connects as.
func roleOf(t *testing.T, rt *sql.DB) string {
	t.Helper()
	var name string
	if err := rt.QueryRow(`SELECT current_user`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
