package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Shipping the log to a separate system (ASVS 5.0 16.4.3). A shipper sends the log in order, in
// batches; a receiver that holds every entry it was sent keeps its own copy of the tree and
// accepts a batch only when
//
//   - the batch starts exactly where the receiver stopped (a replayed batch starts earlier, a
//     reordered or lost one later, an entry dropped inside a batch leaves a hole),
//   - each entry's content hashes to its leaf hash and names its event ID,
//   - the checkpoint is signed by the log key the receiver trusts, for this log,
//   - the receiver's tree, extended by the batch, is a prefix of the checkpoint's tree
//     (TailProof: an RFC 6962 consistency proof from the receiver's new size to the checkpoint's),
//   - the checkpoint's tree extends the last checkpoint the receiver accepted (PrevProof), so
//     the log key cannot show it a fork.
//
// The receiver computes the roots itself from what it holds; the proofs only connect its trees
// to the signed ones. Nothing in a batch is trusted without one of these checks.

// BatchFormat names the batch format.
const BatchFormat = "tutela-audit-batch/v1"

// MaxBatchEntries bounds the entries of one batch; a shipper sends longer ranges as several.
const MaxBatchEntries = 10_000

// KindReplayed: a batch starts at an index the receiver already holds (a replay, or a resend
// after the shipper lost its acknowledgement). Nothing is stored; the receiver says its size.
const KindReplayed = "replayed"

// Batch is one shipment: the entries From..From+len(Entries)-1 with the signed checkpoint that
// covers them and the proofs that tie them to it.
type Batch struct {
	Format string `json:"format"`
	Origin string `json:"origin"`
	From   int64  `json:"from"`
	// Entries carry the canonical bytes exactly as the log stores them (the leaf hash input) —
	// with source IP and user agent sealed, as audit export has them — or only the leaf hash
	// of a pruned entry.
	Entries []BatchEntry `json:"entries"`
	// Checkpoint is the latest signed checkpoint; its size is at least From+len(Entries).
	Checkpoint string `json:"checkpoint"`
	// TailProof is the consistency proof from size From+len(Entries) to the checkpoint's size
	// (empty when they are equal).
	TailProof []tlog.Hash `json:"tail_proof"`
	// PrevSize is the size of the last checkpoint the shipper knows the receiver accepted (0 for
	// none) and PrevProof the consistency proof from it to Checkpoint.
	PrevSize  int64       `json:"prev_size"`
	PrevProof []tlog.Hash `json:"prev_proof"`
}

// BatchEntry is one log entry in a batch.
type BatchEntry struct {
	Index     int64     `json:"index"`
	EventID   string    `json:"event_id"`
	Canonical []byte    `json:"canonical,omitempty"`
	Pruned    bool      `json:"pruned,omitempty"`
	LeafHash  tlog.Hash `json:"leaf_hash"`
}

// Entry returns e as a log entry.
func (e BatchEntry) Entry() Entry {
	return Entry{Index: e.Index, EventID: e.EventID, Canonical: e.Canonical, Pruned: e.Pruned, LeafHash: e.LeafHash}
}

// ShipState is what a receiver has verified: entries 0..Size-1, and the last checkpoint it
// accepted (size 0 and EmptyTreeHash before the first).
type ShipState struct {
	Size           int64     `json:"size"`
	CheckpointSize int64     `json:"checkpoint_size"`
	CheckpointRoot tlog.Hash `json:"checkpoint_root"`
}

// BatchError is a refused batch: the failure kind (those of Verify, plus KindReplayed), the
// first index concerned (-1 for the checkpoint as a whole) and what was wrong.
type BatchError struct {
	Index  int64
	Kind   string
	Detail string
}

