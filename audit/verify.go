package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Source is what Verify reads: the stored log.
type Source interface {
	// Size returns the number of entries the log holds (its current tree size).
	Size(ctx context.Context) (int64, error)
	// Entries calls fn for every entry in index order and stops at fn's first error, returning
	// it. fn must not keep Entry.Canonical after it returns, so the source may reuse the buffer.
	Entries(ctx context.Context, fn func(Entry) error) error
	// Hashes returns the stored tree hashes.
	Hashes() HashStore
	// Checkpoints returns the stored signed checkpoints, oldest first.
	Checkpoints(ctx context.Context) ([][]byte, error)
}

// Entry is one stored log entry.
type Entry struct {
	Index   int64
	EventID string // the event ID column; must equal the "id" inside Canonical
	// Canonical is the event's canonical encoding, nil once the content was pruned (retention).
	// Pruning removes content, never the leaf hash, so the tree still verifies; it hides an
	// entry but cannot change one, and Report.Pruned makes it visible.
	Canonical []byte
	Pruned    bool
	LeafHash  tlog.Hash // the stored leaf hash
	// Columns are values the store keeps beside the content (to filter and index on) that must
	// equal the content's own members: a row moved to another tenant, actor or action by editing
	// such a column would otherwise hide from filtered reads while the hashes still verify.
	Columns []Column
}

// Column is a stored copy of one top-level member of an entry's canonical content.
type Column struct {
	Name   string // where it is stored, as reported ("audit_events.tenant_id")
	Member string // the canonical member it copies ("tenant_id"); times use [FormatTime]
	Value  string
}

// Failure kinds, from the innermost layer out (see the package documentation).
const (
	// KindContentMismatch: the stored content does not hash to the stored leaf hash, the event
	// ID column disagrees with the content, or content is missing without being pruned.
	KindContentMismatch = "content_mismatch"
	// KindColumnMismatch: a value stored beside the content (tenant, actor, action, target,
	// outcome, request id, time) differs from the content, which the leaf hash vouches for.
	KindColumnMismatch = "column_mismatch"
	// KindMissingEntry: an index in 0..size-1 has no entry, or a checkpoint covers more entries
	// than the log holds (the tail was cut off).
	KindMissingEntry = "missing_entry"
	// KindOutOfOrder: entries arrive out of index order, an index repeats, or an entry lies
	// beyond the log size.
	KindOutOfOrder = "out_of_order"
	// KindHashMismatch: a stored tree hash differs from the one recomputed from the leaves, or
	// is missing; in a bundle, an inclusion proof does not lead to the checkpoint root.
	KindHashMismatch = "hash_mismatch"
	// KindBadSignature: a checkpoint is not validly signed by the log key for this origin
	// (forged or foreign signature, another log's origin, malformed note).
	KindBadSignature = "bad_signature"
	// KindCheckpointMismatch: a validly signed checkpoint's root differs from the root
	// recomputed from the stored entries at its size.
	KindCheckpointMismatch = "checkpoint_mismatch"
	// KindInconsistentCheckpoint: validly signed checkpoints contradict each other (a later one
	// is smaller, or two of the same size have different roots): the log key signed a fork.
	KindInconsistentCheckpoint = "inconsistent_checkpoint"
	// KindUnsequenced: events were recorded but left outside the log (no leaf, no checkpoint
	// protects them) longer than a few sequencer intervals while no sequencer runs. Verify does
	// not report it (a Source holds only the log); the store's checker (`tutela audit verify`) does.
	KindUnsequenced = "unsequenced"
)

// MaxReportedFailures bounds Report.Failures; Report.FailureCount has the full count.
const MaxReportedFailures = 100

// Failure is one verification failure.
type Failure struct {
	// Index is the entry index concerned, or -1 for a failure of a checkpoint as a whole.
	Index   int64
	EventID string
	Kind    string
	Detail  string
	// TreeSize is the tree size a checkpoint claims, for checkpoint failures; otherwise 0.
	TreeSize int64
}

