package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"tutela"
)

// One round trip to begin (issue 20). Every PostgreSQL transaction starts by scoping row-level
// security to its tenant (and, for a caller with a deadline, the server's statement_timeout):
// with database/sql's BeginTx that is BEGIN, then a SELECT set_config(…), two round trips before
// the first statement — a quarter of a refresh's four. The store's connections instead send
// both in one simple-protocol query ("BEGIN; SELECT set_config(…)"), which opens a transaction
// block that stays open after it. The values are inlined, so only values that cannot carry SQL
// take this path: "*" or a tenant ID in UUID form, and a whole number of milliseconds. Anything
// else (and a transaction with a non-default isolation level) begins as before and run sets the
// scope with a parameterized statement.

// beginScope is what run asks BeginTx to set in the begin's round trip; applied says it did.
type beginScope struct {
	tenant    string
	timeoutMS int64 // 0: leave the role's statement_timeout
	applied   bool
}

type beginScopeKey struct{}

// inlinable reports whether s's values may be written into the begin query as they are (the
// timeout is a whole number of milliseconds).
func (s *beginScope) inlinable() bool { return s.tenant == "*" || tutela.ValidID(s.tenant) }

// query is the set_config statement that follows BEGIN, its values inlined.
func (s *beginScope) query() string {
	q := "SELECT set_config('tutela.tenant', '" + s.tenant + "', true)"
	if s.timeoutMS > 0 {
		q += ", set_config('statement_timeout', '" + strconv.FormatInt(s.timeoutMS, 10) + "', true)"
	}
	return q
}

// statement is the same set_config with its values as parameters: what run executes when the
// begin could not carry them.
func (s *beginScope) statement() (string, []any) {
	if s.timeoutMS > 0 {
		return `SELECT set_config('tutela.tenant', $1, true), set_config('statement_timeout', $2, true)`,
			[]any{s.tenant, strconv.FormatInt(s.timeoutMS, 10)}
	}
	return `SELECT set_config('tutela.tenant', $1, true)`, []any{s.tenant}
}

// pgConnector makes the store's PostgreSQL connections: pgx's, with BeginTx as above.
type pgConnector struct{ driver.Connector }

func newPGConnector(dsn string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgConnector{stdlib.GetConnector(*cfg)}, nil
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if sc, ok := conn.(*stdlib.Conn); ok {
		return &pgConn{sc}, nil
	}
	return conn, nil
}

// pgConn is pgx's database/sql connection (every other method its own) with a BeginTx that
// scopes the transaction in the same round trip when run asked it to.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	s, _ := ctx.Value(beginScopeKey{}).(*beginScope)
	if s == nil || !s.inlinable() || sql.IsolationLevel(opts.Isolation) != sql.LevelDefault {
		return c.Conn.BeginTx(ctx, opts)
	}
	pc := c.Conn.Conn()
	if pc.IsClosed() {
		return nil, driver.ErrBadConn
	}
	begin := "BEGIN"
	if opts.ReadOnly {
		begin = "BEGIN READ ONLY"
	}
	tx, err := pc.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin + "; " + s.query()})
	if err != nil {
		// BEGIN may have opened the block before set_config failed: a connection left inside
		// a transaction must never go back to the pool (the next BeginTx finds it closed and
		// database/sql drops it).
		if pc.PgConn().TxStatus() != 'I' {
			_ = pc.Close(ctx)
		}
		return nil, err
	}
	s.applied = true
	return pgTx{ctx: ctx, tx: tx}, nil
}

// pgTx is a transaction pgConn began (stdlib's own wrapper is unexported).
type pgTx struct {
	ctx context.Context
	tx  pgx.Tx
}

func (t pgTx) Commit() error   { return t.tx.Commit(t.ctx) }
func (t pgTx) Rollback() error { return t.tx.Rollback(t.ctx) }
