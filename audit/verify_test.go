package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestVerify_IntactLog(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 50, 10)
	rep := l.verify(t, l.checkpointAt[20], l.checkpointAt[50])
	wantOK(t, rep)
	root, _ := TreeHash(context.Background(), 50, l.src.hashes)
	if rep.Size != 50 || rep.Root != root || rep.Checkpoints != 5 || rep.Published != 2 || rep.Covered != 50 || rep.Pruned != 0 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestVerify_EmptyLog(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 0, 10)
	rep := l.verify(t)
	wantOK(t, rep)
	if rep.Root != EmptyTreeHash {
		t.Fatalf("root of empty log = %s", rep.Root)
	}
}

func TestVerify_FlippedContentByte(t *testing.T) {
	t.Parallel()
	for _, at := range []int{0, 1, 17, 49} {
		l := newTestLog(t, 50, 10)
		c := bytes.Clone(l.src.entries[at].Canonical)
		c[len(c)/2] ^= 0x01
		l.src.entries[at].Canonical = c
		rep := l.verify(t)
		wantFirst(t, rep, KindContentMismatch, int64(at))
		if f := rep.Failures[0]; f.EventID != l.src.entries[at].EventID ||
			f.Detail != "leaf hash recomputed from stored content differs from stored leaf hash" {
			t.Errorf("failure = %+v", f)
		}
		if rep.FailureCount != 1 {
			t.Errorf("one edit, %d failures: %+v", rep.FailureCount, rep.Failures)
		}
	}
}

func TestVerify_ContentAndLeafRewritten(t *testing.T) {
	t.Parallel()
	// The attacker edits the event and recomputes its leaf hash, but leaves the tree alone.
	l := newTestLog(t, 50, 10)
	e := testEvent(23)
	e.Outcome = OutcomeFailure
	c, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	l.src.entries[23].Canonical, l.src.entries[23].LeafHash = c, LeafHash(c)
	wantFirst(t, l.verify(t), KindHashMismatch, 23)
}

func TestVerify_EventIDColumnChanged(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 20, 10)
	l.src.entries[7].EventID = l.src.entries[8].EventID
	wantFirst(t, l.verify(t), KindContentMismatch, 7)
}

func TestVerify_DeletedEntry(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 50, 10)
	l.src.entries = slices.Delete(l.src.entries, 12, 13)
	rep := l.verify(t)
	wantFirst(t, rep, KindMissingEntry, 12)
	if rep.FailureCount != 1 {
		t.Errorf("failures: %+v", rep.Failures)
	}
}

func TestVerify_DeletedRange(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 50, 10)
	l.src.entries = slices.Delete(l.src.entries, 30, 35)
	rep := l.verify(t)
	wantFirst(t, rep, KindMissingEntry, 30)
	if rep.Failures[0].Detail != "entries 30..34 are missing" {
		t.Errorf("detail = %q", rep.Failures[0].Detail)
	}
}

func TestVerify_SwappedEntries(t *testing.T) {
	t.Parallel()
	t.Run("rows out of order", func(t *testing.T) {
		t.Parallel()
		l := newTestLog(t, 50, 10)
		es := l.src.entries
		es[14], es[21] = es[21], es[14]
		rep := l.verify(t)
		wantFirst(t, rep, KindOutOfOrder, 14)
		if hasFailure(rep, KindMissingEntry) {
			t.Errorf("a reordering reported as missing entries: %+v", rep.Failures)
		}
	})
	t.Run("adjacent rows out of order", func(t *testing.T) {
		t.Parallel()
		l := newTestLog(t, 50, 10)
		es := l.src.entries
		es[0], es[1] = es[1], es[0]
		wantFirst(t, l.verify(t), KindOutOfOrder, 0)
	})
	t.Run("contents exchanged between indexes", func(t *testing.T) {
		t.Parallel()
		// Indexes stay in place; event, ID column and leaf hash move together.
		l := newTestLog(t, 50, 10)
		a, b := &l.src.entries[14], &l.src.entries[21]
		a.EventID, b.EventID = b.EventID, a.EventID
		a.Canonical, b.Canonical = b.Canonical, a.Canonical
		a.LeafHash, b.LeafHash = b.LeafHash, a.LeafHash
		wantFirst(t, l.verify(t), KindHashMismatch, 14)
	})
}