func (e *BatchError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("audit batch refused: %s: %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("audit batch refused at index %d: %s: %s", e.Index, e.Kind, e.Detail)
}

// Accepted is a batch that verified: the stored tree hashes to append after the receiver's
// (from tlog.StoredHashIndex(0, old size)), the checkpoint, and the receiver's new state.
type Accepted struct {
	Hashes     []tlog.Hash
	Checkpoint Checkpoint
	Signed     []byte
	State      ShipState
}

// VerifyBatch checks b against the receiver's state st, whose tree hashes (those of entries
// 0..st.Size-1) hs serves, the log key vkey the receiver trusts and the log origin. A refusal is
// a *BatchError; any other error is operational (hs unreadable, bad vkey).
func VerifyBatch(ctx context.Context, st ShipState, hs HashStore, b *Batch, vkey, origin string) (*Accepted, error) {
	if _, err := note.NewVerifier(vkey); err != nil {
		return nil, ErrInvalidKey
	}
	refuse := func(index int64, kind, format string, args ...any) (*Accepted, error) {
		return nil, &BatchError{Index: index, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case b.Format != BatchFormat:
		return refuse(-1, KindContentMismatch, "format %q, want %q", truncateUTF8(b.Format, 64), BatchFormat)
	case b.Origin != origin:
		return refuse(-1, KindBadSignature, "batch is for log %q, want %q", truncateUTF8(b.Origin, 128), origin)
	case len(b.Entries) == 0:
		return refuse(-1, KindMissingEntry, "batch holds no entries")
	case len(b.Entries) > MaxBatchEntries:
		return refuse(-1, KindOutOfOrder, "batch holds %d entries, limit %d", len(b.Entries), MaxBatchEntries)
	}
	c, err := OpenCheckpoint([]byte(b.Checkpoint), vkey, origin)
	if err != nil {
		return refuse(-1, KindBadSignature, "checkpoint: %v", err)
	}
	if b.From < st.Size && b.From >= 0 {
		// A batch sent again is dropped, but only if it repeats what was received: the same
		// indexes with other content are another history (a rewrite, re-signed or not).
		if err := sameAsReceived(ctx, st, hs, b); err != nil {
			return nil, err
		}
	}
	switch {
	case b.From < st.Size:
		return refuse(b.From, KindReplayed, "batch starts at index %d but entries up to %d were already received", b.From, st.Size-1)
	case b.From > st.Size:
		return refuse(st.Size, KindMissingEntry, "batch starts at index %d; entries %d..%d were never received", b.From, st.Size, b.From-1)
	case c.Size < st.CheckpointSize:
		return refuse(-1, KindInconsistentCheckpoint, "checkpoint of size %d is older than the accepted one of size %d", c.Size, st.CheckpointSize)
	case b.PrevSize != st.CheckpointSize:
		return refuse(-1, KindInconsistentCheckpoint, "batch proves consistency from size %d, but the last accepted checkpoint has size %d", b.PrevSize, st.CheckpointSize)
	}
	for i, e := range b.Entries {
		want := b.From + int64(i)
		if e.Index > want {
			return refuse(want, KindMissingEntry, "entry %d is missing (entry %d follows entry %d)", want, e.Index, want-1)
		}
		if e.Index < want {
			return refuse(e.Index, KindOutOfOrder, "entry %d is out of order (expected %d)", e.Index, want)
		}
		if e.Pruned && len(e.Canonical) != 0 {
			return refuse(e.Index, KindContentMismatch, "entry is marked pruned but carries content")
		}
		if len(e.Canonical) > MaxCanonicalSize {
			return refuse(e.Index, KindContentMismatch, "entry content exceeds %d bytes", MaxCanonicalSize)
		}
		v := &verifier{rep: &Report{}}
		if v.checkContent(e.Entry()); len(v.entryFails) > 0 {
			f := v.entryFails[0]
			return refuse(f.Index, f.Kind, "%s", f.Detail)
		}
	}
	end := b.From + int64(len(b.Entries))
	if end > c.Size {
		return refuse(c.Size, KindOutOfOrder, "entries up to %d lie beyond the checkpoint's tree of size %d", end-1, c.Size)
	}

	tree := &overlay{base: hs, start: tlog.StoredHashIndex(0, st.Size)}
	for _, e := range b.Entries {
		hs, err := StoredHashesFor(ctx, e.Index, e.LeafHash, tree)
		if err != nil {
			return nil, fmt.Errorf("audit batch: tree hashes for entry %d: %w", e.Index, err)
		}
		tree.pending = append(tree.pending, hs...)
	}
	root, err := TreeHash(ctx, end, tree)
	if err != nil {
		return nil, fmt.Errorf("audit batch: tree hash at size %d: %w", end, err)
	}
	if err := CheckConsistency(b.TailProof, end, root, c.Size, c.Root); err != nil {
		return refuse(b.From, KindCheckpointMismatch,
			"entries %d..%d with those received before do not lead to the signed root of size %d", b.From, end-1, c.Size)
	}
	prevRoot := st.CheckpointRoot
	if st.CheckpointSize == 0 {
		prevRoot = EmptyTreeHash
	}
	if err := CheckConsistency(b.PrevProof, st.CheckpointSize, prevRoot, c.Size, c.Root); err != nil {
		return refuse(-1, KindInconsistentCheckpoint,
			"checkpoint of size %d does not extend the accepted checkpoint of size %d: the log key signed a fork", c.Size, st.CheckpointSize)
	}
	return &Accepted{Hashes: tree.pending, Checkpoint: c, Signed: []byte(b.Checkpoint),
		State: ShipState{Size: end, CheckpointSize: c.Size, CheckpointRoot: c.Root}}, nil
}

// sameAsReceived checks the entries of b the receiver already holds against their stored leaf
// hashes, refusing the first that differs (content_mismatch at its index).
func sameAsReceived(ctx context.Context, st ShipState, hs HashStore, b *Batch) error {
	for i, e := range b.Entries {
		if e.Index != b.From+int64(i) || e.Index >= st.Size {
			return nil // the order checks that follow name it
		}
		got, err := hs.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, e.Index)})
		if err != nil {
			return fmt.Errorf("audit batch: reading leaf %d: %w", e.Index, err)
		}
		leaf := e.LeafHash
		if !e.Pruned {
			leaf = LeafHash(e.Canonical)
		}
		if len(got) != 1 || got[0] != leaf {
			return &BatchError{Index: e.Index, Kind: KindContentMismatch,
				Detail: "entry differs from the one received before at this index: another history"}
		}
	}
	return nil
}

// overlay serves the receiver's stored hashes from base and the ones a batch adds, from index
// start on, from pending.
type overlay struct {
	base    HashStore
	start   int64
	pending []tlog.Hash
}

func (o *overlay) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var old []int64
	for i, x := range indexes {
		switch {
		case x >= o.start && x-o.start < int64(len(o.pending)):
			out[i] = o.pending[x-o.start]
		case x < o.start:
			old = append(old, x)
		default:
			return nil, fmt.Errorf("%w: index %d", ErrHashNotFound, x)
		}
	}
	if len(old) == 0 {
		return out, nil
	}
	got, err := o.base.ReadHashes(ctx, old)
	if err != nil {
		return nil, err
	}
	if len(got) != len(old) {
		return nil, errors.New("audit batch: hash store returned the wrong number of hashes")
	}
	j := 0
	for i, x := range indexes {
		if x < o.start {
			out[i] = got[j]
			j++
		}
	}
	return out, nil
}
