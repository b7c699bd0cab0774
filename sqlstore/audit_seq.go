package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
)

// LockAuditSequencer is the advisory lock key held by the node sequencing the audit log.
const LockAuditSequencer int64 = 0x7475_7465_6c61_0005 // "tutela" + issue 5

// SequencerOptions tune a Sequencer. The zero value is usable.
type SequencerOptions struct {
	Clock     tutela.Clock  // checkpoint times; default the store's clock
	Interval  time.Duration // between rounds in Run; default 1 s
	BatchSize int           // most events per round; default 10,000
	// CheckpointDir, when set, receives every new checkpoint as <size>.checkpoint, written
	// atomically after the round commits. Keep it off the database host (or sync it elsewhere):
	// it is what catches a wholesale rewrite of the database.
	CheckpointDir string
	// CheckpointKeepHourly, when positive, thins CheckpointDir once an hour
	// (audit.ThinCheckpointDir): the latest and the first checkpoint, the last of each hour for
	// this long, the last of each day before. Zero keeps every file.
	CheckpointKeepHourly time.Duration
	// Publish, when set, is called with each new signed checkpoint after the round commits
	// (e.g. POST to a witness); its errors are logged, never fatal to sequencing.
	Publish func(ctx context.Context, size int64, signed []byte) error
	Logger  *slog.Logger
	// Heartbeat records each round that holds the sequencing lock (time and Interval) in
	// audit_sequencer, telling `audit verify` a live sequencer will append what is pending. A
	// serving node sets it; a one-shot run (`tutela audit sequence`) does not, or it would vouch
	// for a sequencer that has already stopped.
	Heartbeat bool
}

// Sequencer moves committed audit events into the Merkle log: it gives each a consecutive
// index, stores the tree hashes and signs a checkpoint. Any number of nodes may run one; a
// PostgreSQL advisory lock lets one at a time do a round, the rest skip it.
type Sequencer struct {
	db     *DB
	signer *audit.Signer
	origin string
	opt    SequencerOptions

	mu   sync.Mutex // one round at a time in this process
	thin *audit.CheckpointThinner
}