// Report is the result of Verify or VerifyBundle.
type Report struct {
	Origin string
	Size   int64
	// Root is the root recomputed from the entries at Size; zero when the entries could not be
	// put in order.
	Root tlog.Hash
	// Pruned counts entries whose content was pruned; only their leaf hash was checked.
	Pruned int
	// Checkpoints and Published count the stored and published checkpoints that verified.
	Checkpoints int
	Published   int
	// Covered is the largest tree size a verified checkpoint commits to. Entries at or beyond it
	// are protected by the hash structure only, not yet by a signature.
	Covered int64
	// Failures holds the first MaxReportedFailures failures: entry failures by index, then
	// checkpoint failures in the order checked. Failures[0] is the one to investigate first.
	Failures     []Failure
	FailureCount int
	OK           bool
}

// storedHashBatch is how many stored hashes Verify reads per HashStore call.
const storedHashBatch = 8192

// maxLogSize bounds the size a Source may claim, far above any real log, so that index
// arithmetic (about 2 stored hashes per entry) cannot overflow.
const maxLogSize = 1 << 50

// Verify checks the whole log in src against the log key vkey and origin: it recomputes every
// leaf hash from the stored content, every stored tree hash from the leaves (in memory, about
// 64 bytes per entry), and every checkpoint root from the tree, and it checks every stored and
// every published checkpoint — those kept outside the database, which an attacker who rewrites
// the database cannot change. It streams the entries once. The returned error is for
// operational problems (bad key, storage errors, cancellation); evidence of tampering is
// reported in the Report, never as an error.
func Verify(ctx context.Context, src Source, vkey, origin string, published [][]byte) (*Report, error) {
	if _, err := note.NewVerifier(vkey); err != nil {
		return nil, ErrInvalidKey
	}
	size, err := src.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit verify: log size: %w", err)
	}
	if size < 0 || size > maxLogSize {
		return nil, fmt.Errorf("audit verify: implausible log size %d", size)
	}
	v := &verifier{
		ctx:     ctx,
		size:    size,
		stored:  src.Hashes(),
		aligned: true,
		batch:   storedHashBatch,
		late:    map[int64]string{},
		rep:     &Report{Origin: origin, Size: size},
	}
	v.tree.Hashes = make(MemHashes, 0, tlog.StoredHashCount(min(size, 1<<25)))
	if err := src.Entries(ctx, v.entry); err != nil {
		return nil, fmt.Errorf("audit verify: reading entries: %w", err)
	}
	v.finishEntries()

	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit verify: reading checkpoints: %w", err)
	}
	seen := map[int64]tlog.Hash{}
	var prev *Checkpoint
	for i, signed := range cps {
		c, ok, err := v.checkpoint(fmt.Sprintf("stored checkpoint #%d", i), signed, vkey, origin, seen)
		if err != nil {
			return nil, err
		}
		if c != nil && prev != nil && c.Size < prev.Size {
			v.failCheckpoint(Failure{Index: -1, Kind: KindInconsistentCheckpoint, TreeSize: c.Size,
				Detail: fmt.Sprintf("stored checkpoint #%d has size %d, smaller than the %d of the one before it: the log went backwards", i, c.Size, prev.Size)})
		}
		if c != nil {
			prev = c
		}
		if ok {
			v.rep.Checkpoints++
		}
	}
	for i, signed := range published {
		_, ok, err := v.checkpoint(fmt.Sprintf("published checkpoint #%d", i), signed, vkey, origin, seen)
		if err != nil {
			return nil, err
		}
		if ok {
			v.rep.Published++
		}
	}
	return v.report(), nil
}

type verifier struct {
	ctx    context.Context
	size   int64
	stored HashStore
	rep    *Report

	tree    Appender // recomputed tree of the in-order prefix
	aligned bool     // entries so far were exactly 0..next-1 (duplicates aside)
	next    int64    // one past the highest index seen

	buf      []tlog.Hash // stored hashes [bufStart, bufStart+len(buf))
	bufStart int64
	batch    int64 // stored hashes per read
	idxBuf   []int64

	gaps        []gap            // index ranges skipped when a higher index came first
	late        map[int64]string // indexes (and event IDs) that arrived after a higher one
	seenEntries int64

	entryFails, cpFails []Failure
	count               int
}

type gap struct{ lo, hi int64 }

func (v *verifier) failEntry(f Failure) {
	v.count++
	if len(v.entryFails) < MaxReportedFailures {
		v.entryFails = append(v.entryFails, f)
	}
}

