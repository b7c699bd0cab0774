package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
)

// Audit records e in the transaction, so the event commits with the change it describes and
// vanishes with it on rollback. An empty ID gets a new one and a zero Time the transaction's
// time; e is normalized (audit.Event.Normalized) and must then validate. The event enters the
// Merkle log when the Sequencer next runs.
func (tx *Tx) Audit(ctx context.Context, e audit.Event) error {
	return tx.AuditMany(ctx, e)
}

// AuditMany records several events in the transaction with one statement per 500 events, for
// callers that produce many (imports, batch jobs); it is what makes ≥ 20,000 events/s possible.
// Each event's pos also enters the sequencer's queue (audit_pending) in the same transaction:
// on PostgreSQL in the same statement, on SQLite by a second one with the positions the first
// returned.
func (tx *Tx) AuditMany(ctx context.Context, events ...audit.Event) error {
	return tx.auditMany(ctx, nil, events)
}

// auditMany is AuditMany whose event i is attributed and sealed with the request metadata of
// sealCtx(i) (nil: ctx for all): the group commit writes many callers' events in one statement.
func (tx *Tx) auditMany(ctx context.Context, sealCtx func(int) context.Context, events []audit.Event) error {
	const perStmt = 500
	const cols = 12
	if err := tx.prefetchAuditKeys(ctx, sealCtx, events); err != nil {
		return err
	}
	var q strings.Builder
	args := make([]any, 0, min(len(events), perStmt)*cols)
	for start := 0; start < len(events); start += perStmt {
		batch := events[start:min(start+perStmt, len(events))]
		q.Reset()
		if tx.db.dialect == Postgres {
			q.WriteString(`WITH e AS (`)
		}
		q.WriteString(`INSERT INTO audit_events (id, time, tenant_id, actor_type, actor_id, action,
			target_type, target_id, outcome, request_id, canonical, leaf_hash) VALUES `)
		args = args[:0]
		for i, e := range batch {
			if e.ID == "" {
				e.ID = tutela.NewID()
			}
			if e.Time.IsZero() {
				e.Time = tx.now
			}
			e = e.Normalized()
			ectx := ctx
			if sealCtx != nil {
				ectx = sealCtx(start + i)
			}
			if err := tx.sealAuditMeta(ectx, &e); err != nil {
				return err
			}
			c, err := e.Canonical()
			if err != nil {
				return err
			}
			leaf := audit.LeafHash(c)
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('(')
			for j := range cols {
				if j > 0 {
					q.WriteByte(',')
				}
				q.WriteByte('$')
				q.WriteString(strconv.Itoa(len(args) + j + 1))
			}
			q.WriteByte(')')
			args = append(args, e.ID, e.Time, e.TenantID, e.ActorType, e.ActorID, e.Action,
				e.TargetType, e.TargetID, e.Outcome, e.RequestID, c, leaf[:])
		}
		if tx.db.dialect == Postgres {
			// audit_events is partitioned by month (migration 00041): audit_event_ids keeps ids
			// unique across the months, and the queue carries the time so a round finds the event
			// in its own partition.
			q.WriteString(` RETURNING pos, id, time), i AS (INSERT INTO audit_event_ids (id) SELECT id FROM e)
				INSERT INTO audit_pending (pos, time) SELECT pos, time FROM e`)
		} else {
			q.WriteString(` RETURNING pos`)
		}
		if err := tx.insertAuditEvents(ctx, q.String(), args, len(batch)); err != nil {
			if tutela.ErrorCode(err) == tutela.ECONFLICT {
				return &tutela.Error{Code: tutela.ECONFLICT, Field: "id", Message: "an audit event with this id already exists", Err: err}
			}
			return err
		}
	}
	return nil
}

// queryer is what hash reads need: a transaction or a pool.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// dbHashes is an audit.HashStore over audit_hashes. pending holds hashes computed in the current
// sequencer round and not yet written (and caches what was read), so a round reads each frontier
// hash from the database once.
type dbHashes struct {
	q       queryer
	pending map[int64]tlog.Hash
}

