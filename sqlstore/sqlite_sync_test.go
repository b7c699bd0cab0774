package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// pragmaSynchronous reads PRAGMA synchronous on every connection a pool may open (0 OFF,
// 1 NORMAL, 2 FULL, 3 EXTRA), holding them all at once so each is a distinct connection.
func pragmaSynchronous(t *testing.T, pool *sql.DB, conns int) []int {
	t.Helper()
	ctx := context.Background()
	var got []int
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var v int
		if err := c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	return got
}

// The durability setting reaches every connection of every pool (the writer, the readers, the
// keyset readers): a reader opened with another value would not weaken commits, but a writer
// would, and the pools are opened apart.
func TestOpenSQLite_SynchronousAppliesToEveryConnection(t *testing.T) {
	t.Parallel()
	for setting, want := range map[string]int{"": 2, SyncFull: 2, SyncNormal: 1} {
		t.Run("setting="+setting, func(t *testing.T) {
			t.Parallel()
			db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), Options{SQLiteSynchronous: setting})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for name, p := range map[string]struct {
				pool  *sql.DB
				conns int
			}{"write": {db.write, 1}, "read": {db.read, 3}, "keys": {db.keys, keyPoolConns}} {
				for i, v := range pragmaSynchronous(t, p.pool, p.conns) {
					if v != want {
						t.Errorf("%s pool connection %d: PRAGMA synchronous = %d, want %d", name, i, v, want)
					}
				}
			}
		})
	}
}

func TestOpenSQLite_RefusesUnknownSynchronous(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"off", "FULL", "extra", "1", " normal"} {
		path := filepath.Join(t.TempDir(), "t.db")
		if db, err := Open(context.Background(), path, Options{SQLiteSynchronous: bad}); err == nil {
			db.Close()
			t.Errorf("synchronous %q accepted", bad)
		}
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("synchronous %q: the database file was created (%v)", bad, err)
		}
	}
}
