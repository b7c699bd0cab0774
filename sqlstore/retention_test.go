package sqlstore_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestPurgeExpired_RuntimeRoleSweepsEveryTenant runs the sweep as a non-superuser role, which
// row-level security applies to, from a context carrying a tenant-scoped principal: the sweep
// is platform work and must still reach the ended sessions of every tenant.
func TestPurgeExpired_RuntimeRoleSweepsEveryTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	owner, err := sqlstore.Open(ctx, dsn, sqlstore.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, owner)
	now := clock.Now()
	clock.Set(now.Add(-60 * 24 * time.Hour))
	var tenants []string
	for _, slug := range []string{"a", "b"} {
		err := owner.Update(ctx, func(tx *sqlstore.Tx) error {
			tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			u := &tutela.User{Email: slug + "@example.org"}
			if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
				return err
			}
			s := &sqlstore.Session{TenantID: tn.ID, UserID: u.ID, TokenVersion: 1, AMR: []string{"pwd"},
				IdleTimeout: time.Hour, AbsoluteExpiry: tx.Now().Add(12 * time.Hour)}
			if err := tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.RandomToken(32))); err != nil {
				return err
			}
			tenants = append(tenants, tn.ID)
			return tx.RevokeSessionByID(ctx, s.ID, "logout")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(now)

	role := "tutela_rt_" + tutela.RandomToken(6)
	u, _ := url.Parse(dsn)
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if _, err := owner.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.User(role)
	rt, err := sqlstore.Open(ctx, u.String(), sqlstore.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, rt)
	t.Cleanup(func() {
		rt.Close()
		_, _ = owner.SQL().ExecContext(ctx, `DROP OWNED BY `+role)
		if _, err := owner.SQL().ExecContext(ctx, `DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})

	admin := &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tenants[0], UserID: tutela.NewID(),
		Roles: []string{authz.RoleProgramAdmin}}
	scoped := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "r1", Principal: admin})
	day := 24 * time.Hour
	c, err := rt.PurgeExpired(scoped, clock.Now(), sqlstore.Retention{LoginHistory: day, SecurityEvents: day,
		EndedSessions: 30 * day, UsedTokens: day, DeadJobs: day})
	if err != nil {
		t.Fatal(err)
	}
	if c.Sessions != 2 {
		t.Fatalf("purged %d sessions as a tenant-scoped caller, want both tenants' 2", c.Sessions)
	}
}
