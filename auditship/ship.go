// Package auditship ships the audit log, as it is sequenced, to systems outside the database's
// reach (ASVS 5.0 16.4.3; docs/audit.md, "Shipping the log"): an HTTPS receiver
// (audit/receiver, `tutela audit receive`) or a syslog collector. Each destination has a durable
// cursor in the store (sqlstore.AuditShipCursor) and a lease, so one node ships to it at a time,
// in index order, and a restarted or replacement node resumes where the last acknowledged batch
// ended. A batch lost between the send and the cursor update is sent again; the receiver finds
// its indexes already held and drops it (audit.KindReplayed), answering where it stands.
//
// Every batch carries the entries' canonical bytes as the log stores them (sealed fields stay
// sealed, as in `audit export`), the latest signed checkpoint and the consistency proofs that let
// the receiver check them against it (audit.VerifyBatch).
package auditship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/sqlstore"
)

// Destination is one place the log is shipped to.
type Destination interface {
	// Name identifies the destination's cursor; renaming it starts shipping again from index 0.
	Name() string
	// Send delivers b. A destination that answers (HTTPS) returns the receiver's Reply, with a
	// Refusal when it did not store the batch; one whose successful delivery is the
	// acknowledgement (syslog) returns a nil Reply. An error is a failed delivery, retried.
	Send(ctx context.Context, b *audit.Batch) (*Reply, error)
}

// Reply is a receiver's answer: where it stands after the batch, and why it refused it if it did.
type Reply struct {
	Size           int64
	CheckpointSize int64
	Refusal        *receiver.Refusal
}

// Audit actions of shipping.
const (
	// ActionShipRefused: a destination refused a batch as not verifying (a failure kind and
	// index in the details). Recorded when the cause changes, not on every retry.
	ActionShipRefused = "audit.ship_refused"
	// ActionShipResync: the cursor was moved to where the destination says it stands (after a
	// lost acknowledgement, or a receiver restored from an older copy).
	ActionShipResync = "audit.ship_resync"
)

// Options tune a Shipper.
type Options struct {
	// VerifierKey and Origin: the log's public key and name; the shipper checks the checkpoint
	// it sends, so a store holding a forged one ships nothing.
	VerifierKey, Origin string
	// Owner names this node's leases (default a random ID).
	Owner string
	// MaxEntries per batch (default 1,000, at most audit.MaxBatchEntries) and MaxBytes (default
	// 8 MiB, under the receiver's 32 MiB limit), whichever is reached first.
	MaxEntries int
	MaxBytes   int
	// Interval between rounds in Run (default 1 s). Lease is how long a claim keeps other nodes
	// off a destination (default 2 min; renewed every batch).
	Interval time.Duration
	Lease    time.Duration
	Logger   *slog.Logger
}

// Shipper ships the log to its destinations.
type Shipper struct {
	db    *sqlstore.DB
	dests []Destination
	opt   Options
}

// New returns a shipper of db's log to dests.
func New(db *sqlstore.DB, dests []Destination, opt Options) (*Shipper, error) {
	if _, err := audit.OpenCheckpoint(nil, opt.VerifierKey, opt.Origin); errors.Is(err, audit.ErrInvalidKey) {
		return nil, fmt.Errorf("auditship: %w", err)
	}
	seen := map[string]bool{}
	for _, d := range dests {
		if d.Name() == "" || seen[d.Name()] {
			return nil, fmt.Errorf("auditship: destination names must be set and unique (%q)", d.Name())
		}
		seen[d.Name()] = true
	}
	if opt.Owner == "" {
		opt.Owner = tutela.NewID()
	}
	switch {
	case opt.MaxEntries <= 0:
		opt.MaxEntries = 1000
	case opt.MaxEntries > audit.MaxBatchEntries:
		opt.MaxEntries = audit.MaxBatchEntries
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 8 << 20
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Lease <= 0 {
		opt.Lease = 2 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Shipper{db: db, dests: dests, opt: opt}, nil
}

// Run ships every Interval until ctx ends, then releases its leases and returns nil. Failures
// are logged and recorded on the cursor; the destination is retried after its backoff.
func (s *Shipper) Run(ctx context.Context) error {
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		if _, err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.opt.Logger.Error("audit shipping round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			s.Release(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
		}
	}
}

// Release gives up this node's leases, so another node takes over without waiting for them to
// lapse.
func (s *Shipper) Release(ctx context.Context) {
	for _, d := range s.dests {
		if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ReleaseAuditShip(ctx, d.Name(), s.opt.Owner) }); err != nil {
			s.opt.Logger.Warn("audit shipping lease not released", "destination", d.Name(), "err", err)
		}
	}
}

