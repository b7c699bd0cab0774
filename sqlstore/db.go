// Package sqlstore is Tutela's one database/sql store, with two dialects: SQLite (embedded,
// the zero-setup default) and PostgreSQL (production, shared by many stateless nodes). Queries
// use $N placeholders, which both drivers accept.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/vault"
)

// Dialect names the SQL dialect behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed migrations
var migrationsFS embed.FS

// Options tune a DB. The zero value is usable.
type Options struct {
	MaxOpenConns int // PostgreSQL pool size (default 20)
	// MaxIdleConns is how many of them stay open while unused (default: MaxOpenConns). Fewer
	// makes a burst close every connection returned past the limit, and the next burst pays a
	// new connection (TCP, authentication) and prepares every statement again
	// (BenchmarkRefreshParallel in identity compares).
	MaxIdleConns    int
	ConnMaxLifetime time.Duration // default 30 min
	Clock           tutela.Clock  // default tutela.SystemClock
	// ConnectTimeout bounds opening a PostgreSQL connection when database.url sets no
	// connect_timeout (default 5 s), so a black-holed database fails fast at start-up and in
	// background work too, not only under an API request's deadline.
	ConnectTimeout time.Duration
	// UsersPerTenant lowers the users-per-tenant cap, so a test can reach it without creating
	// MaxUsersPerTenant users. 0 or more than MaxUsersPerTenant means MaxUsersPerTenant: it can
	// never raise the cap.
	UsersPerTenant int
	// Region binds the store to one data region (config residency.region): tenants of any other
	// region are refused (wrong_region) and background work skips them (residency.go). Empty
	// serves every region.
	Region string
	// Tracer records a span per transaction (nil: none; tracing.go, docs/tracing.md).
	Tracer trace.TracerProvider
	// SQLiteSynchronous is the SQLite store's durability at commit (config
	// database.sqlite_synchronous): SyncFull (the default) or SyncNormal. PostgreSQL ignores it.
	SQLiteSynchronous string
}

// SQLite durability at commit (PRAGMA synchronous in WAL mode). With SyncFull every commit
// fsyncs the write-ahead log before it returns: a committed transaction, its audit events
// included, survives a power loss or an operating-system crash. With SyncNormal the log is
// fsynced only at checkpoints: a crash of the process loses nothing, but a power loss can lose
// the last transactions the callers were told had committed (the database stays consistent).
// docs/durability.md compares the two.
const (
	SyncFull   = "full"
	SyncNormal = "normal"
)

// sqlitePragma returns the PRAGMA synchronous value for a setting; "" is the default, SyncFull.
func sqlitePragma(setting string) (string, error) {
	switch setting {
	case "", SyncFull:
		return "FULL", nil
	case SyncNormal:
		return "NORMAL", nil
	}
	return "", fmt.Errorf("open sqlite: synchronous %q is not %q or %q", setting, SyncFull, SyncNormal)
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	dialect Dialect
	// write runs every transaction that may write. For SQLite it holds one connection and
	// begins IMMEDIATE transactions, so writers queue on the pool instead of failing with
	// SQLITE_BUSY half-way; for PostgreSQL it is the same pool as read.
	write *sql.DB
	// read serves read-only transactions; SQLite in WAL mode lets readers run beside the writer.
	read *sql.DB
	now  tutela.Clock
	// maxUsers is the users-per-tenant cap (Options.UsersPerTenant).
	maxUsers int
	// keys reads keysets for the vault (KeysetStore), apart from request transactions.
	keys *sql.DB
	// vault seals users' personal data (SetVault, people.go).
	vault *vault.Vault
	// region is the only data region this store serves; "" serves every one (Options.Region).
	region string
	// clientSessionEnded is told of every relying-party session a revocation ends
	// (OnClientSessionEnded, oidc_logout.go).
	clientSessionEnded ClientSessionHook
	// tracer spans transactions; nil when tracing is off (SetTracer).
	tracer trace.Tracer
	// commit is the group-commit writer of records (groupcommit.go).
	commit groupCommit
	// epochs watches the authentication-state epochs (authepoch.go); policies caches users'
	// and service accounts' policies under them (authcache.go).
	epochs   *AuthEpochs
	policies *AuthCache[userKey, *cachedPolicy]
}

