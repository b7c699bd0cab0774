package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// shipRig is a log (checkpoints every 4 entries) and a receiver's side in memory.
type shipRig struct {
	l      *testLog
	st     ShipState
	hashes MemHashes
}

func newShipRig(t testing.TB, n int) *shipRig {
	t.Helper()
	return &shipRig{l: newTestLog(t, n, 4)}
}

// batch builds what a shipper of r's log sends to r's receiver.
func (r *shipRig) batch(t testing.TB, from, to, cp int64) *Batch {
	t.Helper()
	return shipBatch(t, r.l, r.st, from, to, cp)
}

// shipBatch builds what a shipper of l sends to a receiver in state st: entries from..to-1 with
// the checkpoint of size cp and the proofs from to and from the receiver's last checkpoint, all
// computed honestly within l.
func shipBatch(t testing.TB, l *testLog, st ShipState, from, to, cp int64) *Batch {
	t.Helper()
	ctx := context.Background()
	signed, ok := l.checkpointAt[cp]
	if !ok {
		t.Fatalf("no checkpoint of size %d", cp)
	}
	tail, err := ProveConsistency(ctx, to, cp, l.src.hashes)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := ProveConsistency(ctx, st.CheckpointSize, cp, l.src.hashes)
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{Format: BatchFormat, Origin: testOrigin, From: from, Checkpoint: string(signed),
		TailProof: tail, PrevSize: st.CheckpointSize, PrevProof: prev}
	for _, e := range l.src.entries[from:to] {
		b.Entries = append(b.Entries, BatchEntry{Index: e.Index, EventID: e.EventID,
			Canonical: append([]byte(nil), e.Canonical...), LeafHash: e.LeafHash})
	}
	return b
}
func (r *shipRig) accept(t testing.TB, b *Batch) {
	t.Helper()
	a, err := VerifyBatch(context.Background(), r.st, r.hashes, b, r.l.vkey, testOrigin)
	if err != nil {
		t.Fatalf("batch from %d refused: %v", b.From, err)
	}
	r.hashes = append(r.hashes, a.Hashes...)
	r.st = a.State
}

func (r *shipRig) refuse(t *testing.T, b *Batch, kind string, index int64) {
	t.Helper()
	before := r.st
	_, err := VerifyBatch(context.Background(), r.st, r.hashes, b, r.l.vkey, testOrigin)
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("batch from %d: err = %v, want a refusal %s at %d", b.From, err, kind, index)
	}
	if be.Kind != kind || be.Index != index {
		t.Fatalf("refusal = %s at %d (%s), want %s at %d", be.Kind, be.Index, be.Detail, kind, index)
	}
	if r.st != before {
		t.Fatal("a refused batch changed the receiver's state")
	}
}

func TestShip_BatchesVerifyAgainstCheckpoints(t *testing.T) {
	t.Parallel()
	r := newShipRig(t, 10)
	// 0..2 under checkpoint 4 (tail proof 3→4); 3..5 under 8 (prev proof 4→8); 6..9 under 10.
	r.accept(t, r.batch(t, 0, 3, 4))
	r.accept(t, r.batch(t, 3, 6, 8))
	r.accept(t, r.batch(t, 6, 10, 10))
	if r.st.Size != 10 || r.st.CheckpointSize != 10 {
		t.Fatalf("state %+v, want size 10 and checkpoint 10", r.st)
	}
	want, err := TreeHash(context.Background(), 10, r.l.src.hashes)
	if err != nil {
		t.Fatal(err)
	}
	if r.st.CheckpointRoot != want {
		t.Fatal("receiver's root differs from the log's")
	}
	for i := range r.hashes {
		if r.hashes[i] != r.l.src.hashes[i] {
			t.Fatalf("receiver's stored hash %d differs from the log's", i)
		}
	}
}

func TestShip_PrunedEntryShipsLeafOnly(t *testing.T) {
	t.Parallel()
	r := newShipRig(t, 4)
	b := r.batch(t, 0, 4, 4)
	b.Entries[1].Canonical, b.Entries[1].Pruned = nil, true
	r.accept(t, b)

	r2 := newShipRig(t, 4)
	b = r2.batch(t, 0, 4, 4)
	b.Entries[2].Pruned = true // content kept: a pruned mark must not hide content
	r2.refuse(t, b, KindContentMismatch, 2)
}

