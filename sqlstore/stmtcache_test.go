package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// openCachePool is one SQLite connection through the statement cache, with a table t(k, v).
func openCachePool(t *testing.T) *sql.DB {
	t.Helper()
	db, err := openSQLitePool("file:" + filepath.Join(t.TempDir(), "c.db") + "?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func cachedCount(t *testing.T, db *sql.DB) int {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := -1
	if err := c.Raw(func(dc any) error {
		n = len(dc.(*cachingConn).stmts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A statement is compiled once and reused; a failed execution (a constraint) leaves it usable.
func TestStmtCache_ReusesAndSurvivesErrors(t *testing.T) {
	db := openCachePool(t)
	const ins = `INSERT INTO t (k, v) VALUES ($1, $2)`
	for i := range 3 {
		if _, err := db.Exec(ins, i, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(ins, 1, "dup"); err == nil {
		t.Fatal("duplicate key accepted")
	}
	if _, err := db.Exec(ins, 9, "after"); err != nil {
		t.Fatalf("statement unusable after a failed run: %v", err)
	}
	var v string
	if err := db.QueryRow(`SELECT v FROM t WHERE k = $1`, 9).Scan(&v); err != nil || v != "after" {
		t.Fatalf("read back %q, %v", v, err)
	}
	if n := cachedCount(t, db); n != 3 { // CREATE, INSERT, SELECT
		t.Fatalf("%d statements cached, want 3", n)
	}
}

// The same query run again while its rows are still open (nested) must not reset them.
func TestStmtCache_NestedSameQueryKeepsOuterRows(t *testing.T) {
	db := openCachePool(t)
	for i := range 5 {
		if _, err := db.Exec(`INSERT INTO t (k, v) VALUES ($1, $2)`, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT k, v FROM t WHERE k >= $1 ORDER BY k`
	rows, err := tx.Query(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for rows.Next() {
		var k int
		var v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
		// The same text, inside the loop.
		var inner int
		if err := tx.QueryRow(q, 4).Scan(&inner, &v); err != nil || inner != 4 {
			t.Fatalf("inner query: %d, %v", inner, err)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("outer rows %v: reset by the nested query", got)
	}
}

// Past the cache's size, the least recently used statements are finalized.
func TestStmtCache_Bounded(t *testing.T) {
	db := openCachePool(t)
	for i := range stmtCacheSize + 40 {
		var n int
		if err := db.QueryRow(fmt.Sprintf(`SELECT %d + $1`, i), 1).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if n := cachedCount(t, db); n != stmtCacheSize {
		t.Fatalf("%d statements cached, want %d", n, stmtCacheSize)
	}
}

// A script longer than maxCachedQuery (the SQLite baseline) runs, and is not kept compiled.
func TestStmtCache_LongScriptRunsUncached(t *testing.T) {
	db := openCachePool(t)
	script := strings.Repeat("INSERT INTO t (v) VALUES ('x');\n", maxCachedQuery/32+1)
	if len(script) <= maxCachedQuery {
		t.Fatalf("script of %d bytes is not long enough", len(script))
	}
	before := cachedCount(t, db)
	if _, err := db.Exec(script); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != maxCachedQuery/32+1 {
		t.Fatalf("rows after the script: %d, %v", n, err)
	}
	if got := cachedCount(t, db); got != before+1 { // the count query only
		t.Fatalf("%d statements cached after the script, want %d", got, before+1)
	}
}

// A canceled context ends a query through a cached statement, and the statement still works.
func TestStmtCache_CanceledContext(t *testing.T) {
	db := openCachePool(t)
	const q = `SELECT count(*) FROM t WHERE k > $1`
	var n int
	if err := db.QueryRow(q, 0).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.QueryRowContext(ctx, q, 0).Scan(&n); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled query: %v", err)
	}
	if err := db.QueryRow(q, 0).Scan(&n); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}