func (h *dbHashes) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for i, x := range indexes {
		if v, ok := h.pending[x]; ok {
			out[i] = v
			continue
		}
		missing = append(missing, x)
	}
	if len(missing) == 0 {
		return out, nil
	}
	got, err := readHashes(ctx, h.q, missing)
	if err != nil {
		return nil, err
	}
	for i, x := range indexes {
		if v, ok := h.pending[x]; ok {
			out[i] = v
			continue
		}
		v, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("%w: index %d", audit.ErrHashNotFound, x)
		}
		out[i] = v
		if h.pending != nil {
			h.pending[x] = v
		}
	}
	return out, nil
}

// readHashes reads stored hashes by index: one range scan when the indexes are contiguous and
// ascending (as Verify asks), otherwise IN lists of at most 500.
func readHashes(ctx context.Context, q queryer, indexes []int64) (map[int64]tlog.Hash, error) {
	got := make(map[int64]tlog.Hash, len(indexes))
	scan := func(rows *sql.Rows, err error) error {
		if err != nil {
			return mapErr(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var b []byte
			if err := rows.Scan(&id, &b); err != nil {
				return err
			}
			if len(b) != tlog.HashSize {
				// A malformed stored hash is a tampered one; report it as a hash that differs.
				b = make([]byte, tlog.HashSize)
			}
			got[id] = tlog.Hash(b)
		}
		return rows.Err()
	}
	contiguous := true
	for i := 1; i < len(indexes); i++ {
		if indexes[i] != indexes[i-1]+1 {
			contiguous = false
			break
		}
	}
	if contiguous {
		err := scan(q.QueryContext(ctx, `SELECT id, hash FROM audit_hashes WHERE id >= $1 AND id <= $2`,
			indexes[0], indexes[len(indexes)-1]))
		return got, err
	}
	for start := 0; start < len(indexes); start += 500 {
		part := indexes[start:min(start+500, len(indexes))]
		var b strings.Builder
		args := make([]any, len(part))
		b.WriteString(`SELECT id, hash FROM audit_hashes WHERE id IN (`)
		for i, x := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("$" + strconv.Itoa(i+1))
			args[i] = x
		}
		b.WriteByte(')')
		if err := scan(q.QueryContext(ctx, b.String(), args...)); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// auditSize returns the number of entries in the log: one past the highest index. A row deleted
// from the middle therefore shows as a missing entry, not a shorter log.
func auditSize(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log`).Scan(&n)
	return n, err
}

// AuditSource returns the stored log for audit.Verify. The log may grow while Verify reads (a
// sequencer keeps running): Size fixes the size once, and Entries and Checkpoints then return
// only what lies within it, so growth is never mistaken for tampering.
func (db *DB) AuditSource() audit.Source { return &auditSource{db: db, size: -1} }

type auditSource struct {
	db   *DB
	size int64 // fixed by Size; -1 until then (no bound)
}

func (s *auditSource) Size(ctx context.Context) (int64, error) {
	n, err := auditSize(ctx, s.db.read)
	if err == nil {
		s.size = n
	}
	return n, err
}

func (s *auditSource) Hashes() audit.HashStore { return &dbHashes{q: s.db.read} }

func (s *auditSource) Checkpoints(ctx context.Context) ([][]byte, error) {
	bound := s.size
	if bound < 0 {
		bound = math.MaxInt64
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT signed FROM audit_checkpoints WHERE size <= $1
		ORDER BY created_at, size`, bound)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, []byte(c))
	}
	return out, rows.Err()
}