func TestVerify_DuplicateAndStrayEntries(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 20, 10)
	dup := l.src.entries[5]
	l.src.entries = slices.Insert(l.src.entries, 6, dup)
	wantFirst(t, l.verify(t), KindOutOfOrder, 5)

	l = newTestLog(t, 20, 10)
	stray := l.src.entries[19]
	stray.Index = 20 // an entry beyond the log size, e.g. inserted without a tree update
	l.src.entries = append(l.src.entries, stray)
	wantFirst(t, l.verify(t), KindOutOfOrder, 20)
}

func TestVerify_TamperedStoredTreeHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		level  int
		n      int64
		wantAt int64 // the record whose append stored that hash
	}{
		{"leaf", 0, 7, 7},
		{"level 1", 1, 2, 5},  // leaves 4..5, stored with record 5
		{"level 3", 3, 1, 15}, // leaves 8..15
	}
	for _, tc := range tests {
		l := newTestLog(t, 50, 10)
		l.src.hashes[tlog.StoredHashIndex(tc.level, tc.n)][3] ^= 0x80
		rep := l.verify(t)
		wantFirst(t, rep, KindHashMismatch, tc.wantAt)
		if rep.FailureCount != 1 {
			t.Errorf("%s: failures %+v", tc.name, rep.Failures)
		}
	}
}

func TestVerify_MissingStoredTreeHashes(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 50, 10)
	l.src.hashes = l.src.hashes[:tlog.StoredHashIndex(0, 40)]
	rep := l.verify(t)
	wantFirst(t, rep, KindHashMismatch, 40)
}

func TestVerify_ForgedCheckpointSignature(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 30, 10)
	_, _, attacker := newTestKeys(t) // same key name, different key
	root, _ := TreeHash(context.Background(), 30, l.src.hashes)
	forged, err := attacker.Sign(Checkpoint{Origin: testOrigin, Size: 30, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	l.src.checkpoints[2] = forged
	rep := l.verify(t)
	wantFirst(t, rep, KindBadSignature, -1)
	if rep.Checkpoints != 2 {
		t.Errorf("verified checkpoints = %d, want 2", rep.Checkpoints)
	}
	// A forged published checkpoint too.
	rep = newTestLogFrom(t, l).verify(t, forged)
	wantFirst(t, rep, KindBadSignature, -1)
}

// newTestLogFrom re-verifies a fresh intact copy with l's keys (for checks on published input).
func newTestLogFrom(t *testing.T, l *testLog) *testLog {
	t.Helper()
	c := *l
	events := make([]Event, l.src.size)
	for i := range events {
		events[i] = testEvent(i)
	}
	c.rebuild(t, events, 10)
	return &c
}

func TestVerify_CheckpointForAnotherOrigin(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 30, 10)
	root, _ := TreeHash(context.Background(), 30, l.src.hashes)
	l.src.checkpoints[2] = l.sign(t, Checkpoint{Origin: "other.example/audit", Size: 30, Root: root})
	rep := l.verify(t)
	wantFirst(t, rep, KindBadSignature, -1)
	if !bytes.Contains([]byte(rep.Failures[0].Detail), []byte("another log")) {
		t.Errorf("detail = %q", rep.Failures[0].Detail)
	}
	// Verifying as the other log accepts only that log's checkpoint.
	rep, err := Verify(context.Background(), l.src, l.vkey, "other.example/audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Checkpoints != 1 {
		t.Errorf("verified %d checkpoints under the wrong origin", rep.Checkpoints)
	}
}