// maxBatchesPerStep bounds one destination's catch-up in a round, so the others get their turn.
const maxBatchesPerStep = 100

// Step ships to every destination until it has everything the latest checkpoint covers (or a
// failure stops it), and returns how many entries were acknowledged in all.
func (s *Shipper) Step(ctx context.Context) (int64, error) {
	var total int64
	var errs []error
	for _, d := range s.dests {
		for range maxBatchesPerStep {
			n, more, err := s.shipOne(ctx, d)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
			}
			if err != nil || !more || ctx.Err() != nil {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// backoff is the wait after a destination's n-th failure in a row: 5 s, doubling, at most 10 min.
func backoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// shipOne sends one batch to d. more reports that another batch may follow at once.
func (s *Shipper) shipOne(ctx context.Context, d Destination) (acked int64, more bool, err error) {
	var cur sqlstore.AuditShipCursor
	var claimed bool
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		cur, claimed, err = tx.ClaimAuditShip(ctx, d.Name(), s.opt.Owner, s.opt.Lease)
		return err
	}); err != nil || !claimed || !cur.Due {
		return 0, false, err
	}
	b, c, err := s.batch(ctx, cur)
	if err != nil || b == nil {
		return 0, false, err
	}
	end := b.From + int64(len(b.Entries))

	reply, sendErr := d.Send(ctx, b)
	// What the destination answered is recorded even if the node is stopping meanwhile: an
	// acknowledged batch left unrecorded would only be sent again, but there is no reason to.
	rec := context.WithoutCancel(ctx)
	switch {
	case sendErr != nil:
		if ctx.Err() != nil {
			return 0, false, nil // stopping: the cursor stays, the batch is sent again
		}
		return 0, false, s.fail(ctx, d, cur, "unreachable: "+sendErr.Error(), nil)
	case reply == nil || reply.Refusal == nil:
		if err := s.db.Update(rec, func(tx *sqlstore.Tx) error {
			return tx.AdvanceAuditShip(rec, d.Name(), s.opt.Owner, cur.Next, end, c.Size)
		}); err != nil {
			return 0, false, err
		}
		s.opt.Logger.Debug("audit batch shipped", "destination", d.Name(), "from", b.From, "to", end, "checkpoint", c.Size)
		return end - cur.Next, true, nil
	}
	// Refused. If the receiver stands elsewhere than the cursor says (an acknowledgement lost
	// before the cursor moved, a receiver restored from an older copy), resume from there:
	// entries it lacks are sent again, entries it has are not.
	if (reply.Size != cur.Next || reply.CheckpointSize != cur.CheckpointSize) &&
		reply.Size >= 0 && reply.Size <= c.Size && reply.CheckpointSize >= 0 && reply.CheckpointSize <= c.Size {
		if err := s.db.Update(rec, func(tx *sqlstore.Tx) error {
			if err := tx.AdvanceAuditShip(rec, d.Name(), s.opt.Owner, cur.Next, reply.Size, reply.CheckpointSize); err != nil {
				return err
			}
			return tx.Audit(rec, audit.Event{ActorType: audit.ActorSystem, Action: ActionShipResync, TargetType: "audit_destination",
				TargetID: d.Name(), Outcome: audit.OutcomeSuccess, Details: map[string]any{
					"from": cur.Next, "to": reply.Size, "checkpoint_size": reply.CheckpointSize, "refusal": reply.Refusal.Code}})
		}); err != nil {
			return 0, false, err
		}
		s.opt.Logger.Warn("audit shipping resumed where the receiver stands", "destination", d.Name(),
			"cursor", cur.Next, "receiver", reply.Size, "refusal", reply.Refusal.Code)
		return 0, true, nil
	}
	cause := "refused: " + reply.Refusal.Code
	if reply.Refusal.Index != nil {
		cause += " at index " + strconv.FormatInt(*reply.Refusal.Index, 10)
	}
	cause += ": " + reply.Refusal.Message
	return 0, false, s.fail(rec, d, cur, cause, reply.Refusal)
}

// fail records a failed attempt with its backoff; a refusal is audited when its cause is new.
func (s *Shipper) fail(ctx context.Context, d Destination, cur sqlstore.AuditShipCursor, cause string, r *receiver.Refusal) error {
	cause = clip(cause, 400)
	s.opt.Logger.Warn("audit shipping failed", "destination", d.Name(), "from", cur.Next, "cause", cause,
		"failures", cur.Failures+1)
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		prev, err := tx.FailAuditShip(ctx, d.Name(), s.opt.Owner, cause, tx.Now().Add(backoff(cur.Failures+1)))
		if err != nil || r == nil || prev == cause {
			return err
		}
		details := map[string]any{"kind": clip(r.Code, 64), "from": cur.Next, "detail": clip(r.Message, 300)}
		if r.Index != nil {
			details["index"] = *r.Index
		}
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: ActionShipRefused, TargetType: "audit_destination",
			TargetID: d.Name(), Outcome: audit.OutcomeFailure, Details: details})
	})
}