// Open opens the store named by dsn: a postgres:// or postgresql:// URL selects PostgreSQL;
// anything else is a SQLite file path.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	// The watcher measures the age of its polls on the monotonic clock, unless a test gives one.
	watchClock := time.Now
	if opt.Clock == nil {
		opt.Clock = tutela.SystemClock
	} else {
		watchClock = opt.Clock
	}
	if opt.MaxOpenConns <= 0 {
		opt.MaxOpenConns = 20
	}
	if opt.MaxIdleConns <= 0 {
		opt.MaxIdleConns = opt.MaxOpenConns
	}
	if opt.ConnMaxLifetime <= 0 {
		opt.ConnMaxLifetime = 30 * time.Minute
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 5 * time.Second
	}
	if opt.UsersPerTenant <= 0 || opt.UsersPerTenant > MaxUsersPerTenant {
		opt.UsersPerTenant = MaxUsersPerTenant
	}
	if opt.Region != "" && !tutela.ValidRegionCode(opt.Region) {
		return nil, fmt.Errorf("open store: region %q is not a data region code such as \"eu\" or \"eu-west\"", opt.Region)
	}
	var (
		db  *DB
		err error
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err = openPostgres(ctx, dsn, opt)
	} else {
		db, err = openSQLite(ctx, dsn, opt)
	}
	if err != nil {
		return nil, err
	}
	db.region = opt.Region
	db.SetTracer(opt.Tracer)
	db.epochs = newAuthEpochs(db, watchClock)
	db.policies = NewAuthCache[userKey, *cachedPolicy](db.epochs, 0)
	return db, nil
}

func openPostgres(ctx context.Context, dsn string, opt Options) (*DB, error) {
	connector, err := newPGConnector(withConnectTimeout(dsn, opt.ConnectTimeout))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %s", redactDSNError(err, dsn))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(opt.MaxOpenConns)
	db.SetMaxIdleConns(opt.MaxIdleConns)
	db.SetConnMaxLifetime(opt.ConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to postgres: %s", redactDSNError(err, dsn))
	}
	keys := sql.OpenDB(connector)
	keys.SetMaxOpenConns(keyPoolConns)
	keys.SetConnMaxLifetime(opt.ConnMaxLifetime)
	return &DB{dialect: Postgres, write: db, read: db, keys: keys, now: opt.Clock, maxUsers: opt.UsersPerTenant}, nil
}

// withConnectTimeout adds connect_timeout (whole seconds, at least 1) to a PostgreSQL URL that
// sets none; a URL that does keeps its own.
func withConnectTimeout(dsn string, d time.Duration) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // sql.Open reports it, redacted
	}
	q := u.Query()
	if q.Get("connect_timeout") != "" {
		return dsn
	}
	q.Set("connect_timeout", strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

// redactDSNError keeps a driver error but removes the DSN's password should the driver echo it.
func redactDSNError(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "[redacted]")
		}
	}
	return msg
}

func openSQLite(ctx context.Context, path string, opt Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	synchronous, err := sqlitePragma(opt.SQLiteSynchronous)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
	}
	base := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(" + synchronous + ")&_time_format=sqlite" +
		// Deleted and overwritten content is zeroed, not left in free pages: personal data
		// (issue 13) must not linger in the file after an erasure or a rewrite.
		"&_pragma=secure_delete(1)"
	write, err := openSQLitePool(base + "&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxLifetime(0)
	// The first connection creates the file and switches it to WAL before readers open it.
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	read, err := openSQLitePool(base + "&_pragma=query_only(1)")
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// Readers keep their connections, and with them their compiled statements (database/sql
	// would keep only 2 idle and close the rest after every burst of reads).
	readConns := max(4, opt.MaxOpenConns/4)
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	keys, err := openSQLitePool(base + "&_pragma=query_only(1)")
	if err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	keys.SetMaxOpenConns(keyPoolConns)
	return &DB{dialect: SQLite, write: write, read: read, keys: keys, now: opt.Clock, maxUsers: opt.UsersPerTenant}, nil
}