func (v *verifier) failCheckpoint(f Failure) {
	v.count++
	if len(v.cpFails) < MaxReportedFailures {
		v.cpFails = append(v.cpFails, f)
	}
}

func (v *verifier) entry(e Entry) error {
	if v.seenEntries++; v.seenEntries%4096 == 0 {
		if err := v.ctx.Err(); err != nil {
			return err
		}
	}
	v.checkContent(e)

	switch {
	case e.Index < 0 || e.Index >= v.size:
		v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindOutOfOrder,
			Detail: fmt.Sprintf("entry index %d is outside the log of size %d", e.Index, v.size)})
		return nil
	case e.Index > v.next:
		v.gaps = append(v.gaps, gap{v.next, e.Index})
		v.aligned = false
		v.next = e.Index + 1
		return nil
	case e.Index < v.next:
		if v.inGap(e.Index) {
			if _, dup := v.late[e.Index]; !dup {
				v.late[e.Index] = e.EventID
				return nil
			}
		}
		v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindOutOfOrder,
			Detail: fmt.Sprintf("a second entry has index %d", e.Index)})
		return nil
	}
	v.next++
	if !v.aligned {
		return nil
	}
	// The tree is built from the stored leaf hash: checkContent has already tied the content to
	// it, so a content change is reported once, as content_mismatch, and not again as every
	// tree hash above it.
	start := int64(len(v.tree.Hashes))
	if _, err := v.tree.Append(e.LeafHash); err != nil {
		return err
	}
	return v.compareStored(e, start)
}

func (v *verifier) checkContent(e Entry) {
	if e.Canonical == nil {
		if !e.Pruned {
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindContentMismatch,
				Detail: "entry has no content and is not marked pruned"})
			return
		}
		v.rep.Pruned++
		return
	}
	if LeafHash(e.Canonical) != e.LeafHash {
		v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindContentMismatch,
			Detail: "leaf hash recomputed from stored content differs from stored leaf hash"})
		return
	}
	if e.EventID != "" {
		id, escaped, ok := canonicalID(e.Canonical)
		if !ok || escaped || string(id) != e.EventID {
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindContentMismatch,
				Detail: "event id column differs from the id in the stored content"})
			return
		}
	}
	if len(e.Columns) > 0 {
		if c, want, bad := mismatchedColumn(e.Canonical, e.Columns); bad {
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindColumnMismatch,
				Detail: fmt.Sprintf("column %s is %s but the stored content says %s", c.Name, quoteShort(c.Value), quoteShort(want))})
		}
	}
}

// mismatchedColumn returns the first column whose value differs from the content's member (and
// the content's value). The content has already been tied to the leaf hash, so it is the truth.
func mismatchedColumn(canonical []byte, cols []Column) (Column, string, bool) {
	members, ok := topLevelMembers(canonical)
	for _, c := range cols {
		if !ok {
			return c, "(unreadable)", true
		}
		raw, found := members[c.Member]
		if !found || len(raw) < 2 || raw[0] != '"' {
			return c, "(no such member)", true
		}
		var want string
		if bytes.IndexByte(raw, '\\') < 0 {
			want = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &want); err != nil {
			return c, "(unreadable)", true
		}
		if want != c.Value {
			return c, want, true
		}
	}
	return Column{}, "", false
}

// topLevelMembers splits a canonical encoding into its top-level members (raw JSON values).
func topLevelMembers(b []byte) (map[string][]byte, bool) {
	if len(b) < 2 || b[0] != '{' {
		return nil, false
	}
	out := make(map[string][]byte, 16)
	i := 1
	for i < len(b) {
		if b[i] != '"' {
			return nil, false
		}
		kEnd, kEsc := skipString(b, i)
		if kEnd < 0 || kEnd >= len(b) || b[kEnd] != ':' || kEsc {
			return nil, false
		}
		vStart := kEnd + 1
		vEnd := skipValue(b, vStart)
		if vEnd < 0 || vEnd >= len(b) {
			return nil, false
		}
		out[string(b[i+1:kEnd-1])] = b[vStart:vEnd]
		switch b[vEnd] {
		case ',':
			i = vEnd + 1
		case '}':
			return out, vEnd == len(b)-1
		default:
			return nil, false
		}
	}
	return nil, false
}