// batch builds the next batch for cur with the checkpoint it carries, or a nil batch when the
// destination has everything the latest checkpoint covers.
func (s *Shipper) batch(ctx context.Context, cur sqlstore.AuditShipCursor) (*audit.Batch, audit.Checkpoint, error) {
	var c audit.Checkpoint
	signed, err := s.db.AuditCheckpoint(ctx)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, c, nil
	}
	if err != nil {
		return nil, c, err
	}
	if c, err = audit.OpenCheckpoint(signed, s.opt.VerifierKey, s.opt.Origin); err != nil {
		return nil, c, fmt.Errorf("the store's latest checkpoint does not verify: %w", err)
	}
	if cur.Next >= c.Size {
		return nil, c, nil
	}
	if cur.CheckpointSize > c.Size {
		return nil, c, fmt.Errorf("the destination accepted a checkpoint of size %d, larger than the log's %d", cur.CheckpointSize, c.Size)
	}
	to := min(cur.Next+int64(s.opt.MaxEntries), c.Size)
	entries, err := s.db.AuditEntries(ctx, cur.Next, to)
	if err != nil {
		return nil, c, err
	}
	b := &audit.Batch{Format: audit.BatchFormat, Origin: s.opt.Origin, From: cur.Next, Checkpoint: string(signed),
		PrevSize: cur.CheckpointSize}
	size := 0
	for _, e := range entries {
		// base64 of the content, a leaf hash and the JSON around them.
		n := len(e.Canonical)*4/3 + 200
		if len(b.Entries) > 0 && size+n > s.opt.MaxBytes {
			break
		}
		size += n
		b.Entries = append(b.Entries, audit.BatchEntry{Index: e.Index, EventID: e.EventID, Canonical: e.Canonical,
			Pruned: e.Pruned, LeafHash: e.LeafHash})
	}
	if len(b.Entries) == 0 {
		return nil, c, fmt.Errorf("log entry %d is missing from the store (run tutela audit verify)", cur.Next)
	}
	end := b.From + int64(len(b.Entries))
	if b.TailProof, err = s.db.AuditConsistencyProof(ctx, end, c.Size); err != nil {
		return nil, c, err
	}
	if b.PrevProof, err = s.db.AuditConsistencyProof(ctx, cur.CheckpointSize, c.Size); err != nil {
		return nil, c, err
	}
	return b, c, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
