package sqlstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"tutela"
)

// gooseTable is goose's version table. It is not dumped: a restore target is migrated by this
// binary to the backup's version, which writes its own rows.
const gooseTable = "goose_db_version"

// SnapshotPart is one file of a snapshot, written to a temporary file (mode 0600) that the
// caller packages and then removes with Snapshot.Remove.
type SnapshotPart struct {
	Name   string `json:"name"` // path inside the archive, e.g. "db/tutela.db", "tables/users.jsonl"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	Path   string `json:"-"`
}

// TableDump describes one PostgreSQL table of a logical dump: its columns with their types, so
// a restore can refuse a target whose schema differs, and its row count.
type TableDump struct {
	Name    string       `json:"name"`
	Part    string       `json:"part"`
	Columns []ColumnType `json:"columns"`
	Rows    int64        `json:"rows"`
}

// ColumnType is a column name and its PostgreSQL type (format_type).
type ColumnType struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Snapshot is a consistent copy of the database: SQLite as one database file made by VACUUM
// INTO, PostgreSQL as one JSON-lines part per table read in a single REPEATABLE READ
// transaction.
type Snapshot struct {
	Dialect          Dialect
	MigrationVersion int64
	Parts            []SnapshotPart
	Tables           []TableDump // PostgreSQL only, in foreign-key (insert) order
	dir              string
}

// Remove deletes the snapshot's temporary files.
func (s *Snapshot) Remove() error {
	if s == nil || s.dir == "" {
		return nil
	}
	return os.RemoveAll(s.dir)
}

// SQLiteSnapshotPart is the part name of a SQLite snapshot's database file.
const SQLiteSnapshotPart = "db/tutela.db"