func TestVerify_CheckpointRootMismatch(t *testing.T) {
	t.Parallel()
	// A validly signed checkpoint whose root is not the tree's (e.g. signed over a different
	// history and planted in the table).
	l := newTestLog(t, 30, 10)
	l.src.checkpoints[1] = l.sign(t, Checkpoint{Origin: testOrigin, Size: 20, Root: tlog.Hash{1}})
	rep := l.verify(t)
	wantFirst(t, rep, KindCheckpointMismatch, -1)
	if rep.Failures[0].TreeSize != 20 {
		t.Errorf("tree size = %d", rep.Failures[0].TreeSize)
	}
}

// The attack published checkpoints exist for: rewrite one old event, recompute every hash and
// re-sign every stored checkpoint with the real key. The database alone now verifies; a
// checkpoint published before the rewrite does not.
func TestVerify_ConsistentRewriteWithRealKeyCaughtByPublishedCheckpoint(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 40, 10)
	published := l.checkpointAt[20]

	events := make([]Event, 40)
	for i := range events {
		events[i] = testEvent(i)
	}
	events[3].Outcome = OutcomeDenied // the attacker's edit
	l.rebuild(t, events, 10)

	wantOK(t, l.verify(t)) // without outside evidence the rewrite is undetectable
	rep := l.verify(t, published)
	wantFirst(t, rep, KindCheckpointMismatch, -1)
	if f := rep.Failures[0]; f.TreeSize != 20 {
		t.Errorf("failure = %+v", f)
	}
	if !hasFailure(rep, KindInconsistentCheckpoint) {
		t.Errorf("the fork at size 20 is not reported: %+v", rep.Failures)
	}
}

func TestVerify_TruncatedLogCaughtByCheckpoint(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 40, 10)
	published := l.checkpointAt[40]
	// Cut the last 5 entries with their hashes; keep the stored checkpoints up to 30.
	l.src.size = 35
	l.src.entries = l.src.entries[:35]
	l.src.hashes = l.src.hashes[:tlog.StoredHashCount(35)]
	l.src.checkpoints = l.src.checkpoints[:3]
	wantOK(t, l.verify(t))
	wantFirst(t, l.verify(t, published), KindMissingEntry, 35)
}

func TestVerify_CheckpointsGoingBackwards(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 30, 10)
	cps := l.src.checkpoints
	cps[1], cps[2] = cps[2], cps[1]
	rep := l.verify(t)
	wantFirst(t, rep, KindInconsistentCheckpoint, -1)
	if rep.Failures[0].TreeSize != 20 {
		t.Errorf("failure = %+v", rep.Failures[0])
	}
}

func TestVerify_PrunedEntries(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 30, 10)
	for _, i := range []int{0, 4, 29} {
		l.src.entries[i].Canonical, l.src.entries[i].Pruned = nil, true
	}
	rep := l.verify(t, l.checkpointAt[30])
	wantOK(t, rep)
	if rep.Pruned != 3 {
		t.Errorf("pruned = %d, want 3", rep.Pruned)
	}

	// Pruning cannot be used to change an entry: the stored leaf hash still has to fit the tree.
	l.src.entries[4].LeafHash = tlog.RecordHash([]byte("other"))
	wantFirst(t, l.verify(t), KindHashMismatch, 4)

	// Content gone without the pruned mark is a failure.
	l = newTestLog(t, 30, 10)
	l.src.entries[6].Canonical = nil
	wantFirst(t, l.verify(t), KindContentMismatch, 6)
}

func TestVerify_ReportsFirstFailureAmongMany(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 300, 50)
	for i := 250; i >= 10; i-- { // tamper back to front; the report is still in index order
		l.src.entries[i].Canonical = append(bytes.Clone(l.src.entries[i].Canonical), ' ')
	}
	rep := l.verify(t)
	wantFirst(t, rep, KindContentMismatch, 10)
	if len(rep.Failures) != MaxReportedFailures || rep.FailureCount != 241 {
		t.Fatalf("reported %d of %d failures", len(rep.Failures), rep.FailureCount)
	}
}

