package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// Sign-in should cost the password hash and little else: BenchmarkLogin is meant to stay within
// ~5% of BenchmarkArgon2id (store, session and token work ≤ 5% of one hash). Compare them with
//
//	go test -run '^$' -bench 'Argon2id|Login|Refresh' -benchtime 20x ./identity/

const benchPassword = "amber falcon meadow 93 tidewater"

// defaultHasher is the production hasher: DefaultParams (m=19456 KiB, t=2, p=1).
func defaultHasher(b testing.TB) *password.Hasher {
	b.Helper()
	h, err := password.NewHasher(password.DefaultParams(), 0, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("GOGC") == "" { // the collector's headroom while hashing, as tutela serve sets it
		h.BoostGC(password.ServeGCBoostPercent, password.ServeGCBoostLinger)
	}
	return h
}

// benchService builds the service as cmd/tutela does: a token ring with its keys in the
// database, sealed by a local master key.
func benchService(b testing.TB, db *sqlstore.DB, h *password.Hasher) *identity.Service {
	b.Helper()
	ctx := context.Background()
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		b.Fatal(err)
	}
	ring, err := token.NewRing(ctx, token.Config{Issuer: "https://tutela.test", Audience: []string{"tutela"}},
		identity.KeyStore{DB: db}, sealer)
	if err != nil {
		b.Fatal(err)
	}
	s := identity.New(identity.Deps{DB: db, Hasher: h, Policy: password.DefaultPolicy(), Tokens: ring}, identity.Config{})
	return s
}

// seedUser creates tenant slug with one active user whose password is pw, hashed by h.
func seedUser(b testing.TB, db *sqlstore.DB, h *password.Hasher, slug, email, pw string) {
	b.Helper()
	ctx := context.Background()
	hash, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		u := &tutela.User{Email: email, DisplayName: "Bench " + slug}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, hash)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkArgon2id is the floor of a sign-in: verifying the right password against a hash
// made with DefaultParams.
func BenchmarkArgon2id(b *testing.B) {
	h := defaultHasher(b)
	ctx := context.Background()
	hash, err := h.Hash(ctx, benchPassword)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, _, err := h.Verify(ctx, benchPassword, hash)
		if err != nil || !ok {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkLogin is a successful password sign-in end to end on SQLite: throttle check, user
// lookup, the hash, throttle reset, login history, session, refresh token and access token.
func BenchmarkLogin(b *testing.B) {
	db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{})
	h := defaultHasher(b)
	seedUser(b, db, h, "acme", "ana@example.org", benchPassword)
	s := benchService(b, db, h)
	ctx := context.Background()
	pw := tutela.NewSecret(benchPassword)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		g, err := s.Login(ctx, identity.LoginRequest{Tenant: "acme", Email: "ana@example.org", Password: pw,
			IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), UserAgent: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if g.AccessToken.IsZero() || g.RefreshToken.IsZero() {
			b.Fatal("grant without tokens")
		}
	}
}

// BenchmarkLoginOverhead is BenchmarkLogin with a 64 KiB, one-pass hash (~0.1 ms): what is left
// is the store, session and token work that BenchmarkLogin adds to BenchmarkArgon2id. On a busy
// machine this is steadier than subtracting two ~25 ms results.
func BenchmarkLoginOverhead(b *testing.B) {
	db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{})
	h := cheapHasher(b)
	seedUser(b, db, h, "acme", "ana@example.org", benchPassword)
	s := benchService(b, db, h)
	ctx := context.Background()
	pw := tutela.NewSecret(benchPassword)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, err := s.Login(ctx, identity.LoginRequest{Tenant: "acme", Email: "ana@example.org", Password: pw,
			IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), UserAgent: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// cheapHasher is argon2id at test cost, for benchmarks that do not measure the hash.
func cheapHasher(b testing.TB) *password.Hasher {
	b.Helper()
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewHasher(p, 0, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkRefresh rotates one session's refresh token again and again, each call presenting
// the token the previous one returned (RFC 9700 §4.14.2 rotation), on each store; on
// PostgreSQL as the runtime role (row-level security in force, sqltest.OpenRuntime).
func BenchmarkRefresh(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			if d == sqlstore.Postgres {
				sqltest.RequirePostgres(b)
			}
			s, tokens := refreshSessions(b, sqltest.OpenRuntime(b, d, sqlstore.Options{}), 1)
			ctx := context.Background()
			rt := tokens[0]
			b.ReportAllocs()
			for b.Loop() {
				ng, err := s.Refresh(ctx, rt, "", "192.0.2.1", "bench")
				if err != nil {
					b.Fatal(err)
				}
				rt = ng.RefreshToken
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
		})
	}
}

// refreshParallelism is RunParallel's goroutines per GOMAXPROCS in BenchmarkRefreshParallel:
// many clients refreshing at once, as a server sees them.
const refreshParallelism = 16

// BenchmarkRefreshParallel is BenchmarkRefresh with many clients at once, each rotating its
// own session's tokens, on each store; on PostgreSQL (as the runtime role) with several pool
// sizes (open/idle connections), the first being the default (database.max_open_conns,
// database.max_idle_conns).
func BenchmarkRefreshParallel(b *testing.B) {
	type pool struct{ open, idle int }
	cases := []struct {
		d    sqlstore.Dialect
		pool pool
	}{{sqlstore.SQLite, pool{}}}
	for _, p := range []pool{{0, 0}, {20, 10}, {20, 20}, {8, 8}, {40, 40}} {
		cases = append(cases, struct {
			d    sqlstore.Dialect
			pool pool
		}{sqlstore.Postgres, p})
	}
	for _, c := range cases {
		name := string(c.d)
		if c.d == sqlstore.Postgres {
			name = fmt.Sprintf("%s/open=%d,idle=%d", c.d, c.pool.open, c.pool.idle)
			if c.pool.open == 0 {
				name = string(c.d) + "/default"
			}
		}
		b.Run(name, func(b *testing.B) {
			if c.d == sqlstore.Postgres {
				sqltest.RequirePostgres(b)
			}
			db := sqltest.OpenRuntime(b, c.d, sqlstore.Options{MaxOpenConns: c.pool.open, MaxIdleConns: c.pool.idle})
			clients := refreshParallelism * runtime.GOMAXPROCS(0)
			s, tokens := refreshSessions(b, db, clients)
			var next atomic.Int64
			var failed atomic.Pointer[error]
			ctx := context.Background()
			b.SetParallelism(refreshParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1) - 1) // each goroutine its own session
				rt := tokens[i%len(tokens)]
				for pb.Next() {
					g, err := s.Refresh(ctx, rt, "", "192.0.2.1", "bench")
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					rt = g.RefreshToken
				}
			})
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
		})
	}
}