// Snapshot writes a consistent copy of every Tutela table into a new private directory under
// tmpDir (use the data directory: the copy holds everything the database holds, so it must
// never land in a shared /tmp). Key material outside the database is not included.
func (db *DB) Snapshot(ctx context.Context, tmpDir string) (_ *Snapshot, err error) {
	dir, err := os.MkdirTemp(tmpDir, ".backup-*")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := &Snapshot{Dialect: db.dialect, dir: dir}
	defer func() {
		if err != nil {
			_ = s.Remove()
		}
	}()
	if db.dialect == Postgres {
		err = db.dumpPostgres(ctx, s)
	} else {
		err = db.vacuumInto(ctx, s)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

func (db *DB) vacuumInto(ctx context.Context, s *Snapshot) error {
	path := filepath.Join(s.dir, "tutela.db")
	// VACUUM INTO needs a new or empty file; creating it first fixes the mode at 0600.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a file inside the snapshot directory this process created
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// VACUUM INTO reads the source in one read transaction, so the copy is consistent even
	// while a server writes (WAL mode lets the reader run beside the writer).
	if _, err := db.write.ExecContext(ctx, `VACUUM INTO $1`, path); err != nil {
		return fmt.Errorf("vacuum into: %w", err)
	}
	v, err := sqliteFileVersion(ctx, path)
	if err != nil {
		return err
	}
	s.MigrationVersion = v
	p, err := hashFile(path)
	if err != nil {
		return err
	}
	p.Name = SQLiteSnapshotPart
	s.Parts = append(s.Parts, p)
	return nil
}

// sqliteFileVersion opens a SQLite file read-only and returns its highest applied migration.
func sqliteFileVersion(ctx context.Context, path string) (int64, error) {
	f, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var v sql.NullInt64
	if err := f.QueryRowContext(ctx, `SELECT MAX(version_id) FROM `+gooseTable+` WHERE is_applied`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read migration version: %w", err)
	}
	return v.Int64, nil
}

func hashFile(path string) (SnapshotPart, error) {
	f, err := os.Open(path) // #nosec G304 -- a file inside the snapshot directory this process created
	if err != nil {
		return SnapshotPart{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return SnapshotPart{}, err
	}
	return SnapshotPart{Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// pgTables lists the public tables in an order in which inserting them satisfies every foreign
// key (parents first); self-references are ignored. goose's table is left out.
func pgTables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $1 ORDER BY c.relname`, gooseTable)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT c.relname, p.relname FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE k.contype = 'f' AND n.nspname = 'public' AND c.oid <> p.oid`)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		deps[child] = append(deps[child], parent)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Depth-first topological sort; names are sorted, so the order is deterministic.
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign-key cycle through table %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		ps := deps[n]
		slices.Sort(ps)
		for _, p := range ps {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[n] = 2
		if slices.Contains(names, n) {
			out = append(out, n)
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pgColumns lists a table's stored (non-generated) columns with their types.
func pgColumns(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table string) ([]ColumnType, error) {
	rows, err := q.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
		WHERE a.attrelid = ('public.' || quote_ident($1))::regclass AND a.attnum > 0 AND NOT a.attisdropped
		AND a.attgenerated = '' ORDER BY a.attnum`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []ColumnType
	for rows.Next() {
		var c ColumnType
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func columnList(cols []ColumnType) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c.Name)
	}
	return strings.Join(q, ", ")
}

func (db *DB) dumpPostgres(ctx context.Context, s *Snapshot) error {
	// One REPEATABLE READ transaction: every table is read from the same snapshot, so foreign
	// keys and the audit log's tables agree with each other.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Row-level security: the dump is platform work and must see every tenant's rows.
	if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
		return err
	}
	var v sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version_id) FROM `+gooseTable+` WHERE is_applied`).Scan(&v); err != nil {
		return fmt.Errorf("read migration version: %w", err)
	}
	s.MigrationVersion = v.Int64
	tables, err := pgTables(ctx, tx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		cols, err := pgColumns(ctx, tx, t)
		if err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
		td := TableDump{Name: t, Part: "tables/" + t + ".jsonl", Columns: cols}
		p, err := dumpTable(ctx, tx, s.dir, &td)
		if err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
		s.Parts = append(s.Parts, p)
		s.Tables = append(s.Tables, td)
	}
	return tx.Commit()
}

// dumpTable writes one JSON object per row (row_to_json: bytea as "\x…" hex, timestamps with
// their offset and full precision), which json_populate_recordset reads back losslessly.
func dumpTable(ctx context.Context, tx *sql.Tx, dir string, td *TableDump) (SnapshotPart, error) {
	path := filepath.Join(dir, td.Name+".jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a file inside the snapshot directory this process created
	if err != nil {
		return SnapshotPart{}, err
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<16)
	rows, err := tx.QueryContext(ctx, `SELECT row_to_json(t)::text FROM public.`+quoteIdent(td.Name)+` t`) // #nosec G202 -- the table name comes from the schema's own table list, quoted by quoteIdent
	if err != nil {
		return SnapshotPart{}, err
	}
	defer rows.Close()
	var size int64
	for rows.Next() {
		var line []byte
		if err := rows.Scan(&line); err != nil {
			return SnapshotPart{}, err
		}
		// A failed write (disk full) stops the dump here rather than reading every other row.
		if _, err := w.Write(line); err != nil {
			return SnapshotPart{}, err
		}
		if err := w.WriteByte('\n'); err != nil {
			return SnapshotPart{}, err
		}
		size += int64(len(line)) + 1
		td.Rows++
	}
	if err := rows.Err(); err != nil {
		return SnapshotPart{}, err
	}
	if err := w.Flush(); err != nil {
		return SnapshotPart{}, err
	}
	if err := f.Sync(); err != nil {
		return SnapshotPart{}, err
	}
	return SnapshotPart{Name: td.Part, Path: path, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// MigrationVersion returns the highest applied migration (0 for an empty database).
func (db *DB) MigrationVersion(ctx context.Context) (int64, error) {
	var exists bool
	q := `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)`
	if db.dialect == Postgres {
		q = `SELECT to_regclass('public.' || $1) IS NOT NULL`
	}
	if err := db.write.QueryRowContext(ctx, q, gooseTable).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v sql.NullInt64
	err := db.write.QueryRowContext(ctx, `SELECT MAX(version_id) FROM `+gooseTable+` WHERE is_applied`).Scan(&v)
	return v.Int64, err
}

// LatestMigration returns the highest migration version this binary carries for the dialect.
func LatestMigration(d Dialect) (int64, error) {
	ents, err := migrationsFS.ReadDir(migrationsDir(d))
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// MigrateTo applies pending migrations up to and including version.
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := db.provider()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// ErrNotEmpty means a restore target already holds Tutela data.
var ErrNotEmpty = errors.New("the target database is not empty")

// pgSeedCheck asks whether roles holds more than the built-in roles migrations insert, so a
// freshly migrated database still counts as empty.
const pgSeedCheck = `SELECT EXISTS (SELECT 1 FROM roles WHERE NOT builtin)`

// InUse reports whether the database holds any data beyond what migrations create, naming the
// first table that does.
func (db *DB) InUse(ctx context.Context) (bool, string, error) {
	var tables []string
	var err error
	if db.dialect == Postgres {
		tables, err = pgTables(ctx, db.read)
	} else {
		tables, err = sqliteTables(ctx, db.read)
	}
	if err != nil {
		return false, "", err
	}
	return tablesInUse(ctx, db.read, tables)
}

func tablesInUse(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, tables []string) (bool, string, error) {
	for _, t := range tables {
		query := `SELECT EXISTS (SELECT 1 FROM ` + quoteIdent(t) + `)`
		if t == "roles" {
			query = pgSeedCheck
		}
		var has bool
		if err := q.QueryRowContext(ctx, query).Scan(&has); err != nil {
			return false, "", fmt.Errorf("table %s: %w", t, err)
		}
		if has {
			return true, t, nil
		}
	}
	return false, "", nil
}

func sqliteTables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name <> $1 ORDER BY name`, gooseTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// rebuiltOnRestore are the tables a restore does not load: the load's own writes fill them.
// auth_epochs counts changes to authentication state per tenant (docs/caching.md); its
// triggers bump it as the restored tenants, users and sessions are inserted, and loading the
// dumped counters on top would collide with those rows.
var rebuiltOnRestore = map[string]bool{"auth_epochs": true}

// RebuiltOnRestore reports whether a restore leaves table to its own writes instead of loading
// it (rebuiltOnRestore).
func RebuiltOnRestore(table string) bool { return rebuiltOnRestore[table] }

// RestorePostgres loads a logical dump into db, which must be at the dump's migration version.
// Everything happens in one transaction: on any error the target is left as it was. Without
// force the target must be empty (only migration seed rows); with force its rows are deleted
// first, which the audit tables' triggers allow only with session_replication_role = replica
// (superuser). open returns a table part's verified contents. finish, when set, runs in the same
// transaction after the load (re-applying the erasure ledger): its error restores nothing.
func (db *DB) RestorePostgres(ctx context.Context, tables []TableDump, open func(part string) (io.ReadCloser, error), force bool,
	finish func(*Tx) error) error {
	if db.dialect != Postgres {
		return errors.New("restore: not a PostgreSQL store")
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
		return err
	}
	// No other writer may add rows while the target is checked and loaded.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, LockBootstrap); err != nil {
		return err
	}
	order, err := pgTables(ctx, tx)
	if err != nil {
		return err
	}
	if err := matchSchema(ctx, tx, order, tables); err != nil {
		return err
	}
	inUse, which, err := tablesInUse(ctx, tx, order)
	if err != nil {
		return err
	}
	if inUse {
		if !force {
			return fmt.Errorf("%w (table %s has rows); restore into a new database or pass --force", ErrNotEmpty, which)
		}
		// Append-only triggers guard the audit tables against exactly this; a forced restore
		// replaces the whole database, so it must run as a superuser who can suspend them.
		if _, err := tx.ExecContext(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return fmt.Errorf("restore --force into a non-empty PostgreSQL database must run as a superuser "+
				"(the audit tables' triggers forbid deleting rows); restore into a new database instead: %w", err)
		}
	}
	// Children first: only migration seed rows (or, with force, everything) are removed.
	for i := len(order) - 1; i >= 0; i-- {
		if _, err := tx.ExecContext(ctx, `DELETE FROM public.`+quoteIdent(order[i])); err != nil { // #nosec G202 -- the table name comes from the schema's own table list, quoted by quoteIdent
			return fmt.Errorf("clear %s: %w", order[i], err)
		}
	}
	byName := map[string]TableDump{}
	for _, t := range tables {
		byName[t.Name] = t
	}
	for _, name := range order {
		if rebuiltOnRestore[name] {
			continue
		}
		td := byName[name]
		if err := loadTable(ctx, tx, td, open); err != nil {
			return fmt.Errorf("restore table %s: %w", name, err)
		}
	}
	// Serial columns continue after the restored values.
	for _, td := range tables {
		for _, c := range td.Columns {
			var seq sql.NullString
			if err := tx.QueryRowContext(ctx, `SELECT pg_get_serial_sequence('public.' || quote_ident($1), $2)`, td.Name, c.Name).Scan(&seq); err != nil {
				return err
			}
			if !seq.Valid {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SELECT setval($1, COALESCE((SELECT MAX(`+quoteIdent(c.Name)+`) FROM public.`+ // #nosec G202 -- column and table names come from the schema's own catalog, quoted by quoteIdent
				quoteIdent(td.Name)+`), 1), (SELECT COUNT(*) > 0 FROM public.`+quoteIdent(td.Name)+`))`, seq.String); err != nil {
				return fmt.Errorf("sequence %s: %w", seq.String, err)
			}
		}
	}
	// The whole database changed: every node's cached authentication state goes (a forced
	// restore runs with triggers suspended, so nothing above bumped the epochs).
	if _, err := tx.ExecContext(ctx, `SELECT auth_epoch_bump('*')`); err != nil {
		return fmt.Errorf("restore: invalidate cached authentication state: %w", err)
	}
	if finish != nil {
		if err := finish(&Tx{tx: tx, db: db, now: db.Now()}); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// matchSchema refuses a dump whose tables or columns differ from the target's: loading into a
// different schema would silently drop or misplace data.
func matchSchema(ctx context.Context, tx *sql.Tx, order []string, tables []TableDump) error {
	if len(order) != len(tables) {
		return fmt.Errorf("restore: the backup has %d tables, the target %d: migration versions differ", len(tables), len(order))
	}
	for _, td := range tables {
		if !slices.Contains(order, td.Name) {
			return fmt.Errorf("restore: table %s of the backup does not exist in the target", td.Name)
		}
		cols, err := pgColumns(ctx, tx, td.Name)
		if err != nil {
			return err
		}
		if !slices.Equal(cols, td.Columns) {
			return fmt.Errorf("restore: table %s has other columns in the target than in the backup", td.Name)
		}
	}
	return nil
}

// loadBatch bounds one INSERT … json_populate_recordset statement.
const loadBatch = 1000

func loadTable(ctx context.Context, tx *sql.Tx, td TableDump, open func(string) (io.ReadCloser, error)) error {
	rc, err := open(td.Part)
	if err != nil {
		return err
	}
	defer rc.Close()
	cols := columnList(td.Columns)
	// Plain INSERTs into tables emptied above: the audit tables' UPDATE/DELETE/TRUNCATE triggers
	// do not fire, and explicit values (txid, pos) replace the column defaults.
	q := `INSERT INTO public.` + quoteIdent(td.Name) + ` (` + cols + `) SELECT ` + cols + // #nosec G202 -- table and column names come from the schema's own catalog, quoted by quoteIdent
		` FROM json_populate_recordset(NULL::public.` + quoteIdent(td.Name) + `, $1::json)`
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	var batch strings.Builder
	n, inBatch := int64(0), 0
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		batch.WriteByte(']')
		res, err := tx.ExecContext(ctx, q, batch.String())
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil || k != int64(inBatch) {
			return fmt.Errorf("inserted %d rows of %d", k, inBatch)
		}
		batch.Reset()
		inBatch = 0
		return nil
	}
	for sc.Scan() {
		if inBatch == 0 {
			batch.WriteByte('[')
		} else {
			batch.WriteByte(',')
		}
		batch.Write(sc.Bytes())
		inBatch++
		n++
		if inBatch == loadBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if n != td.Rows {
		return fmt.Errorf("the part holds %d rows, the manifest says %d", n, td.Rows)
	}
	return nil
}

// RestoreSQLiteFile replaces the SQLite database at target with the verified snapshot file src
// (which it consumes). No server may have target open: stop every tutela process first. src is
// checked (integrity_check, migration version) before target is touched; without force an
// existing target must hold no data. The swap is a rename in the same directory, after the old
// database's WAL and shared-memory files are gone (a stale WAL would be replayed into the new
// file), then the directory is fsynced. finish, when set, runs in one transaction on src after
// the checks and before target is touched (re-applying the erasure ledger): its error restores
// nothing.
func RestoreSQLiteFile(ctx context.Context, src, target string, wantVersion int64, force bool, finish func(*Tx) error) error {
	if err := checkSQLiteFile(ctx, src, wantVersion); err != nil {
		return err
	}
	if finish != nil {
		db, err := Open(ctx, src, Options{})
		if err != nil {
			return err
		}
		err = db.Update(ctx, finish)
		if err = errors.Join(err, db.Close()); err != nil {
			return err
		}
	}
	if _, err := os.Stat(target); err == nil {
		old, err := Open(ctx, target, Options{})
		if err != nil {
			return fmt.Errorf("restore: open existing database: %w", err)
		}
		inUse, which, err := old.InUse(ctx)
		if err == nil && inUse && !force {
			err = fmt.Errorf("%w (table %s has rows); restore into an empty data directory or pass --force", ErrNotEmpty, which)
		}
		// Closing the last connection checkpoints the WAL into the old file and removes it.
		err = errors.Join(err, old.Close())
		if err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: remove %s: %w", target+suffix, err)
		}
	}
	if err := os.Chmod(src, 0o600); err != nil {
		return err
	}
	f, err := os.Open(src) // #nosec G304 -- the restored file the operator's restore command unpacked
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(src, target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	d, err := os.Open(filepath.Dir(target))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func checkSQLiteFile(ctx context.Context, path string, wantVersion int64) error {
	f, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer f.Close()
	var res string
	if err := f.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("restore: the backup's database file: %w", err)
	}
	if res != "ok" {
		return tutela.Errorf(tutela.EINVALID, "restore: the backup's database file fails integrity_check: %s", res)
	}
	// Closed before sqliteFileVersion opens the file again; the deferred Close is then a no-op.
	if err := f.Close(); err != nil {
		return err
	}
	v, err := sqliteFileVersion(ctx, path)
	if err != nil {
		return err
	}
	if v != wantVersion {
		return fmt.Errorf("restore: the database file is at migration %d, the manifest says %d", v, wantVersion)
	}
	return nil
}