func TestVerify_OperationalErrors(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 10, 10)
	for _, size := range []int64{-1, 1 << 62} {
		bad := *l.src
		bad.size = size
		if _, err := Verify(context.Background(), &bad, l.vkey, testOrigin, nil); err == nil {
			t.Errorf("log size %d accepted", size)
		}
	}
	if _, err := Verify(context.Background(), l.src, "garbage", testOrigin, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad vkey: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, &failingSource{memSource: l.src}, l.vkey, testOrigin, nil); err == nil {
		t.Error("storage error not returned")
	}
}

type failingSource struct{ *memSource }

func (s *failingSource) Entries(ctx context.Context, fn func(Entry) error) error {
	return ctx.Err()
}

func TestCanonicalID(t *testing.T) {
	t.Parallel()
	e := fullEvent()
	e.Details = map[string]any{"id": "decoy", "x": map[string]any{"id": "decoy2"}, "s": `"id":"decoy3"`}
	c, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	id, esc, ok := canonicalID(c)
	if !ok || esc || string(id) != e.ID {
		t.Fatalf("canonicalID = %q, %v, %v", id, esc, ok)
	}
	for _, bad := range []string{"", "{", "[]", `{"id":1}`, `{"a":"b"}`, `{"a":{"id":"x"}}`, `{"a":"unterminated`, `{"id":"x`, `{"a" "b"}`, `{"a":1,}`} {
		if _, _, ok := canonicalID([]byte(bad)); ok {
			t.Errorf("canonicalID(%q) ok", bad)
		}
	}
}