// flip changes one letter of the action inside canonical content.
func flip(t *testing.T, c []byte) {
	t.Helper()
	i := bytes.Index(c, []byte("user.login"))
	if i < 0 {
		t.Fatal("no action in the content")
	}
	c[i] = 'v'
}

func TestShip_AttacksRefusedNamingIndex(t *testing.T) {
	t.Parallel()
	otherLog := newTestLog(t, 8, 4) // same events, another key
	tests := []struct {
		name   string
		edit   func(t *testing.T, r *shipRig, b *Batch)
		kind   string
		index  int64
		primed bool // receiver already holds 0..3 and checkpoint 4; the batch is 4..7 under 8
	}{
		{"flipped byte in one entry", func(t *testing.T, _ *shipRig, b *Batch) { flip(t, b.Entries[2].Canonical) },
			KindContentMismatch, 6, true},
		{"flipped byte with leaf hash recomputed", func(t *testing.T, _ *shipRig, b *Batch) {
			flip(t, b.Entries[1].Canonical)
			b.Entries[1].LeafHash = LeafHash(b.Entries[1].Canonical)
		}, KindCheckpointMismatch, 4, true},
		{"event id differs from content", func(_ *testing.T, _ *shipRig, b *Batch) {
			b.Entries[0].EventID = "0190f3a4-0000-7000-8000-000000000099"
		}, KindContentMismatch, 4, true},
		{"dropped entry", func(_ *testing.T, _ *shipRig, b *Batch) { b.Entries = append(b.Entries[:1], b.Entries[2:]...) },
			KindMissingEntry, 5, true},
		{"reordered entries", func(_ *testing.T, _ *shipRig, b *Batch) { b.Entries[1], b.Entries[2] = b.Entries[2], b.Entries[1] },
			KindMissingEntry, 5, true},
		{"repeated entry", func(_ *testing.T, _ *shipRig, b *Batch) { b.Entries[2] = b.Entries[1] }, KindOutOfOrder, 5, true},
		{"batch after a lost one (reordered batches)", func(t *testing.T, r *shipRig, b *Batch) { *b = *r.batch(t, 5, 8, 8) },
			KindMissingEntry, 4, true},
		{"replayed batch", func(t *testing.T, r *shipRig, b *Batch) { *b = *r.batch(t, 0, 4, 4) }, KindReplayed, 0, true},
		{"replayed batch with an entry rewritten", func(t *testing.T, r *shipRig, b *Batch) {
			*b = *r.batch(t, 0, 4, 4)
			flip(t, b.Entries[2].Canonical)
			b.Entries[2].LeafHash = LeafHash(b.Entries[2].Canonical)
		}, KindContentMismatch, 2, true},
		{"overlapping batch", func(t *testing.T, r *shipRig, b *Batch) { *b = *r.batch(t, 2, 8, 8) }, KindReplayed, 2, true},
		{"forged checkpoint (wrong key)", func(_ *testing.T, _ *shipRig, b *Batch) { b.Checkpoint = string(otherLog.checkpointAt[8]) },
			KindBadSignature, -1, true},
		{"another log's origin", func(_ *testing.T, _ *shipRig, b *Batch) { b.Origin = "other.example/audit" }, KindBadSignature, -1, true},
		{"older checkpoint than the accepted one", func(_ *testing.T, r *shipRig, b *Batch) {
			b.Entries = b.Entries[:0]
			b.Checkpoint = string(r.l.checkpointAt[4])
			b.Entries = append(b.Entries, BatchEntry{Index: 4, EventID: r.l.src.entries[4].EventID,
				Canonical: r.l.src.entries[4].Canonical, LeafHash: r.l.src.entries[4].LeafHash})
			r.st.CheckpointSize, r.st.CheckpointRoot = 8, mustRoot(t, r.l, 8)
		}, KindInconsistentCheckpoint, -1, true},
		{"entries beyond the checkpoint", func(_ *testing.T, r *shipRig, b *Batch) { b.Checkpoint = string(r.l.checkpointAt[4]) },
			KindOutOfOrder, 4, false},
		{"wrong tail proof", func(t *testing.T, r *shipRig, b *Batch) {
			*b = *r.batch(t, 4, 6, 8)
			b.TailProof = b.PrevProof
		}, KindCheckpointMismatch, 4, true},
		{"prev size not the accepted one", func(_ *testing.T, _ *shipRig, b *Batch) { b.PrevSize = 0 }, KindInconsistentCheckpoint, -1, true},
		{"no entries", func(_ *testing.T, _ *shipRig, b *Batch) { b.Entries = nil }, KindMissingEntry, -1, true},
		{"wrong format", func(_ *testing.T, _ *shipRig, b *Batch) { b.Format = "tutela-audit-batch/v0" }, KindContentMismatch, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newShipRig(t, 8)
			if tc.primed {
				r.accept(t, r.batch(t, 0, 4, 4))
			}
			b := r.batch(t, r.st.Size, 8, 8)
			tc.edit(t, r, b)
			r.refuse(t, b, tc.kind, tc.index)
		})
	}
}

