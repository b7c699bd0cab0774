package sqlstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"tutela"
	"tutela/audit"
)

// Group commit (issue 20). A record written alone — an API call's api.request event, a refused
// sign-in's login record — costs a whole write transaction: on SQLite a turn of the one writer,
// on PostgreSQL a commit's round trips and WAL flush (~1 ms). Callers instead hand their record
// to the store's group-commit writer (one goroutine on SQLite, four on PostgreSQL:
// commitWriters), which takes everything queued, writes it in one transaction and answers each
// caller only once that transaction has committed, so a caller that got nil knows its record is
// as durable as if it had committed it itself (nothing lost on kill -9). The batch is whatever
// queued while the writers were busy: an idle store commits a lone record at once, with no
// timer, and a busy one spreads one commit over many records.
//
// Only records go this way: an event that belongs to a state change is written in that change's
// transaction, so the change and its record commit or roll back together.

const (
	// maxBatchCallers and maxBatchEvents bound one group-commit transaction, so a burst is
	// written in a few transactions of bounded size (and statement) rather than one huge one.
	maxBatchCallers = 256
	maxBatchEvents  = 1000
)

// errClosed answers a record handed to a store being closed: nothing was written.
var errClosed = tutela.Errorf(tutela.EUNAVAILABLE, "the store is closing; the record was not written")

// commitItem is one caller's record waiting for the writer.
type commitItem struct {
	ctx    context.Context                  // the caller's, for its values (request metadata: sealing, attribution)
	events []audit.Event                    // AuditCommit's, written with every other caller's in one statement
	write  func(context.Context, *Tx) error // GroupCommit's
	weight int                              // events it writes, for maxBatchEvents
	taken  bool                             // guarded by groupCommit.mu: the writer has it, the caller must wait
	done   chan error                       // buffered: the writer never blocks on a caller that stopped waiting
}

// groupCommit is the queue and the writers' state. The writers start with the first record
// and run until the store closes.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*commitItem
	started bool
	closed  bool
	ready   *sync.Cond     // on mu: the queue grew, or the store is closing
	writers sync.WaitGroup // done when every writer has drained the queue after Close

	batches   atomic.Int64 // group-commit transactions committed or attempted
	callers   atomic.Int64 // records answered
	events    atomic.Int64 // events (weights) of those records
	solo      atomic.Int64 // records retried alone after their batch failed
	sizeHist  [len(BatchSizeBuckets) + 1]atomic.Uint64
	writeTxs  atomic.Int64 // every read-write transaction the store began (run)
	queuedNow atomic.Int64
}

// BatchSizeBuckets are the upper bounds of GroupCommitStats.BatchSizes (callers per batch).
var BatchSizeBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256}

// GroupCommitStats are the group-commit writer's counters since the store opened, for metrics
// and tests.
type GroupCommitStats struct {
	Batches int64 // transactions the writer ran (a failed batch counts once, its solo retries not)
	Callers int64 // records answered
	Events  int64 // events in them (a record written by a function counts one)
	Solo    int64 // records retried in a transaction of their own after their batch failed
	Queued  int64 // records waiting now
	// BatchSizes[i] counts batches of at most BatchSizeBuckets[i] callers (and more than the
	// bucket before); the last element counts larger ones (none while maxBatchCallers holds).
	BatchSizes [len(BatchSizeBuckets) + 1]uint64
	// WriteTransactions counts every read-write transaction the store began, the writer's
	// included: a read-only call that opens none leaves it alone.
	WriteTransactions int64
}

// GroupCommitStats reports the writer's counters.
func (db *DB) GroupCommitStats() GroupCommitStats {
	g := &db.commit
	s := GroupCommitStats{Batches: g.batches.Load(), Callers: g.callers.Load(), Events: g.events.Load(),
		Solo: g.solo.Load(), Queued: g.queuedNow.Load(), WriteTransactions: g.writeTxs.Load()}
	for i := range g.sizeHist {
		s.BatchSizes[i] = g.sizeHist[i].Load()
	}
	return s
}

// AuditCommit records events durably, written with other callers' records in one transaction
// (group commit): it returns nil only once that transaction has committed. Events are attributed
// and sealed with ctx's request metadata exactly as tx.AuditMany(ctx, events...) would be, and
// may belong to any tenant: the writer's transaction runs at platform scope (the audit tables
// carry no row-level security; every row names its tenant).
//
// If ctx ends while the events are still queued, AuditCommit returns ctx.Err() and nothing is
// written; once the writer has taken them it waits for the commit's result, which the latest
// deadline among the batch's callers bounds (and maxBatchDuration at most). Callers must not
// hold a write transaction of the same store (on SQLite the writer would wait for its one
// connection).
//
// Events that could never be stored — invalid, or whose canonical encoding, sealed as the
// writer seals it, would exceed audit.MaxCanonicalSize — are refused before they are queued
// (EINVALID naming the field), so they cannot fail the batch of other callers' records.
func (db *DB) AuditCommit(ctx context.Context, events ...audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := checkCommitEvents(events); err != nil {
		return err
	}
	return db.enqueue(ctx, &commitItem{events: events, weight: len(events)})
}