// openSQLitePool opens a pool of SQLite connections that keep their statements compiled
// (stmtcache.go).
func openSQLitePool(dsn string) (*sql.DB, error) {
	c, err := newCachingConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// Dialect reports which SQL dialect the store speaks.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL returns the pool that runs writes, for health checks and metrics. Code outside sqlstore
// must not query it directly: use Update and View so tenant scoping stays in one place.
func (db *DB) SQL() *sql.DB { return db.write }

// Now returns the store's clock reading, UTC, truncated to the microsecond both dialects keep.
func (db *DB) Now() time.Time { return db.now().UTC().Truncate(time.Microsecond) }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return err
	}
	return db.read.PingContext(ctx)
}

// Close commits the records still queued for the group-commit writer, then closes the pools.
func (db *DB) Close() error {
	db.closeCommits()
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return errors.Join(err, db.keys.Close())
}

// keyPoolConns is the size of the pool that reads keysets for the vault. The vault loads a
// keyset on a cache miss from inside request transactions (sealing and opening personal data),
// each already holding a connection of the main pools: on those pools, a burst of requests
// holding every connection while each waits for one more would stall until the request timeout
// (503). A pool of its own keeps keyset reads independent of request load.
const keyPoolConns = 2

func (db *DB) provider() (*goose.Provider, error) {
	var (
		d    goose.Dialect
		opts []goose.ProviderOption
	)
	switch db.dialect {
	case Postgres:
		d = goose.DialectPostgres
		// Many nodes may start at once: an advisory lock lets one migrate while the rest wait.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		d = goose.DialectSQLite3
	}
	fsys, err := fs.Sub(migrationsFS, migrationsDir(db.dialect))
	if err != nil {
		return nil, err
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true))
	return goose.NewProvider(d, db.write, fsys, opts...)
}

// Migrate applies every pending migration; a new SQLite database starts from the baseline
// (applyBaseline).
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.applyBaseline(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := db.provider()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// MigrationState is one migration's version, source name and when it was applied (zero if not).
type MigrationState struct {
	Version   int64
	Name      string
	AppliedAt time.Time
}

// MigrationStatus lists every known migration and whether it has been applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	p, err := db.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]MigrationState, 0, len(st))
	for _, s := range st {
		m := MigrationState{Version: s.Source.Version, Name: filepath.Base(s.Source.Path)}
		if s.State == goose.StateApplied {
			m.AppliedAt = s.AppliedAt.UTC()
		}
		out = append(out, m)
	}
	return out, nil
}

// MigrationsCurrent reports whether no migration is pending; /readyz uses it.
func (db *DB) MigrationsCurrent(ctx context.Context) (bool, error) {
	p, err := db.provider()
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	return !pending, err
}

// BypassesRLS reports whether the PostgreSQL role the store connects as skips row-level
// security (a superuser, or a role with BYPASSRLS, such as the tables' owner connecting with
// FORCE off): then the second wall between tenants (migration 00004) is not there. SQLite has
// no roles and reports false.
func (db *DB) BypassesRLS(ctx context.Context) (bool, error) {
	if db.dialect != Postgres {
		return false, nil
	}
	var super, bypass bool
	err := db.read.QueryRowContext(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass)
	return super || bypass, err
}

// Update runs fn in a read-write transaction. The transaction commits when fn returns nil and
// rolls back fully otherwise (including on panic).
//
// A transaction that needs a keyset the vault has not made yet (the first user of a tenant)
// fails with vault.MissingKeysetError (or needKeysetError); the keyset is then created outside it
// and fn runs again.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	for range len(vault.Purposes) {
		err := db.run(ctx, db.write, nil, fn)
		nk := missingKeyset(err)
		if nk == nil || db.vault == nil {
			return err
		}
		if err := db.createKeyset(ctx, nk); err != nil {
			return err
		}
	}
	return db.run(ctx, db.write, nil, fn)
}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: db.dialect == Postgres}
	return db.run(ctx, db.read, opts, fn)
}

// missingKeyset reports the keyset a transaction ended for want of: one the vault would not
// create inside it (vault.WithoutCreate), or one the store refused to create there.
func missingKeyset(err error) *needKeysetError {
	var mk *vault.MissingKeysetError
	if errors.As(err, &mk) {
		return &needKeysetError{tenantID: mk.TenantID, purpose: mk.Purpose}
	}
	var nk *needKeysetError
	if errors.As(err, &nk) {
		return nk
	}
	return nil
}