// NewSequencer returns a sequencer signing checkpoints for origin with signer.
func NewSequencer(db *DB, signer *audit.Signer, origin string, opt SequencerOptions) *Sequencer {
	if opt.Clock == nil {
		opt.Clock = db.now
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 10_000
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sequencer{db: db, signer: signer, origin: origin, opt: opt,
		thin: &audit.CheckpointThinner{Dir: opt.CheckpointDir, KeepHourly: opt.CheckpointKeepHourly}}
}

// Run sequences every Interval until ctx ends, then returns nil. A failed round is logged and
// retried at the next tick: events wait safely in audit_events meanwhile.
func (s *Sequencer) Run(ctx context.Context) error {
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		for {
			n, err := s.Step(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.opt.Logger.Error("audit sequencer round failed", "err", err)
				break
			}
			if n < s.opt.BatchSize {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type pendingEvent struct {
	pos  int64
	id   string
	time time.Time
	leaf tlog.Hash
}

// Step runs one round and returns how many events it appended (0 when another node holds the
// sequencing lock or nothing was pending).
func (s *Sequencer) Step(ctx context.Context) (appended int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		signed    []byte
		newSize   int64
		nAppended int
		dropped   []int64
	)
	err = s.db.Update(ctx, func(tx *Tx) error {
		nAppended, signed, newSize, dropped = 0, nil, 0, nil
		if tx.db.dialect == Postgres {
			var got bool
			if err := tx.queryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, LockAuditSequencer).Scan(&got); err != nil {
				return mapErr(err)
			}
			if !got {
				return nil
			}
			if _, err := tx.exec(ctx, sequencerPlan); err != nil {
				return err
			}
		}
		size, err := auditSize(ctx, tx.tx)
		if err != nil {
			return err
		}
		var pending []pendingEvent
		pending, dropped, err = s.pending(ctx, tx)
		if err != nil {
			return err
		}
		// The heartbeat tells `audit verify` that a sequencer holding the lock is alive, so events
		// waiting for it are not mistaken for ones left behind while no node runs.
		if s.opt.Heartbeat {
			if _, err := tx.exec(ctx, `INSERT INTO audit_sequencer (id, beat_at, interval_ms) VALUES (1, $1, $2)
				ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at, interval_ms = excluded.interval_ms`,
				tx.now, max(s.opt.Interval.Milliseconds(), 1)); err != nil {
				return err
			}
		}
		if len(pending) == 0 {
			return nil
		}
		hs := &dbHashes{q: tx.tx, pending: map[int64]tlog.Hash{}}
		var newHashes []int64
		for i, p := range pending {
			n := size + int64(i)
			stored, err := audit.StoredHashesFor(ctx, n, p.leaf, hs)
			if err != nil {
				return fmt.Errorf("audit sequencer: tree hashes for entry %d: %w", n, err)
			}
			base := tlog.StoredHashIndex(0, n)
			for j, h := range stored {
				hs.pending[base+int64(j)] = h
				newHashes = append(newHashes, base+int64(j))
			}
		}
		if err := insertRows(ctx, tx, `INSERT INTO audit_log (idx, event_id, time, leaf_hash) VALUES `, 4, len(pending),
			func(i int) []any {
				p := pending[i]
				return []any{size + int64(i), p.id, p.time, p.leaf[:]}
			}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, `INSERT INTO audit_hashes (id, hash) VALUES `, 2, len(newHashes),
			func(i int) []any {
				h := hs.pending[newHashes[i]]
				return []any{newHashes[i], h[:]}
			}); err != nil {
			return err
		}
		newSize = size + int64(len(pending))
		root, err := audit.TreeHash(ctx, newSize, hs)
		if err != nil {
			return err
		}
		signed, err = s.signer.Sign(audit.Checkpoint{Origin: s.origin, Size: newSize, Root: root,
			Time: s.opt.Clock().UTC().Truncate(time.Second)})
		if err != nil {
			return err
		}
		at, err := checkpointTime(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO audit_checkpoints (size, signed, created_at) VALUES ($1, $2, $3)`,
			newSize, string(signed), at); err != nil {
			return err
		}
		nAppended = len(pending)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(dropped) > 0 {
		// Never written by Tutela (AuditMany queues only the events it inserts, and a round
		// removes what it appends): someone inserted these by hand, or a node of an older version
		// sequenced the events. Nothing of the log changed; say so.
		s.opt.Logger.Warn("audit sequencer dropped queue entries with no pending event", "positions", dropped)
	}
	// Published only after the commit: a checkpoint published for a round that then rolled back
	// would contradict the next one signed at the same size (a fork, as far as anyone can tell).
	if signed != nil && s.opt.CheckpointDir != "" {
		if err := audit.WriteCheckpointFile(s.opt.CheckpointDir, newSize, signed); err != nil {
			return nAppended, fmt.Errorf("audit sequencer: publishing checkpoint %d: %w", newSize, err)
		}
		// Thinning only removes superseded files; a failure leaves more of them, never fewer.
		if n, err := s.thin.Wrote(s.opt.Clock()); err != nil {
			s.opt.Logger.Warn("audit checkpoint directory not thinned", "dir", s.opt.CheckpointDir, "err", err)
		} else if n > 0 {
			s.opt.Logger.Debug("audit checkpoint directory thinned", "removed", n)
		}
	}
	if signed != nil && s.opt.Publish != nil {
		if err := s.opt.Publish(ctx, newSize, signed); err != nil {
			s.opt.Logger.Warn("audit checkpoint not published", "size", newSize, "err", err)
		}
	}
	if nAppended > 0 {
		s.opt.Logger.Debug("audit events sequenced", "appended", nAppended, "size", newSize)
	}
	return nAppended, nil
}

// insertRows inserts n rows of cols values each with multi-row INSERTs of at most 1000 rows.
func insertRows(ctx context.Context, tx *Tx, prefix string, cols, n int, row func(i int) []any) error {
	const perStmt = 1000
	var b strings.Builder
	for start := 0; start < n; start += perStmt {
		end := min(start+perStmt, n)
		b.Reset()
		b.WriteString(prefix)
		args := make([]any, 0, (end-start)*cols)
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range cols {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString("$" + strconv.Itoa(len(args)+j+1))
			}
			b.WriteByte(')')
			args = append(args, row(i)...)
		}
		if _, err := tx.exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// checkpointTime is the created_at of a round's checkpoint: the transaction's time, but never
// before the latest stored checkpoint's. audit verify reads the stored checkpoints in created_at
// order and reports a smaller one after a larger as the log going backwards; rounds are
// serialised by the sequencing lock, but a round's transaction may have begun before the
// previous holder's committed (tx.now is the transaction's start), and on PostgreSQL each node
// stamps with its own clock, a few milliseconds apart from the others'.
func checkpointTime(ctx context.Context, tx *Tx) (time.Time, error) {
	var last time.Time
	err := tx.queryRow(ctx, `SELECT created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tx.now, nil
	case err != nil:
		return time.Time{}, mapErr(err)
	case last.After(tx.now):
		return last.UTC(), nil
	}
	return tx.now, nil
}
