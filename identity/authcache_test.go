package identity_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const cachePassword = "amber falcon meadow 93 tidewater"

// node is one Tutela node: its own store handle (and so its own epoch watcher, polled only when
// the test says) and its own identity service with its caches.
type node struct {
	db  *sqlstore.DB
	ids *identity.Service
	env *identitytest.Env
}

func openNode(t *testing.T, dsn string, clock *clocktest.Clock) *node {
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
	env := identitytest.New(t, db, clock.Now, identity.Config{})
	return &node{db: db, ids: env.Identity, env: env}
}

func (n *node) poll(t *testing.T) {
	t.Helper()
	if err := n.db.AuthEpochs().Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Two nodes on one PostgreSQL database. Node B's caches are warmed; node A changes
// authentication state; B keeps answering from its cache only until its watcher polls (driven by
// hand here, every 250 ms in serve) and refuses right after, for every kind of change; and B
// stops trusting its cache on its own once its last good poll is AuthEpochMaxAge old, whether
// polls fail or do not happen.
func TestAuthCache_TwoNodesOnePostgres(t *testing.T) {
	t.Parallel()
	dsn := sqltest.PostgresURL(t)
	clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
	checkCacheKinds(t, openNode(t, dsn, clock), openNode(t, dsn, clock), clock)
}

// On the node that made a change it holds at once: the change's transaction polls after its
// commit, before the call returns.
func TestAuthCache_SameNodeAtOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
			n := openNode(t, sqltest.DSN(t, d), clock)
			checkCacheKinds(t, n, n, clock)
		})
	}
}