// checkCommitEvents refuses, before they are queued, events that auditMany would fail to
// encode: it normalizes each as auditMany does, stands in for what the writer fills in (an ID,
// the transaction's time: both fixed-width in the encoding) and for the sealed forms of the
// source IP and user agent (sealedSizeBound, never shorter than the real sealed value), and
// encodes. An event that passes here encodes within the limit in the writer too.
func checkCommitEvents(events []audit.Event) error {
	for i, e := range events {
		if e.ID == "" {
			e.ID = checkID
		}
		if e.Time.IsZero() {
			e.Time = checkTime
		}
		e = e.Normalized()
		for _, v := range []*string{&e.SourceIP, &e.UserAgent} {
			if *v != "" {
				*v = strings.Repeat("x", sealedSizeBound(len(*v)))
			}
		}
		if _, err := e.Canonical(); err != nil {
			te := &tutela.Error{Code: tutela.EINVALID, Message: fmt.Sprintf("audit event %d (%s) cannot be recorded", i, e.Action), Err: err}
			var inner *tutela.Error
			if errors.As(err, &inner) {
				te.Field, te.Message = inner.Field, te.Message+": "+inner.Message
			}
			return te
		}
	}
	return nil
}

// checkID and checkTime stand in for the ID and time the writer gives an event without one:
// the encoding spells every ID the writer makes (a UUID) and every time in the same width.
var (
	checkID   = "00000000-0000-7000-8000-000000000000"
	checkTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// sealedSizeBound bounds the length of the sealed form (sealAuditMeta) of an n-byte value:
// the longer "u:<tenant>:<person>:" form with IDs of up to maxSealedIDLen bytes each, and a
// ciphertext of the value plus at most sealOverhead bytes (Tink's 5-byte key prefix, a nonce
// of up to 24 bytes, a 16-byte tag), base64url without padding. Every byte of it is one the
// canonical encoding writes as is (no escape).
func sealedSizeBound(n int) int {
	const maxSealedIDLen, sealOverhead = 128, 64
	return len(sealedAuditPrefix) + len("u:::") + 2*maxSealedIDLen + base64.RawURLEncoding.EncodedLen(n+sealOverhead)
}

// GroupCommit runs write in the group-commit writer's next transaction, with other callers'
// records, and returns its result once that transaction has committed (AuditCommit's
// guarantees). write must only record — insert rows that need no scoping from the caller's
// tenant, such as RecordLogin or RecordSecurityEvent — must use the context it is given (the
// caller's values, the batch's deadline), and must tolerate running twice: a batch that fails
// is rolled back and each record is tried again in a transaction of its own.
func (db *DB) GroupCommit(ctx context.Context, write func(context.Context, *Tx) error) error {
	return db.enqueue(ctx, &commitItem{write: write, weight: 1})
}

func (db *DB) enqueue(ctx context.Context, it *commitItem) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it.ctx, it.done = ctx, make(chan error, 1)
	g := &db.commit
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errClosed
	}
	g.queue = append(g.queue, it)
	g.queuedNow.Add(1)
	if !g.started {
		g.started = true
		g.ready = sync.NewCond(&g.mu)
		for range db.commitWriters() {
			g.writers.Add(1)
			go db.commitLoop()
		}
	}
	g.ready.Signal()
	g.mu.Unlock()
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !it.taken {
		// Still queued: withdraw it, so nothing of this caller is written.
		for i, q := range g.queue {
			if q == it {
				g.queue = append(g.queue[:i], g.queue[i+1:]...)
				g.queuedNow.Add(-1)
				break
			}
		}
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
	return <-it.done // taken: its transaction decides
}

// commitWriters is how many writers commit batches at once. SQLite has one write connection:
// one writer. PostgreSQL commits on many connections at once and flushes their WAL together, so
// a few writers keep its commits overlapping (a batch's round trips need not wait for the
// previous batch's) while each still takes everything queued.
func (db *DB) commitWriters() int {
	if db.dialect == Postgres {
		return 4
	}
	return 1
}