// quoteShort quotes a value for a failure detail, cut to a readable length.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = truncateUTF8(s, 80) + "…"
	}
	return strconv.Quote(s)
}

// compareStored compares the hashes just computed for e, at stored positions from start on,
// with the stored ones.
func (v *verifier) compareStored(e Entry, start int64) error {
	computed := v.tree.Hashes[start:]
	end := start + int64(len(computed))
	if end > v.bufStart+int64(len(v.buf)) || start < v.bufStart {
		if err := v.fill(start, end); err != nil {
			if !errors.Is(err, ErrHashNotFound) {
				return fmt.Errorf("reading stored tree hashes: %w", err)
			}
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindHashMismatch,
				Detail: fmt.Sprintf("stored tree hashes %d..%d are missing", start, end-1)})
			return nil
		}
	}
	for i, h := range computed {
		if v.buf[start-v.bufStart+int64(i)] != h {
			level, n := tlog.SplitStoredHashIndex(start + int64(i))
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindHashMismatch,
				Detail: fmt.Sprintf("stored tree hash %d (level %d, node %d) differs from the one recomputed from the leaves", start+int64(i), level, n)})
			return nil
		}
	}
	return nil
}

// fill reads stored hashes from start on, at least up to end, in one batch. If the batch fails
// because some hash is missing it retries with just [start, end), so the failure lands on the
// entry whose hashes are missing, and halves later batches so a truncated hash table costs one
// read per entry rather than one failed batch per entry.
func (v *verifier) fill(start, end int64) error {
	limit := min(max(end, start+v.batch), tlog.StoredHashCount(v.size))
	err := v.read(start, limit)
	if errors.Is(err, ErrHashNotFound) && limit > end {
		v.batch /= 2
		err = v.read(start, end)
	}
	return err
}

func (v *verifier) read(start, end int64) error {
	v.idxBuf = v.idxBuf[:0]
	for i := start; i < end; i++ {
		v.idxBuf = append(v.idxBuf, i)
	}
	hs, err := v.stored.ReadHashes(v.ctx, v.idxBuf)
	if err != nil {
		v.buf, v.bufStart = nil, 0
		return err
	}
	if len(hs) != len(v.idxBuf) {
		return fmt.Errorf("HashStore returned %d hashes for %d indexes", len(hs), len(v.idxBuf))
	}
	v.buf, v.bufStart = hs, start
	return nil
}

// inGap reports whether index i lies in a gap. Gaps are recorded in increasing, disjoint order
// (each starts at the then-highest index + 1), so a binary search finds the candidate; a hostile
// ordering with many gaps costs O(log gaps) per entry, not O(gaps).
func (v *verifier) inGap(i int64) bool {
	k, _ := slices.BinarySearchFunc(v.gaps, i, func(g gap, i int64) int {
		switch {
		case g.hi <= i:
			return -1
		case g.lo > i:
			return 1
		}
		return 0
	})
	return k < len(v.gaps) && v.gaps[k].lo <= i && i < v.gaps[k].hi
}

// finishEntries turns the gaps left in the index sequence into failures: a gap later filled is
// a reordering, reported at its first index; what stayed empty is missing.
func (v *verifier) finishEntries() {
	lates := make([]int64, 0, len(v.late))
	for i := range v.late {
		lates = append(lates, i)
	}
	slices.Sort(lates)
	for _, g := range v.gaps {
		lo, _ := slices.BinarySearch(lates, g.lo)
		hi, _ := slices.BinarySearch(lates, g.hi)
		filled := lates[lo:hi]
		if len(filled) > 0 {
			first := filled[0]
			v.failEntry(Failure{Index: first, EventID: v.late[first], Kind: KindOutOfOrder,
				Detail: fmt.Sprintf("entry %d came after entry %d", first, g.hi)})
		}
		missingFrom := g.lo
		for _, f := range append(filled, g.hi) {
			if f > missingFrom {
				v.failEntry(Failure{Index: missingFrom, Kind: KindMissingEntry,
					Detail: fmt.Sprintf("entries %d..%d are missing", missingFrom, f-1)})
			}
			missingFrom = f + 1
		}
	}
	if v.next < v.size {
		v.failEntry(Failure{Index: v.next, Kind: KindMissingEntry,
			Detail: fmt.Sprintf("entries %d..%d are missing (log size %d)", v.next, v.size-1, v.size)})
	}
	if v.aligned && v.tree.Size() == v.size {
		root, err := v.tree.Root()
		if err == nil {
			v.rep.Root = root
		}
	}
}