func mustRoot(t *testing.T, l *testLog, size int64) tlog.Hash {
	t.Helper()
	h, err := TreeHash(context.Background(), size, l.src.hashes)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// forkedLog is the 8-event log re-signed with l's own key after event at was rewritten: what a
// holder of the log key who rewrites history can produce.
func forkedLog(t *testing.T, l *testLog, at int) *testLog {
	t.Helper()
	events := make([]Event, 8)
	for i := range events {
		events[i] = testEvent(i)
	}
	events[at].Outcome = OutcomeFailure
	f := &testLog{vkey: l.vkey, signer: l.signer}
	f.rebuild(t, events, 4)
	return f
}

// A fork the receiver's own entries expose: it holds the real 0..3; the fork rewrote index 1
// and ships 4..7 (identical in both) with the fork's checkpoint and honest proofs within the
// fork. The receiver's tree does not lead to the signed root.
func TestShip_ForkBeforeReceivedEntriesRefused(t *testing.T) {
	t.Parallel()
	r := newShipRig(t, 8)
	r.accept(t, r.batch(t, 0, 4, 4))
	b := shipBatch(t, forkedLog(t, r.l, 1), r.st, 4, 8, 8)
	r.refuse(t, b, KindCheckpointMismatch, 4)
}

// A fork only the previous checkpoint exposes: the receiver holds the real 0..1 and accepted
// checkpoint 4; the fork rewrote index 3 and ships index 2 (the same in both) under its own
// checkpoint 8. The receiver's entries are a prefix of the fork too, so the tail proof holds;
// the fork's tree does not extend the accepted checkpoint.
func TestShip_ForkOfAcceptedCheckpointRefused(t *testing.T) {
	t.Parallel()
	r := newShipRig(t, 8)
	r.accept(t, r.batch(t, 0, 2, 4))
	b := shipBatch(t, forkedLog(t, r.l, 3), r.st, 2, 3, 8)
	r.refuse(t, b, KindInconsistentCheckpoint, -1)

	// The same at equal sizes: checkpoint 8 accepted while holding 0..3, then the fork's 8.
	r = newShipRig(t, 8)
	r.accept(t, r.batch(t, 0, 4, 8))
	b = shipBatch(t, forkedLog(t, r.l, 6), r.st, 4, 5, 8)
	r.refuse(t, b, KindInconsistentCheckpoint, -1)
}

// FuzzVerifyBatch feeds arbitrary batch JSON to a receiver holding 0..3 of an 8-entry log:
// VerifyBatch must never panic, and whatever it accepts must extend the receiver by exactly the
// batch's entries under a checkpoint that really is the log's.
func FuzzVerifyBatch(f *testing.F) {
	r := newShipRig(f, 8)
	r.accept(f, r.batch(f, 0, 4, 4))
	for _, b := range []*Batch{r.batch(f, 4, 8, 8), r.batch(f, 4, 6, 8), r.batch(f, 0, 4, 4)} {
		js, err := json.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if json.Unmarshal(data, &b) != nil {
			return
		}
		a, err := VerifyBatch(context.Background(), r.st, r.hashes, &b, r.l.vkey, testOrigin)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("operational error on hostile input: %v", err)
			}
			return
		}
		if a.State.Size != r.st.Size+int64(len(b.Entries)) || a.State.Size > a.State.CheckpointSize {
			t.Fatalf("accepted state %+v after %d entries", a.State, len(b.Entries))
		}
		if want := mustRoot(t, r.l, a.State.CheckpointSize); a.State.CheckpointRoot != want {
			t.Fatal("accepted a checkpoint root the log never had")
		}
	})
}
