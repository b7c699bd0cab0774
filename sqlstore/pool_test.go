package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestPool_BurstKeepsItsConnections fills the read pool with concurrent transactions and
// checks that afterwards every connection is still open: none closed for exceeding the idle
// limit, so the next burst pays no new connections and no statements compiled again.
func TestPool_BurstKeepsItsConnections(t *testing.T) {
	t.Parallel()
	dsns := map[string]string{"sqlite": filepath.Join(t.TempDir(), "pool.db")}
	// sqltest (which imports this package) cannot be used here: its default URL, and its
	// rule that CI never skips PostgreSQL.
	pg := os.Getenv("TUTELA_TEST_DATABASE_URL")
	if pg == "" {
		pg = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if os.Getenv("CI") == "true" || pgReachable(pg) {
		dsns["postgres"] = pg
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, dsn, Options{MaxOpenConns: 24})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			n := db.read.Stats().MaxOpenConnections
			var inside, release sync.WaitGroup
			inside.Add(n)
			release.Add(1)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					if err := db.View(ctx, func(*Tx) error { inside.Done(); release.Wait(); return nil }); err != nil {
						t.Error(err)
					}
				})
			}
			inside.Wait() // n transactions at once: n connections open
			release.Done()
			wg.Wait()
			if st := db.read.Stats(); st.MaxIdleClosed != 0 || st.Idle != n {
				t.Fatalf("after a burst of %d: %d idle, %d closed for the idle limit; want all %d kept", n, st.Idle, st.MaxIdleClosed, n)
			}
		})
	}
}

func pgReachable(dsn string) bool {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return false
	}
	defer db.Close()
	return db.Ping() == nil
}