// checkpoint verifies one signed checkpoint. It returns the checkpoint if its signature and
// origin verified, and ok if its root also matched the recomputed tree.
func (v *verifier) checkpoint(label string, signed []byte, vkey, origin string, seen map[int64]tlog.Hash) (*Checkpoint, bool, error) {
	c, err := OpenCheckpoint(signed, vkey, origin)
	if err != nil {
		v.failCheckpoint(Failure{Index: -1, Kind: KindBadSignature, Detail: label + ": " + err.Error()})
		return nil, false, nil
	}
	ok := false
	switch {
	case c.Size > v.size:
		v.failEntry(Failure{Index: v.size, Kind: KindMissingEntry, TreeSize: c.Size,
			Detail: fmt.Sprintf("%s covers %d entries but the log holds %d: entries were removed from the end", label, c.Size, v.size)})
	case c.Size <= v.tree.Size():
		root, err := tlog.TreeHash(c.Size, tlog.HashReaderFunc(v.tree.read))
		if err != nil {
			return nil, false, err
		}
		if root != c.Root {
			v.failCheckpoint(Failure{Index: -1, Kind: KindCheckpointMismatch, TreeSize: c.Size,
				Detail: fmt.Sprintf("%s has root %s at size %d, but the entries hash to %s", label, c.Root, c.Size, root)})
		} else {
			ok = true
			v.rep.Covered = max(v.rep.Covered, c.Size)
		}
	default:
		// Beyond the in-order prefix: the entries already failed; the root cannot be recomputed.
	}
	if prev, dup := seen[c.Size]; dup && prev != c.Root {
		v.failCheckpoint(Failure{Index: -1, Kind: KindInconsistentCheckpoint, TreeSize: c.Size,
			Detail: fmt.Sprintf("%s and an earlier validly signed checkpoint have different roots at size %d: the log key signed a fork", label, c.Size)})
	} else {
		seen[c.Size] = c.Root
	}
	return &c, ok, nil
}

func (v *verifier) report() *Report {
	slices.SortStableFunc(v.entryFails, func(a, b Failure) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	fails := append(v.entryFails, v.cpFails...)
	if len(fails) > MaxReportedFailures {
		fails = fails[:MaxReportedFailures]
	}
	v.rep.Failures = fails
	v.rep.FailureCount = v.count
	v.rep.OK = v.count == 0
	return v.rep
}

// canonicalID finds the top-level "id" member of a canonical event encoding without decoding the
// rest, and returns the bytes between its quotes and whether they contain an escape. It must
// survive arbitrary bytes: a tampered row is exactly what Verify reads.
func canonicalID(b []byte) (id []byte, escaped, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return nil, false, false
	}
	i := 1
	for i < len(b) {
		if b[i] != '"' {
			return nil, false, false
		}
		kEnd, kEsc := skipString(b, i)
		if kEnd < 0 || kEnd >= len(b) || b[kEnd] != ':' {
			return nil, false, false
		}
		vStart := kEnd + 1
		vEnd := skipValue(b, vStart)
		if vEnd < 0 {
			return nil, false, false
		}
		if !kEsc && bytes.Equal(b[i+1:kEnd-1], []byte("id")) {
			if b[vStart] != '"' {
				return nil, false, false
			}
			_, esc := skipString(b, vStart)
			return b[vStart+1 : vEnd-1], esc, true
		}
		if vEnd >= len(b) {
			return nil, false, false
		}
		if b[vEnd] != ',' {
			return nil, false, false // end of object (or garbage) without an "id"
		}
		i = vEnd + 1
	}
	return nil, false, false
}

// skipString returns the index just past the string starting at b[i] == '"', and whether it
// holds an escape; -1 if unterminated.
func skipString(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return -1, esc
}

// skipValue returns the index just past the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, _ := skipString(b, j)
			if end < 0 {
				return -1
			}
			if depth == 0 {
				return end
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j // end of a scalar inside the enclosing container
			}
			if depth--; depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	if depth == 0 && i < len(b) {
		return len(b)
	}
	return -1
}
