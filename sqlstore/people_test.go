package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Distinctive values that must never reach the database in plaintext.
const (
	pdEmail = "Zebulon.Quixote-Marker@Example.org"
	pdName  = "Zebulon Quixotemarker"
	pdUA    = "QuixoteBrowser/9.87 (marker-agent)"
	pdIP    = "203.0.113.77"
	// pdStranger is an address with no account: a failed sign-in for it stores no trace of it.
	pdStranger = "nobody-zq@example.org"
)

// personalDataFixture writes, through the store, every kind of row that holds a user's
// personal data: the user, a session, a successful and an unknown-user sign-in, a security
// event and an access review of the user's grant.
func personalDataFixture(t *testing.T, db *sqlstore.DB) (*tutela.Tenant, *tutela.User, *sqlstore.AccessReview) {
	t.Helper()
	ctx := context.Background()
	tn := &tutela.Tenant{Slug: "pd", Name: "PD", Region: "eu-west"}
	u := &tutela.User{Email: pdEmail, DisplayName: pdName}
	rv := &sqlstore.AccessReview{}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		return tx.Users(tn.ID).Grant(ctx, u.ID, "operator", "", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		now := tx.Now()
		s := &sqlstore.Session{TenantID: tn.ID, UserID: u.ID, TokenVersion: 1, AMR: []string{"pwd"}, IP: pdIP,
			UserAgent: pdUA, IdleTimeout: time.Hour, AbsoluteExpiry: now.Add(8 * time.Hour)}
		if err := tx.CreateSession(ctx, s, bytes.Repeat([]byte{1}, 32)); err != nil {
			return err
		}
		for _, r := range []*sqlstore.LoginRecord{
			{TenantID: tn.ID, UserID: u.ID, IP: pdIP, UserAgent: pdUA, Result: "success"},
			{TenantID: tn.ID, IP: pdIP, UserAgent: pdUA, Result: "failure", Reason: "unknown_user"},
			{IP: pdIP, UserAgent: pdUA, Result: "failure", Reason: "unknown_tenant"},
		} {
			if err := tx.RecordLogin(ctx, r); err != nil {
				return err
			}
		}
		if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tn.ID, UserID: u.ID, Kind: "account_locked", IP: pdIP}); err != nil {
			return err
		}
		rv.Deadline = now.Add(24 * time.Hour)
		return tx.AccessReviews(tn.ID).Open(ctx, rv)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tn, u, rv
}