// checkCacheKinds warms b's caches, changes authentication state on a, and checks b: when b is
// another node, it answers from its cache until its watcher polls and refuses right after; when
// b is a, it refuses at once.
func checkCacheKinds(t *testing.T, a, b *node, clock *clocktest.Clock) {
	ctx := context.Background()
	sameNode := a == b
	// beforePoll checks b before it polls: still served from its cache (another node), or
	// already refused (this node, via wantErr); then b polls.
	beforePoll := func(t *testing.T, call func() error, wantErr func(error) bool) {
		t.Helper()
		err := call()
		if sameNode {
			if !wantErr(err) {
				t.Fatalf("same node, right after the change: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("B refused before its watcher polled (%v): the cache is not in use, this test proves nothing", err)
		}
		b.poll(t)
	}
	unauthenticated := func(err error) bool { return tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED }
	reason := func(r string) func(error) bool {
		return func(err error) bool { return identity.RefusalOf(err) != nil && identity.RefusalOf(err).Reason == r }
	}

	newTenant := func(slug string) *tutela.Tenant {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		if err := a.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	acme := newTenant("acme")
	n := 0
	// signIn makes a user with the operator role and signs them in on B.
	signIn := func(tn *tutela.Tenant) (*tutela.User, *identity.Grant) {
		t.Helper()
		n++
		email := "u" + string(rune('a'+n)) + "@example.org"
		u := a.env.SeedUser(t, a.db, tn.ID, email, cachePassword)
		if err := a.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, "operator", "", nil) }); err != nil {
			t.Fatal(err)
		}
		g, err := b.ids.Login(ctx, identity.LoginRequest{Tenant: tn.Slug, Email: email, Password: tutela.NewSecret(cachePassword), IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		return u, g
	}
	// onB authenticates the grant's access token and cookie on B; both must agree.
	onB := func(g *identity.Grant) (*tutela.Principal, error) {
		t.Helper()
		p, err := b.ids.AuthenticateBearer(ctx, g.AccessToken.Reveal())
		pc, cerr := b.ids.AuthenticateSession(ctx, g.SessionSecret.Reveal())
		if (err == nil) != (cerr == nil) {
			t.Fatalf("bearer and cookie disagree: %v / %v", err, cerr)
		}
		if err == nil && !slices.Equal(p.Roles, pc.Roles) {
			t.Fatalf("bearer roles %v, cookie roles %v", p.Roles, pc.Roles)
		}
		return p, err
	}
	warm := func(g *identity.Grant) {
		t.Helper()
		b.poll(t)
		for range 2 { // a miss that fills the caches, then a hit
			if _, err := onB(g); err != nil {
				t.Fatalf("warming B: %v", err)
			}
		}
	}
	onA := func(fn func(tx *sqlstore.Tx) error) {
		t.Helper()
		if err := a.db.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}

	changes := []struct {
		name   string
		change func(u *tutela.User, g *identity.Grant) func(tx *sqlstore.Tx) error
	}{
		{"session revoked", func(u *tutela.User, g *identity.Grant) func(tx *sqlstore.Tx) error {
			return func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, g.Session.ID, "logout") }
		}},
		{"signed out everywhere", func(u *tutela.User, g *identity.Grant) func(tx *sqlstore.Tx) error {
			return func(tx *sqlstore.Tx) error {
				return a.ids.RevokeAll(ctx, tx, u.TenantID, u.ID, "admin", "192.0.2.9")
			}
		}},
		{"user disabled", func(u *tutela.User, g *identity.Grant) func(tx *sqlstore.Tx) error {
			return func(tx *sqlstore.Tx) error {
				cp, err := tx.Users(u.TenantID).Get(ctx, u.ID)
				if err != nil {
					return err
				}
				cp.Status = tutela.StatusDisabled
				return tx.Users(u.TenantID).Update(ctx, cp)
			}
		}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			u, g := signIn(acme)
			warm(g)
			onA(c.change(u, g))
			beforePoll(t, func() error { _, err := onB(g); return err }, unauthenticated)
			if _, err := onB(g); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("B after one poll: %v, want unauthenticated", err)
			}
		})
	}

	t.Run("role removed", func(t *testing.T) {
		u, g := signIn(acme)
		warm(g)
		policy := func() *authz.Policy {
			var p *authz.Policy
			if err := b.db.View(ctx, func(tx *sqlstore.Tx) (err error) { p, err = tx.CachedPolicy(ctx, acme.ID, u.ID); return err }); err != nil {
				t.Fatal(err)
			}
			return p
		}
		policy()
		onA(func(tx *sqlstore.Tx) error { return tx.Users(acme.ID).RevokeRole(ctx, u.ID, "operator") })
		if !sameNode {
			if p, _ := onB(g); !slices.Contains(p.Roles, "operator") || !slices.Contains(policy().Roles, "operator") {
				t.Fatal("B's caches were not in use before its poll")
			}
			b.poll(t)
		}
		p, err := onB(g)
		if err != nil || slices.Contains(p.Roles, "operator") {
			t.Fatalf("B after one poll: roles %v, %v; want operator gone", p, err)
		}
		if slices.Contains(policy().Roles, "operator") {
			t.Fatal("B's cached policy still grants the removed role after one poll")
		}
	})

	t.Run("service account secret rotated", func(t *testing.T) {
		sa, secret, err := a.ids.CreateServiceAccount(ctx, "acme", "etl")
		if err != nil {
			t.Fatal(err)
		}
		b.poll(t)
		for range 2 {
			if _, err := b.ids.AuthenticateClient(ctx, sa.ClientID, secret, "192.0.2.1"); err != nil {
				t.Fatalf("warming B: %v", err)
			}
		}
		// Another secret is refused without touching the cached account.
		if _, err := b.ids.AuthenticateClient(ctx, sa.ClientID, tutela.NewSecret("tss_wrong"), "192.0.2.1"); identity.RefusalOf(err) == nil || identity.RefusalOf(err).Reason != "bad_secret" {
			t.Fatalf("wrong secret on a warm cache: %v", err)
		}
		var secretID string
		if err := a.db.SQL().QueryRowContext(ctx, `SELECT id FROM service_account_secrets WHERE service_account_id = $1`, sa.ID).Scan(&secretID); err != nil {
			t.Fatal(err)
		}
		onA(func(tx *sqlstore.Tx) error {
			if _, err := tx.AddServiceAccountSecret(ctx, acme.ID, sa.ID, sqlstore.HashToken("tss_next")); err != nil {
				return err
			}
			return tx.RevokeServiceAccountSecret(ctx, acme.ID, sa.ID, secretID)
		})
		beforePoll(t, func() error { _, err := b.ids.AuthenticateClient(ctx, sa.ClientID, secret, "192.0.2.1"); return err }, reason("bad_secret"))
		if _, err := b.ids.AuthenticateClient(ctx, sa.ClientID, secret, "192.0.2.1"); identity.RefusalOf(err) == nil || identity.RefusalOf(err).Reason != "bad_secret" {
			t.Fatalf("B after one poll: %v, want bad_secret", err)
		}
	})

	t.Run("tenant disabled", func(t *testing.T) {
		other := newTenant("other")
		_, g := signIn(other)
		warm(g)
		onA(func(tx *sqlstore.Tx) error {
			cp := *other
			cp.Status = tutela.StatusDisabled
			return tx.UpdateTenant(ctx, &cp)
		})
		beforePoll(t, func() error { _, err := onB(g); return err }, reason("tenant_inactive"))
		if _, err := onB(g); identity.RefusalOf(err) == nil || identity.RefusalOf(err).Reason != "tenant_inactive" {
			t.Fatalf("B after one poll: %v, want tenant_inactive", err)
		}
	})

	if sameNode {
		return
	}
	t.Run("no poll for AuthEpochMaxAge", func(t *testing.T) {
		_, g := signIn(acme)
		warm(g)
		onA(func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, g.Session.ID, "logout") })
		clock.Add(sqlstore.AuthEpochMaxAge - time.Millisecond)
		if _, err := onB(g); err != nil {
			t.Fatalf("B refused within AuthEpochMaxAge of its poll (%v): the cache is not in use", err)
		}
		clock.Add(time.Millisecond)
		if _, err := onB(g); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
			t.Fatalf("B with its last poll AuthEpochMaxAge old: %v, want unauthenticated", err)
		}
	})

	t.Run("polls failing", func(t *testing.T) {
		_, g := signIn(acme)
		warm(g)
		onA(func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, g.Session.ID, "logout") })
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for range 3 {
			clock.Add(sqlstore.AuthEpochPollInterval)
			if err := b.db.AuthEpochs().Poll(cancelled); err == nil {
				t.Fatal("a cancelled poll succeeded")
			}
		}
		if _, err := onB(g); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
			t.Fatalf("B after failed polls for %v: %v, want unauthenticated", 3*sqlstore.AuthEpochPollInterval, err)
		}
	})
}