func FuzzCanonicalID(f *testing.F) {
	c, _ := fullEvent().Canonical()
	f.Add(c)
	f.Add([]byte(`{"a":[1,{"b":"\""}],"id":"x\"y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		canonicalID(b) // must not panic on any stored bytes
	})
}

// benchSource serves n synthetic events without holding them: each entry's canonical bytes are
// a template with the index written in, so the benchmark measures Verify, not the source.
type benchSource struct {
	n      int64
	leaves []tlog.Hash
	hashes MemHashes
	cps    [][]byte
}

func benchCanonical(buf []byte, i int64) []byte {
	e := testEvent(0)
	c, _ := e.Canonical()
	// Overwrite the request id digits in place with a fixed-width index.
	at := bytes.Index(c, []byte(`"req-0"`))
	out := append(buf[:0], c[:at]...)
	out = append(out, `"req-`...)
	out = append(out, fmt.Sprintf("%09d", i)...)
	out = append(out, '"')
	return append(out, c[at+len(`"req-0"`):]...)
}

func (s *benchSource) Size(context.Context) (int64, error)           { return s.n, nil }
func (s *benchSource) Hashes() HashStore                             { return s.hashes }
func (s *benchSource) Checkpoints(context.Context) ([][]byte, error) { return s.cps, nil }
func (s *benchSource) Entries(_ context.Context, fn func(Entry) error) error {
	tmpl := benchCanonical(nil, 0)
	at := bytes.Index(tmpl, []byte(`"req-`)) + len(`"req-`)
	buf := bytes.Clone(tmpl)
	id := testEvent(0).ID
	var digits [16]byte
	for i := range s.n {
		// Fast path of benchCanonical: rewrite only the nine digits.
		copy(buf[at:], strconv.AppendInt(digits[:0], 1_000_000_000+i, 10)[1:])
		if err := fn(Entry{Index: i, EventID: id, Canonical: buf, LeafHash: s.leaves[i]}); err != nil {
			return err
		}
	}
	return nil
}

func BenchmarkVerify1M(b *testing.B) {
	const n = 1_000_000
	_, vkey, s := newTestKeys(b)
	src := &benchSource{n: n, leaves: make([]tlog.Hash, n)}
	var a Appender
	a.Hashes = make(MemHashes, 0, tlog.StoredHashCount(n))
	buf := benchCanonical(nil, 0)
	for i := range int64(n) {
		buf = benchCanonical(buf, i)
		src.leaves[i] = LeafHash(buf)
		if _, err := a.Append(src.leaves[i]); err != nil {
			b.Fatal(err)
		}
		if (i+1)%100_000 == 0 {
			root, _ := TreeHash(context.Background(), i+1, a.Hashes)
			cp, err := s.Sign(Checkpoint{Origin: testOrigin, Size: i + 1, Root: root})
			if err != nil {
				b.Fatal(err)
			}
			src.cps = append(src.cps, cp)
		}
	}
	src.hashes = a.Hashes
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Verify(context.Background(), src, vkey, testOrigin, src.cps[:1])
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK || rep.Size != n || rep.Checkpoints != 10 {
			b.Fatalf("report: %+v", rep.Failures)
		}
	}
	b.ReportMetric(float64(len(buf)), "event-bytes")
}

func TestVerify_HostileOrderingStaysFast(t *testing.T) {
	t.Parallel()
	// Pairwise swapped indexes make one gap per pair; the check must stay near-linear.
	const n = 200_000
	src := &memSource{size: n, entries: make([]Entry, n)}
	for i := range int64(n) {
		src.entries[i] = Entry{Index: i ^ 1, Pruned: true}
	}
	_, vkey, _ := newTestKeys(t)
	rep, err := Verify(context.Background(), src, vkey, testOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFirst(t, rep, KindOutOfOrder, 0)
	if rep.FailureCount != n/2 {
		t.Fatalf("failures = %d, want %d", rep.FailureCount, n/2)
	}
}

// Columns stored beside the content must equal its members, compared by value: escaped and
// non-ASCII strings match their column, and a column that differs (or names no member) is a
// column_mismatch naming it, reported at its entry.
func TestVerify_ColumnsComparedWithContent(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 6, 3)
	e := testEvent(2)
	e.TargetID = "quote\" backslash\\ tab\t é\u2028"
	c, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	events := make([]Event, 6)
	for i := range events {
		events[i] = testEvent(i)
	}
	events[2] = e
	l.rebuild(t, events, 3)
	if !bytes.Equal(l.src.entries[2].Canonical, c) {
		t.Fatal("rebuild did not store the event")
	}
	cols := func(ev Event) []Column {
		return []Column{{"audit_events.tenant_id", "tenant_id", ev.TenantID}, {"audit_events.target_id", "target_id", ev.TargetID},
			{"audit_log.time", "time", FormatTime(ev.Time)}}
	}
	for i := range l.src.entries {
		l.src.entries[i].Columns = cols(events[i])
	}
	wantOK(t, l.verify(t))

	for _, tc := range []struct {
		name string
		col  Column
	}{
		{"escaped value changed", Column{"audit_events.target_id", "target_id", "quote\" backslash\\ tab\t é"}},
		{"tenant moved", Column{"audit_events.tenant_id", "tenant_id", "0190f3a4-aaaa-7000-8000-000000000002"}},
		{"time moved", Column{"audit_log.time", "time", FormatTime(e.Time.Add(time.Microsecond))}},
		{"no such member", Column{"audit_events.colour", "colour", ""}},
	} {
		l.src.entries[2].Columns = append(cols(e)[:0:0], tc.col)
		rep := l.verify(t)
		wantFirst(t, rep, KindColumnMismatch, 2)
		if f := rep.Failures[0]; f.EventID != e.ID || !strings.Contains(f.Detail, "column "+tc.col.Name+" ") || rep.FailureCount != 1 {
			t.Errorf("%s: %d failures, first %+v", tc.name, rep.FailureCount, f)
		}
	}
}