// pruneCutoff returns the latest prune cutoff, or the zero time when nothing was ever pruned.
func pruneCutoff(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (time.Time, error) {
	var t time.Time
	err := q.QueryRowContext(ctx, `SELECT cutoff FROM audit_prunes ORDER BY cutoff DESC LIMIT 1`).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	return t, err
}

// Entries streams the log in index order, each entry joined to its body. An entry without a
// body is Pruned only when a prune record's cutoff covers its time; any other missing body is
// reported by Verify as content_mismatch.
func (s *auditSource) Entries(ctx context.Context, fn func(audit.Entry) error) error {
	cutoff, err := pruneCutoff(ctx, s.db.read)
	if err != nil {
		return err
	}
	return s.entries(ctx, 0, s.size, cutoff, false, fn)
}

// entryColumns are the audit_events columns kept beside the canonical body (for filtering and
// indexes), each the copy of the canonical member of the same name. Verify compares every one
// with the body, so a row moved to another tenant or actor by editing a column is caught.
var entryColumns = []string{"tenant_id", "actor_type", "actor_id", "action", "target_type", "target_id",
	"outcome", "request_id"}

// entriesQuery reads the entries with $1 <= idx < $2 and their bodies (see entries).
func entriesQuery(d Dialect, ranged bool) string {
	join := `LEFT JOIN audit_events e ON e.id = l.event_id`
	if ranged {
		join = auditBodyJoin(d)
	}
	return `SELECT l.idx, l.event_id, l.time, l.leaf_hash, e.canonical, e.time, e.` + // #nosec G202 -- only the fixed entryColumns list and join are put in; values are bound parameters
		strings.Join(entryColumns, ", e.") + `
		FROM audit_log l ` + join + `
		WHERE l.idx >= $1 AND l.idx < $2 ORDER BY l.idx`
}

// entries streams entries with from <= idx (< to when to >= 0). A ranged read (export,
// shipping) finds each body by its id and time (auditBodyJoin), one partition per entry on
// PostgreSQL; the whole-log read of Verify joins by id alone, so a body whose time column was
// edited is still found and named (column_mismatch on audit_events.time).
func (s *auditSource) entries(ctx context.Context, from, to int64, cutoff time.Time, ranged bool, fn func(audit.Entry) error) error {
	if to < 0 {
		to = math.MaxInt64
	}
	rows, err := s.db.read.QueryContext(ctx, entriesQuery(s.db.dialect, ranged), from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		vals  = make([]sql.NullString, len(entryColumns))
		dest  = make([]any, 0, 6+len(entryColumns))
		cols  = make([]audit.Column, 0, 2+len(entryColumns))
		names = make([]string, len(entryColumns))
	)
	for i, c := range entryColumns {
		names[i] = "audit_events." + c
	}
	for rows.Next() {
		var (
			e     audit.Entry
			t     time.Time
			etime sql.NullTime
			leaf  []byte
		)
		dest = append(dest[:0], &e.Index, &e.EventID, &t, &leaf, &e.Canonical, &etime)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if len(leaf) == tlog.HashSize {
			e.LeafHash = tlog.Hash(leaf)
		}
		if e.Canonical == nil {
			e.Pruned = !cutoff.IsZero() && t.Before(cutoff)
		} else {
			cols = append(cols[:0], audit.Column{Name: "audit_log.time", Member: "time", Value: audit.FormatTime(t)},
				audit.Column{Name: "audit_events.time", Member: "time", Value: audit.FormatTime(etime.Time)})
			for i, v := range vals {
				cols = append(cols, audit.Column{Name: names[i], Member: entryColumns[i], Value: v.String})
			}
			e.Columns = cols
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditCheckpoint returns the latest signed checkpoint; not_found before the first one.
func (db *DB) AuditCheckpoint(ctx context.Context) (_ []byte, err error) {
	defer func() { err = unavailable(err) }()
	var c string
	err = db.read.QueryRowContext(ctx, `SELECT signed FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "no audit checkpoint yet")
	}
	if err != nil {
		return nil, err
	}
	return []byte(c), nil
}

// AuditInclusionProof returns the RFC 6962 inclusion proof of entry index in the tree of the
// given size (a size some checkpoint committed to, usually the latest).
func (db *DB) AuditInclusionProof(ctx context.Context, index, size int64) (_ tlog.RecordProof, err error) {
	defer func() { err = unavailable(err) }()
	n, err := auditSize(ctx, db.read)
	if err != nil {
		return nil, err
	}
	if size > n || index < 0 || index >= size {
		return nil, tutela.Errorf(tutela.EINVALID, "no entry %d in a log of size %d", index, min(size, n))
	}
	return audit.ProveInclusion(ctx, size, index, &dbHashes{q: db.read})
}

// AuditConsistencyProof returns the RFC 6962 proof that the tree of size to extends the tree of
// size from.
func (db *DB) AuditConsistencyProof(ctx context.Context, from, to int64) (_ tlog.TreeProof, err error) {
	defer func() { err = unavailable(err) }()
	n, err := auditSize(ctx, db.read)
	if err != nil {
		return nil, err
	}
	if from < 0 || from > to || to > n {
		return nil, tutela.Errorf(tutela.EINVALID, "no consistency proof from size %d to %d in a log of size %d", from, to, n)
	}
	return audit.ProveConsistency(ctx, from, to, &dbHashes{q: db.read})
}

// AuditEntries returns the entries with from <= index < to, bodies joined, for export.
func (db *DB) AuditEntries(ctx context.Context, from, to int64) (_ []audit.Entry, err error) {
	defer func() { err = unavailable(err) }()
	if from < 0 || to < from {
		return nil, tutela.Errorf(tutela.EINVALID, "bad entry range %d..%d", from, to)
	}
	cutoff, err := pruneCutoff(ctx, db.read)
	if err != nil {
		return nil, err
	}
	var out []audit.Entry
	err = (&auditSource{db: db}).entries(ctx, from, to, cutoff, true, func(e audit.Entry) error {
		e.Canonical = append([]byte(nil), e.Canonical...)
		if e.Pruned {
			e.Canonical = nil
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ActionAuditPrune is the action of the event that records a retention prune.
const ActionAuditPrune = "audit.prune"

// AuditPrune removes the bodies of sequenced events older than before (retention), keeping
// their log entries and leaf hashes so the tree, every checkpoint and every proof still verify;
// Verify counts them as pruned. The prune is recorded twice in the same transaction: a prune
// record (which the append-only trigger requires before it lets a body go) and an audit event.
// It needs a role with DELETE on audit_events, which the runtime role does not have: run it as
// the owner, from `tutela audit prune`.
//
// On PostgreSQL audit_events is partitioned by month (migration 00041): the months entirely
// before the cutoff whose events are all sequenced are detached and dropped whole, in the same
// transaction (prunePartitions); the rest goes row by row as on SQLite.
func (db *DB) AuditPrune(ctx context.Context, before time.Time, actor audit.Event) (pruned int64, err error) {
	before = before.UTC().Truncate(time.Microsecond)
	if db.dialect == Postgres && !before.After(db.now()) {
		// Rows of past months still in the default partition (a restore, a clock that was
		// behind) move to their month's partition first, so that month can go whole.
		if _, err := db.AuditEnsurePartitions(ctx); err != nil {
			return 0, err
		}
	}
	err = db.Update(ctx, func(tx *Tx) error {
		if before.After(tx.now) {
			return tutela.FieldErrorf("before", "cannot prune events from the future")
		}
		if db.dialect == Postgres {
			// One prune at a time, and none while audit_ensure_partitions attaches a partition.
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock($1)`, LockAuditPartitions); err != nil {
				return err
			}
		}
		id := tutela.NewID()
		if _, err := tx.exec(ctx, `INSERT INTO audit_prunes (id, cutoff, created_at) VALUES ($1, $2, $3)`,
			id, before, tx.now); err != nil {
			return err
		}
		if db.dialect == Postgres {
			if _, err := tx.exec(ctx, `SELECT set_config('tutela.audit_prune', 'on', true)`); err != nil {
				return err
			}
		} else if _, err := tx.exec(ctx, `INSERT INTO audit_prune_gate (prune_id) VALUES ($1)`, id); err != nil {
			return err
		}
		if db.dialect == Postgres {
			if pruned, err = tx.prunePartitions(ctx, before); err != nil {
				return err
			}
		} else {
			res, err := tx.exec(ctx, `DELETE FROM audit_events WHERE time < $1
				AND EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = audit_events.id)`, before)
			if err != nil {
				return err
			}
			if pruned, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		if db.dialect == Postgres {
			_, err = tx.exec(ctx, `SELECT set_config('tutela.audit_prune', 'off', true)`)
		} else {
			_, err = tx.exec(ctx, `DELETE FROM audit_prune_gate WHERE prune_id = $1`, id)
		}
		if err != nil {
			return err
		}
		e := actor
		e.ID, e.Time, e.Action, e.Outcome = id, time.Time{}, ActionAuditPrune, audit.OutcomeSuccess
		if e.ActorType == "" {
			e.ActorType = audit.ActorSystem
		}
		e.TargetType = "audit_log"
		e.Details = map[string]any{"before": before.Format(time.RFC3339Nano), "pruned": pruned}
		return tx.Audit(ctx, e)
	})
	return pruned, err
}