// viewKeys is View on the keyset pool (keyPoolConns).
func (db *DB) viewKeys(ctx context.Context, fn func(*Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: db.dialect == Postgres}
	return db.run(ctx, db.keys, opts, fn)
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(*Tx) error) (err error) {
	readOnly := pool != db.write || (opts != nil && opts.ReadOnly)
	if !readOnly {
		db.commit.writeTxs.Add(1)
	}
	if db.tracer != nil && ctx.Value(untracedKey{}) == nil {
		var span trace.Span
		ctx, span = db.startTxSpan(ctx, readOnly)
		defer func() { endTxSpan(span, err) }()
	}
	// Taken before the transaction's snapshot exists: what it reads is no older than this.
	ticket := db.epochs.Ticket()
	// Row-level security (migration 00004) shows a tenant-scoped caller only their tenant's
	// rows, whatever a query forgets; platform work sees all. When the caller has a deadline
	// (an API request's database bound), statement_timeout tells the server too, so it stops
	// working for a client that has stopped waiting; work without one (migrations, CLI,
	// background jobs) keeps the role's setting. Set in the begin's own round trip when the
	// connection can (pgbegin.go), else by the statement below.
	var scope *beginScope
	beginCtx := ctx
	if db.dialect == Postgres {
		scope = &beginScope{tenant: rlsTenant(ctx)}
		if dl, ok := ctx.Deadline(); ok {
			// At least 1 ms (0 would mean none), at most what the setting takes (an int of ms:
			// a deadline weeks away would fail the begin).
			scope.timeoutMS = min(max(time.Until(dl).Milliseconds(), 1), math.MaxInt32)
		}
		beginCtx = context.WithValue(ctx, beginScopeKey{}, scope)
	}
	tx, err := pool.BeginTx(beginCtx, opts)
	if err != nil {
		return mapErr(err)
	}
	if scope != nil && !scope.applied {
		q, args := scope.statement()
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			_ = tx.Rollback()
			return mapErr(err)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	t := &Tx{tx: tx, db: db, now: db.Now(), keys: map[string]*privacy.PersonKey{}, newTenants: map[string]bool{}, ticket: ticket}
	if err = fn(t); err != nil {
		return unavailable(err)
	}
	if err = mapErr(tx.Commit()); err != nil {
		return err
	}
	if t.authWrite {
		// Every node sees the change at its next poll (the triggers bumped the epochs); this one
		// sees it before the call that made it returns.
		db.epochs.changedHere()
	}
	for _, f := range t.afterCommit {
		f()
	}
	return nil
}

// rlsTenant is the tenant a transaction may see: the caller's tenant for a tenant-scoped
// principal, "*" for the platform super-admin and for work done without a principal (sign-in,
// CLI, background jobs), which the store scopes explicitly.
func rlsTenant(ctx context.Context) string {
	if m := tutela.RequestMetaFrom(ctx); m != nil && m.Principal != nil && !m.Principal.HasRole(authz.RoleSuperAdmin) {
		return m.Principal.TenantID
	}
	return "*"
}

// Tx is a transaction. Repositories hang off it so a change and its audit record share it.
type Tx struct {
	tx  *sql.Tx
	db  *DB
	now time.Time
	// keys caches the person keys opened in this transaction, by "tenant/person".
	keys map[string]*privacy.PersonKey
	// newTenants are the tenants this transaction created (their keysets are made in it).
	newTenants map[string]bool
	// partner is the partner organisation the transaction acts for (ActForPartner): subjects
	// are seen only through its active shares. "" for everyone else.
	partner string
	// ticket was taken before the transaction began (CacheTicket); authWrite is set once a
	// statement may have changed authentication state (writesAuthState).
	ticket    AuthTicket
	authWrite bool
	// afterCommit runs once the transaction has committed (AfterCommit).
	afterCommit []func()
}

// AfterCommit runs f after the transaction commits, and never if it rolls back.
func (tx *Tx) AfterCommit(f func()) { tx.afterCommit = append(tx.afterCommit, f) }

// noteWrite marks the transaction when q may change authentication state.
func (tx *Tx) noteWrite(q string) {
	if !tx.authWrite && writesAuthState(q) {
		tx.authWrite = true
	}
}

// Now is the transaction's timestamp: one clock reading for everything the transaction writes.
func (tx *Tx) Now() time.Time { return tx.now }

// Dialect reports the store's dialect.
func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	tx.noteWrite(q)
	r, err := tx.tx.ExecContext(ctx, q, args...)
	return r, mapErr(err)
}

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	tx.noteWrite(q)
	return tx.tx.QueryRowContext(ctx, q, args...)
}