// dump is every byte the database holds: the SQLite file (WAL checkpointed into it first), or
// a pg_dump of the PostgreSQL database.
func dump(t *testing.T, db *sqlstore.DB, dsn string) []byte {
	t.Helper()
	if db.Dialect() == sqlstore.SQLite {
		if _, err := db.SQL().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, f := range []string{dsn, dsn + "-wal"} {
			b, err := os.ReadFile(f)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Skip("pg_dump not installed")
	}
	out, err := exec.Command(pgDump, "--data-only", "--dbname="+dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

func mustNotContain(t *testing.T, where string, b []byte, values ...string) {
	t.Helper()
	lower := bytes.ToLower(b)
	for _, v := range values {
		if bytes.Contains(lower, bytes.ToLower([]byte(v))) {
			t.Errorf("%s holds %q in plaintext", where, v)
		}
	}
}

// Issue 13's done-when: a user's e-mail and name (and their sessions' and sign-ins' IP and user
// agent) are not in the database file, or a dump, in plaintext; the store still reads them back.
func TestPersonalData_NotInDatabaseInPlaintext(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			tn, u, rv := personalDataFixture(t, db)

			mustNotContain(t, string(d)+" database", dump(t, db, dsn), pdEmail, pdName, pdUA, pdIP, "Quixote", pdStranger)

			// Everything reads back for those allowed to see it.
			err := db.View(ctx, func(tx *sqlstore.Tx) error {
				got, err := tx.Users(tn.ID).ByEmail(ctx, strings.ToUpper(pdEmail))
				if err != nil || got.ID != u.ID || got.Email != pdEmail || got.DisplayName != pdName {
					t.Errorf("ByEmail (upper case) = %+v, %v; want the user with their e-mail and name", got, err)
				}
				ss, err := tx.Users(tn.ID).Sessions(ctx, u.ID)
				if err != nil || len(ss) != 1 || ss[0].IP != pdIP || ss[0].UserAgent != pdUA {
					t.Errorf("Sessions = %+v, %v", ss, err)
				}
				lh, err := tx.LoginHistory(ctx, tn.ID, "", 10)
				if err != nil || len(lh) != 2 || lh[0].UserAgent != pdUA || lh[1].IP != pdIP {
					t.Errorf("LoginHistory = %+v, %v", lh, err)
				}
				ev, err := tx.SecurityEvents(ctx, tn.ID, 10)
				if err != nil || len(ev) != 1 || ev[0].IP != pdIP {
					t.Errorf("SecurityEvents = %+v, %v", ev, err)
				}
				items, err := tx.AccessReviews(tn.ID).Items(ctx, rv.ID, false)
				if err != nil || len(items) != 1 || items[0].UserEmail != pdEmail || items[0].UserDisplayName != pdName {
					t.Errorf("review items = %+v, %v", items, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// Erasure: the user's key and row go; every sealed copy left reads as erased.
			err = db.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.Users(tn.ID).Erase(ctx, u.ID, "data subject request", "GDPR Art. 17(1)(a)")
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.View(ctx, func(tx *sqlstore.Tx) error {
				if _, err := tx.Users(tn.ID).ByEmail(ctx, pdEmail); tutela.ErrorCode(err) != tutela.ENOTFOUND {
					t.Errorf("ByEmail after erasure: %v, want not found", err)
				}
				if w, err := tx.PersonKeys(tn.ID).Get(ctx, u.ID); err != nil || w != nil {
					t.Errorf("person key after erasure: %x, %v", w, err)
				}
				lh, err := tx.LoginHistory(ctx, tn.ID, u.ID, 10)
				if err != nil || len(lh) != 1 || lh[0].IP != sqlstore.ErasedPlaceholder || lh[0].UserAgent != sqlstore.ErasedPlaceholder {
					t.Errorf("LoginHistory after erasure = %+v, %v; want %q", lh, err, sqlstore.ErasedPlaceholder)
				}
				items, err := tx.AccessReviews(tn.ID).Items(ctx, rv.ID, false)
				if err != nil || len(items) != 1 || items[0].UserEmail != sqlstore.ErasedPlaceholder ||
					items[0].UserDisplayName != sqlstore.ErasedPlaceholder {
					t.Errorf("review items after erasure = %+v, %v", items, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			mustNotContain(t, string(d)+" database after erasure", dump(t, db, dsn), pdEmail, pdName, pdUA, pdIP)
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.Users(tn.ID).Erase(ctx, u.ID, "again", "GDPR Art. 17")
			}); tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("second erasure: %v, want not found", err)
			}
		})
	}
}

// Sign-in lookup is by blind index: any letter case finds the user, a duplicate in any case is
// a conflict, another tenant's lookup finds nothing, and a row moved to another user does not
// open.
func TestPersonalData_BlindIndexLookup(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		var a, b *tutela.Tenant
		ua, ub := &tutela.User{Email: "Ann@Example.org", DisplayName: "Ann"}, &tutela.User{Email: "bob@example.org", DisplayName: "Bob"}
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			a, b = &tutela.Tenant{Slug: "a", Name: "A", Region: "eu"}, &tutela.Tenant{Slug: "b", Name: "B", Region: "eu"}
			if err := tx.CreateTenant(ctx, a); err != nil {
				return err
			}
			if err := tx.CreateTenant(ctx, b); err != nil {
				return err
			}
			if err := tx.Users(a.ID).Create(ctx, ua); err != nil {
				return err
			}
			return tx.Users(a.ID).Create(ctx, ub)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(a.ID).Create(ctx, &tutela.User{Email: "ANN@example.ORG", DisplayName: "Dup"})
		})
		if tutela.ErrorCode(err) != tutela.ECONFLICT {
			t.Errorf("duplicate e-mail in another case: %v, want conflict", err)
		}
		ub.Email = "ann@EXAMPLE.org"
		err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(a.ID).Update(ctx, ub) })
		if tutela.ErrorCode(err) != tutela.ECONFLICT {
			t.Errorf("update to another user's e-mail: %v, want conflict", err)
		}
		err = db.View(ctx, func(tx *sqlstore.Tx) error {
			for _, e := range []string{"ann@example.org", "ANN@EXAMPLE.ORG", " Ann@Example.org"} {
				if c, err := tx.Users(a.ID).CredentialsByEmail(ctx, strings.TrimSpace(e)); err != nil || c.User.ID != ua.ID {
					t.Errorf("CredentialsByEmail(%q) = %v; want Ann", e, err)
				}
			}
			if _, err := tx.Users(b.ID).ByEmail(ctx, "ann@example.org"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("lookup in another tenant: %v, want not found", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Ann's sealed e-mail copied onto Bob's row does not open under Bob's key.
		if _, err := db.SQL().Exec(`UPDATE users SET email_sealed = (SELECT email_sealed FROM users WHERE id = $1) WHERE id = $2`,
			ua.ID, ub.ID); err != nil {
			t.Fatal(err)
		}
		err = db.View(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Users(a.ID).Get(ctx, ub.ID)
			if !errors.Is(err, privacy.ErrDecrypt) {
				t.Errorf("Get with another user's sealed e-mail: %v, want privacy.ErrDecrypt", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// A database written before migration 00018 holds plaintext; SealPersonalData seals it, empties
// the plaintext columns (none left in the file or a dump), is idempotent, and the users still
// sign in by e-mail.
func TestSealPersonalData_SealsLegacyRowsOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			tn := &tutela.Tenant{Slug: "legacy", Name: "Legacy", Region: "eu"}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
				t.Fatal(err)
			}
			// Rows as a version before 00018 wrote them.
			uid, now := tutela.NewID(), db.Now()
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO users (id, tenant_id, email, email_norm, display_name, status, created_at, updated_at)
					VALUES ($1, $2, $3, $4, $5, 'active', $6, $6)`, []any{uid, tn.ID, pdEmail, strings.ToLower(pdEmail), pdName, now}},
				{`INSERT INTO login_history (id, tenant_id, user_id, ip, user_agent, result, reason, created_at)
					VALUES ($1, $2, $3, $4, $5, 'success', '', $6)`, []any{tutela.NewID(), tn.ID, uid, pdIP, pdUA, now}},
				{`INSERT INTO login_history (id, tenant_id, ip, user_agent, result, reason, created_at)
					VALUES ($1, $2, $3, $4, 'failure', 'unknown_user', $5)`, []any{tutela.NewID(), tn.ID, pdIP, pdUA, now}},
				{`INSERT INTO security_events (id, tenant_id, user_id, kind, ip, details, created_at)
					VALUES ($1, $2, $3, 'account_locked', $4, '{}', $5)`, []any{tutela.NewID(), tn.ID, uid, pdIP, now}},
			} {
				if _, err := db.SQL().ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatal(err)
				}
			}
			n, err := db.SealPersonalData(ctx)
			if err != nil || n != 4 {
				t.Fatalf("SealPersonalData = %d, %v; want 4 rows", n, err)
			}
			if n, err := db.SealPersonalData(ctx); err != nil || n != 0 {
				t.Fatalf("second SealPersonalData = %d, %v; want 0 (idempotent)", n, err)
			}
			mustNotContain(t, string(d)+" database after sealing", dump(t, db, dsn), pdEmail, pdName, pdUA, pdIP)
			err = db.View(ctx, func(tx *sqlstore.Tx) error {
				c, err := tx.Users(tn.ID).CredentialsByEmail(ctx, strings.ToUpper(pdEmail))
				if err != nil || c.User.ID != uid || c.User.DisplayName != pdName {
					t.Errorf("CredentialsByEmail after sealing = %v", err)
				}
				lh, err := tx.LoginHistory(ctx, tn.ID, "", 10)
				if err != nil || len(lh) != 2 || lh[0].UserAgent != pdUA || lh[1].UserAgent != pdUA || lh[0].IP != pdIP {
					t.Errorf("LoginHistory after sealing = %+v, %v", lh, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