// commitLoop is a writer: it takes everything queued (up to the caps), commits it, answers,
// and repeats; after Close it drains the queue and stops.
func (db *DB) commitLoop() {
	g := &db.commit
	defer g.writers.Done()
	for {
		g.mu.Lock()
		for len(g.queue) == 0 {
			if g.closed {
				g.mu.Unlock()
				return
			}
			g.ready.Wait()
		}
		n, events := 0, 0
		for n < len(g.queue) && n < maxBatchCallers && (n == 0 || events+g.queue[n].weight <= maxBatchEvents) {
			g.queue[n].taken = true
			events += g.queue[n].weight
			n++
		}
		batch := make([]*commitItem, n)
		copy(batch, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.queuedNow.Add(int64(-n))
		if len(g.queue) > 0 {
			g.ready.Signal() // more than one batch's worth: another writer may take the rest
		}
		g.mu.Unlock()
		db.commitBatch(batch, events)
	}
}

// commitBatch writes batch in one transaction and answers its callers. When the transaction
// fails for anything but an outage, each record is tried again alone, so one bad record (an
// event whose person key cannot seal, a duplicate ID) fails only its own caller.
func (db *DB) commitBatch(batch []*commitItem, events int) {
	g := &db.commit
	g.batches.Add(1)
	g.callers.Add(int64(len(batch)))
	g.events.Add(int64(events))
	b := len(BatchSizeBuckets)
	for i, ub := range BatchSizeBuckets {
		if len(batch) <= ub {
			b = i
			break
		}
	}
	g.sizeHist[b].Add(1)

	ctx, cancel := batchContext(batch)
	defer cancel()
	err := db.Update(ctx, func(tx *Tx) error { return writeItems(ctx, tx, batch) })
	if err == nil || len(batch) == 1 || tutela.ErrorCode(err) == tutela.EUNAVAILABLE {
		for _, it := range batch {
			it.done <- err
		}
		return
	}
	for _, it := range batch {
		g.solo.Add(1)
		it.done <- db.Update(ctx, func(tx *Tx) error { return writeItems(ctx, tx, []*commitItem{it}) })
	}
}

// writeItems writes items in tx: every event in one statement (per 500), each sealed with its
// own caller's request metadata, then the functions, each with its caller's values.
func writeItems(ctx context.Context, tx *Tx, items []*commitItem) error {
	var events []audit.Event
	var owners []*commitItem
	for _, it := range items {
		for _, e := range it.events {
			events, owners = append(events, e), append(owners, it)
		}
	}
	if len(events) > 0 {
		err := tx.auditMany(ctx, func(i int) context.Context {
			return callerValues{ctx, context.WithoutCancel(owners[i].ctx)}
		}, events)
		if err != nil {
			return err
		}
	}
	for _, it := range items {
		if it.write != nil {
			if err := it.write(callerValues{ctx, context.WithoutCancel(it.ctx)}, tx); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxBatchDuration bounds every group-commit transaction, whatever its callers' deadlines: a
// caller without a deadline (or with a distant one) must not leave a batch, and with it every
// other caller in it and the writer behind it, waiting on a stalled database without bound. A
// transaction of a few hundred inserts that takes this long means an outage; its callers get
// the deadline's error, as a caller of its own transaction would.
const maxBatchDuration = 10 * time.Second

// batchContext bounds a batch's transaction by the latest deadline among its callers (each of
// them waits for the result), and never beyond maxBatchDuration from now: a caller that set no
// deadline counts as one that far away. It carries no request metadata: the transaction runs at
// platform scope (rlsTenant "*"), as background work does.
func batchContext(batch []*commitItem) (context.Context, context.CancelFunc) {
	limit := time.Now().Add(maxBatchDuration)
	var latest time.Time
	for _, it := range batch {
		dl, ok := it.ctx.Deadline()
		if !ok || dl.After(limit) {
			dl = limit
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	// The batch's transaction span (when tracing is on) belongs to the first caller's trace: one
	// transaction serves many requests, and a span has one parent.
	base := context.Background()
	if sc := trace.SpanContextFromContext(batch[0].ctx); sc.IsValid() {
		base = trace.ContextWithSpanContext(base, sc)
	}
	return context.WithDeadline(base, latest)
}

// callerValues is the batch's context (deadline, cancellation) with one caller's values: the
// request metadata that attributes and seals its events.
type callerValues struct {
	context.Context
	values context.Context
}

func (c callerValues) Value(key any) any { return c.values.Value(key) }

// closeCommits stops taking records, lets the writers commit every queued one, and waits for
// them.
func (db *DB) closeCommits() {
	g := &db.commit
	g.mu.Lock()
	g.closed = true
	if g.started {
		g.ready.Broadcast()
	}
	g.mu.Unlock()
	g.writers.Wait()
}
