package sqlstore

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// SQLite compiles every statement it runs. database/sql hands a query with arguments straight
// to the driver, which prepares, runs and finalizes it each time: on the hot paths (sign-in,
// token exchange, authorization) compiling took about as much time as running. Each SQLite
// connection therefore keeps its most recently used statements compiled, keyed by their text
// (the store's queries are constants with $N placeholders, so the set is small). PostgreSQL
// needs none of this: pgx caches prepared statements per connection itself.

// stmtCacheSize bounds the statements one connection keeps compiled (each holds a few
// kilobytes of SQLite memory); the least recently used is finalized first.
const stmtCacheSize = 128

// maxCachedQuery is the longest query text kept compiled: the store's queries are a few hundred
// bytes to a few kilobytes; a longer one is a script run once (the SQLite baseline, 77 KB).
const maxCachedQuery = 16 << 10

// cachingConnector opens SQLite connections that keep their statements compiled.
type cachingConnector struct{ inner driver.Connector }

func newCachingConnector(dsn string) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConnector{inner: c}, nil
}

func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c *cachingConnector) Driver() driver.Driver { return c.inner.Driver() }

// sqliteConn is what the SQLite driver's connections implement; a wrapper must offer all of
// it, or database/sql falls back to the context-free methods.
type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is one SQLite connection and its compiled statements. database/sql uses a
// connection from one goroutine at a time, so it needs no lock.
type cachingConn struct {
	sqliteConn
	stmts map[string]*list.Element // of *cachedStmt
	lru   list.List                // front: most recently used
}

type cachedStmt struct {
	query string
	stmt  interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	// busy: rows read through the statement are still open, so running it again now would
	// reset them; a nested use of the same text runs uncached.
	busy bool
}

func newCachingConn(c driver.Conn) (driver.Conn, error) {
	sc, ok := c.(sqliteConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("sqlite: connection lacks the context methods the statement cache needs")
	}
	return &cachingConn{sqliteConn: sc, stmts: map[string]*list.Element{}}, nil
}

// statement returns the compiled statement of query, compiling it on first use; nil when it
// is in use by open rows (the caller then runs the query uncached).
func (c *cachingConn) statement(ctx context.Context, query string) (*cachedStmt, error) {
	if len(query) > maxCachedQuery {
		return nil, nil
	}
	if e, ok := c.stmts[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		return cs, nil
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ps, ok := st.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		_ = st.Close()
		return nil, nil
	}
	cs := &cachedStmt{query: query, stmt: ps}
	c.stmts[query] = c.lru.PushFront(cs)
	c.evict()
	return cs, nil
}

// evict finalizes the least recently used idle statements past the cache's size.
func (c *cachingConn) evict() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > stmtCacheSize; {
		prev := e.Prev()
		if cs := e.Value.(*cachedStmt); !cs.busy {
			c.lru.Remove(e)
			delete(c.stmts, cs.query)
			_ = cs.stmt.Close()
		}
		e = prev
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return cs.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	r, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	rc, ok := r.(cachedRowsInner)
	if !ok {
		// Not the SQLite driver's rows: run the query uncached rather than hide methods.
		_ = r.Close()
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	cs.busy = true
	return &cachedRows{cachedRowsInner: rc, cs: cs}, nil
}

// Close finalizes the compiled statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cachedStmt).stmt.Close())
	}
	c.lru.Init()
	clear(c.stmts)
	return errors.Join(append(errs, c.sqliteConn.Close())...)
}

// cachedRowsInner is what the SQLite driver's rows implement beyond driver.Rows: the column
// type methods database/sql's ColumnTypes reads.
type cachedRowsInner interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// cachedRows are rows read through a cached statement; closing them frees the statement.
type cachedRows struct {
	cachedRowsInner
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.cachedRowsInner.Close()
	r.cs.busy = false
	return err
}