// refreshSessions seeds ana and signs her in n times (n sessions, n < MaxSessionsPerUser),
// returning the service and each session's refresh token.
func refreshSessions(b *testing.B, db *sqlstore.DB, n int) (*identity.Service, []tutela.Secret) {
	b.Helper()
	h := cheapHasher(b) // Refresh never hashes a password
	seedUser(b, db, h, "acme", "ana@example.org", benchPassword)
	s := benchService(b, db, h)
	tokens := make([]tutela.Secret, n)
	for i := range tokens {
		g, err := s.Login(context.Background(), identity.LoginRequest{Tenant: "acme", Email: "ana@example.org",
			Password: tutela.NewSecret(benchPassword), IP: fmt.Sprintf("10.0.%d.%d", i>>8&255, i&255), UserAgent: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = g.RefreshToken
	}
	return s, tokens
}

// BenchmarkAuthenticateBearer checks one access token again and again, as every /v1 call does,
// on each store: "cached" with the epoch watcher fresh (the caches answer; docs/caching.md),
// "uncached" with the caches bypassed (every call reads the user, tenant, roles and session).
func BenchmarkAuthenticateBearer(b *testing.B) {
	for _, d := range sqltest.Dialects {
		for _, cached := range []bool{true, false} {
			name := string(d) + "/uncached"
			if cached {
				name = string(d) + "/cached"
			}
			b.Run(name, func(b *testing.B) {
				if d == sqlstore.Postgres {
					sqltest.RequirePostgres(b)
				}
				db := sqltest.Open(b, d, sqlstore.Options{})
				if !cached {
					db.AuthEpochs().SetMaxAge(0) // no poll is ever fresh: every call reads the database
				}
				h := cheapHasher(b)
				seedUser(b, db, h, "acme", "ana@example.org", benchPassword)
				s := benchService(b, db, h)
				ctx := context.Background()
				g, err := s.Login(ctx, identity.LoginRequest{Tenant: "acme", Email: "ana@example.org",
					Password: tutela.NewSecret(benchPassword), IP: "192.0.2.1", UserAgent: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				tok := g.AccessToken.Reveal()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.AuthenticateBearer(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auths/s")
			})
		}
	}
}