// queryStrings runs q, whose rows are one text column each (usually IDs), and returns them
// all, closing the rows before it returns: callers then run statements of their own for each.
func (tx *Tx) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	tx.noteWrite(q)
	rows, err := tx.tx.QueryContext(ctx, q, args...)
	return rows, mapErr(err)
}

// mapErr turns driver errors callers must act on into tutela errors: a uniqueness violation is
// a conflict, no rows is not found, an outage is unavailable. Anything else stays as it is (an
// internal error upstream).
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if outage(err) {
		return unavailable(err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return tutela.Errorf(tutela.ENOTFOUND, "not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return &tutela.Error{Code: tutela.ECONFLICT, Message: "already exists", Err: err}
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &tutela.Error{Code: tutela.ECONFLICT, Message: "already exists", Err: err}
		}
	}
	return err
}

// outage reports whether err says the database could not be reached or did not answer in time,
// rather than that the request or the code is wrong: the client should retry (503 with
// Retry-After), and the operator should look at the database, not for a bug. It is the one place
// driver errors are sorted this way; run and mapErr apply it.
func outage(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err) {
		return true
	}
	var (
		netErr  net.Error
		connErr *pgconn.ConnectError
		pgErr   *pgconn.PgError
		sqErr   *sqlite.Error
	)
	switch {
	case errors.As(err, &netErr), errors.As(err, &connErr):
		return true // refused, reset, timed out, or the connection could not be set up
	case errors.As(err, &pgErr):
		// SQLSTATE classes 08 (connection exception) and 53 (insufficient resources: too many
		// connections, disk full), 57P0x (shutting down, cannot connect now), and 57014 (the
		// statement_timeout run sets).
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") || strings.HasPrefix(c, "57P") || c == "57014"
	case errors.As(err, &sqErr):
		// Another process holds the SQLite file longer than busy_timeout.
		switch sqErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// unavailable returns err as a tutela EUNAVAILABLE error when it is an outage that no *tutela.Error
// has given a code yet; anything else is returned as it is. The cause stays in Err for the log.
func unavailable(err error) error {
	if err == nil || !outage(err) {
		return err
	}
	var te *tutela.Error
	if errors.As(err, &te) && te.Code != tutela.EINTERNAL {
		return err
	}
	return &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "the database is unavailable; try again shortly", Err: err}
}

// Advisory lock keys; each names one critical section that must not run twice at once across
// nodes.
const (
	LockBootstrap int64 = 0x7475_7465_6c61_0001 // "tutela" + 1
	// LockJobCap serialises enqueues of capped job kinds (Job.MaxPending).
	LockJobCap int64 = 0x7475_7465_6c61_0012 // "tutela" + migration 00012
)

// Lock takes a transaction-scoped exclusive lock on key: a PostgreSQL advisory lock released at
// commit or rollback. SQLite needs none, since its write transactions already run one at a time.
func (tx *Tx) Lock(ctx context.Context, key int64) error {
	if tx.db.dialect != Postgres {
		return nil
	}
	_, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// newestFirst runs q (a SELECT whose arguments are args) for one page of at most limit rows,
// newest first by UUIDv7 ID, scanning each with scan, and returns the cursor of the next page
// ("" on the last): it asks for one row more than the page to know whether one follows.
func newestFirst[T any](ctx context.Context, tx *Tx, q string, args []any, limit int,
	scan func(interface{ Scan(...any) error }) (*T, error), id func(*T) string) (out []T, next string, err error) {
	args = append(args, limit+1)
	rows, err := tx.query(ctx, q+` ORDER BY id DESC LIMIT $`+itoa(len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out = []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, *v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) > limit {
		out = out[:limit]
		next = id(&out[limit-1])
	}
	return out, next, nil
}
