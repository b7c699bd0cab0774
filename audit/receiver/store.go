// Package receiver is the far end of audit shipping (ASVS 5.0 16.4.3): it accepts batches of
// the audit log (audit.Batch) from a Tutela shipper, verifies each against the log's public key
// and what it received before (audit.VerifyBatch), and keeps the entries, its tree and every
// accepted checkpoint in a directory on a system the Tutela operator need not control. A batch
// that does not verify changes nothing and is answered with the failure and the index.
//
// Run it with `tutela audit receive --listen ADDR --dir DIR --key VKEY` or embed Store and
// Handler. Store.Source makes the directory a log audit.Verify (and so `tutela audit verify`
// tooling) can check from scratch.
package receiver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela/audit"
	"tutela/vault"
)

// Files in a receiver's directory.
const (
	entriesFile    = "entries.jsonl" // one JSON line per entry, in index order
	hashesFile     = "hashes.bin"    // the stored tree hashes, 32 bytes each, tlog order
	stateFile      = "state.json"    // what has been verified, and how many bytes of each file
	checkpointsDir = "checkpoints"   // <size>.checkpoint, every accepted checkpoint
)

// state is state.json. The entry and hash files are appended before it is replaced (atomically),
// so bytes beyond its lengths are the remains of a batch interrupted before it was acknowledged,
// and Open cuts them off.
type state struct {
	audit.ShipState
	EntriesBytes int64 `json:"entries_bytes"`
	HashesBytes  int64 `json:"hashes_bytes"`
}

// entryLine is one line of entries.jsonl (the fields of an audit bundle's entry line).
type entryLine struct {
	Index     int64     `json:"index"`
	EventID   string    `json:"event_id"`
	Canonical []byte    `json:"canonical,omitempty"`
	Pruned    bool      `json:"pruned,omitempty"`
	LeafHash  tlog.Hash `json:"leaf_hash"`
}

// Store is a receiver's directory. One Store (one process) per directory.
type Store struct {
	dir    string
	vkey   string
	origin string

	mu      sync.Mutex
	st      state
	entries *os.File
	hashes  *os.File
	thin    *audit.CheckpointThinner
}

// ThinCheckpoints makes the store thin its checkpoints directory as the sequencer thins
// audit.checkpoint_dir (audit.ThinCheckpointDir: the first and the latest, the last of each hour
// for keepHourly, the last of each day before), once per hour of the accepted checkpoints' own
// times. keepHourly <= 0 keeps every checkpoint (the default). Call it before the first Apply.
func (s *Store) ThinCheckpoints(keepHourly time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thin = &audit.CheckpointThinner{Dir: filepath.Join(s.dir, checkpointsDir), KeepHourly: keepHourly}
}

// Open opens (creating if need be) the receiver directory dir for the log origin, whose
// checkpoints must verify under vkey, the log's public key obtained from its operator (`tutela
// audit key`), never from a batch.
func Open(dir, vkey, origin string) (*Store, error) {
	if _, err := audit.OpenCheckpoint(nil, vkey, origin); errors.Is(err, audit.ErrInvalidKey) {
		return nil, fmt.Errorf("audit receiver: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, checkpointsDir), 0o750); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, vkey: vkey, origin: origin}
	b, err := os.ReadFile(filepath.Join(dir, stateFile)) // #nosec G304 -- a fixed name in the directory the operator gives the receiver
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.st.CheckpointRoot = audit.EmptyTreeHash
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("audit receiver: %s: %w", stateFile, err)
		}
	}
	if s.entries, err = openTrimmed(filepath.Join(dir, entriesFile), s.st.EntriesBytes); err != nil {
		return nil, err
	}
	if s.hashes, err = openTrimmed(filepath.Join(dir, hashesFile), s.st.HashesBytes); err != nil {
		_ = s.entries.Close()
		return nil, err
	}
	if want := tlog.StoredHashIndex(0, s.st.Size) * tlog.HashSize; s.st.HashesBytes != want {
		_ = s.Close()
		return nil, fmt.Errorf("audit receiver: %s holds %d bytes of hashes for %d entries, want %d", stateFile,
			s.st.HashesBytes, s.st.Size, want)
	}
	return s, nil
}

// openTrimmed opens path for appending, cut to n bytes (a shorter file is damage, not a crash).
// A new file is created 0600: the entries are the audit log's.
func openTrimmed(path string, n int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- a fixed name in the directory the operator gives the receiver
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.Size() < n {
		_ = f.Close()
		return nil, fmt.Errorf("audit receiver: %s has %d bytes, %s says %d: the directory was damaged", path, fi.Size(), stateFile, n)
	}
	if err := f.Truncate(n); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// Close closes the directory's files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.entries.Close(), s.hashes.Close())
}

// State returns what the receiver has verified.
func (s *Store) State() audit.ShipState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ShipState
}

// Apply verifies b and, if it verifies, stores it. A refusal is an *audit.BatchError and leaves
// the directory unchanged; the returned state is the receiver's after the call either way.
func (s *Store) Apply(ctx context.Context, b *audit.Batch) (audit.ShipState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc, err := audit.VerifyBatch(ctx, s.st.ShipState, fileHashes{s.hashes, s.st.HashesBytes}, b, s.vkey, s.origin)
	if err != nil {
		return s.st.ShipState, err
	}
	if err := s.store(b, acc); err != nil {
		// The files may hold part of the batch beyond the lengths in state.json; cut them back
		// so the next batch appends in the right place.
		_ = s.entries.Truncate(s.st.EntriesBytes)
		_, _ = s.entries.Seek(s.st.EntriesBytes, io.SeekStart)
		_ = s.hashes.Truncate(s.st.HashesBytes)
		_, _ = s.hashes.Seek(s.st.HashesBytes, io.SeekStart)
		return s.st.ShipState, fmt.Errorf("audit receiver: storing batch: %w", err)
	}
	return s.st.ShipState, nil
}

func (s *Store) store(b *audit.Batch, acc *audit.Accepted) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, e := range b.Entries {
		if err := enc.Encode(entryLine(e)); err != nil {
			return err
		}
	}
	hb := make([]byte, 0, len(acc.Hashes)*tlog.HashSize)
	for _, h := range acc.Hashes {
		hb = append(hb, h[:]...)
	}
	if _, err := s.entries.Write(buf.Bytes()); err != nil {
		return err
	}
	if _, err := s.hashes.Write(hb); err != nil {
		return err
	}
	if err := errors.Join(s.entries.Sync(), s.hashes.Sync()); err != nil {
		return err
	}
	if err := audit.WriteCheckpointFile(filepath.Join(s.dir, checkpointsDir), acc.Checkpoint.Size, acc.Signed); err != nil {
		return err
	}
	next := state{ShipState: acc.State, EntriesBytes: s.st.EntriesBytes + int64(buf.Len()),
		HashesBytes: s.st.HashesBytes + int64(len(hb))}
	js, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := vault.WriteFileAtomic(filepath.Join(s.dir, stateFile), js, 0o600); err != nil {
		return err
	}
	s.st = next
	// After the batch is kept: a thinning that fails leaves more checkpoint files, never fewer,
	// and must not refuse a batch the store already holds (the next hour tries again).
	if t := acc.Checkpoint.Time; s.thin != nil && !t.IsZero() {
		_, _ = s.thin.Wrote(t)
	}
	return nil
}

// fileHashes reads stored hashes from the hashes file (the first n bytes are verified).
type fileHashes struct {
	f *os.File
	n int64
}

func (h fileHashes) ReadHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		off := x * tlog.HashSize
		if x < 0 || off+tlog.HashSize > h.n {
			return nil, fmt.Errorf("%w: index %d", audit.ErrHashNotFound, x)
		}
		if _, err := h.f.ReadAt(out[i][:], off); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Source returns the received log for audit.Verify: every entry, the tree hashes and every
// accepted checkpoint, as of now. Verify then recomputes everything from the entries, which
// checks the directory was not altered since it was received.
func (s *Store) Source() audit.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &source{s: s, st: s.st}
}

type source struct {
	s  *Store
	st state
}

func (src *source) Size(context.Context) (int64, error) { return src.st.Size, nil }

func (src *source) Hashes() audit.HashStore { return fileHashes{src.s.hashes, src.st.HashesBytes} }

func (src *source) Entries(ctx context.Context, fn func(audit.Entry) error) error {
	f, err := os.Open(filepath.Join(src.s.dir, entriesFile))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, src.st.EntriesBytes))
	sc.Buffer(make([]byte, 0, 64<<10), audit.MaxBundleLine)
	for sc.Scan() {
		var l entryLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("audit receiver: %s: %w", entriesFile, err)
		}
		if err := fn(audit.Entry{Index: l.Index, EventID: l.EventID, Canonical: l.Canonical, Pruned: l.Pruned,
			LeafHash: l.LeafHash}); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (src *source) Checkpoints(context.Context) ([][]byte, error) {
	// A checkpoint beyond the entries held was checked on receipt by a consistency proof;
	// Verify can only check those its entries reach.
	if src.st.Size == 0 {
		return nil, nil
	}
	return audit.ReadCheckpointDir(filepath.Join(src.s.dir, checkpointsDir), src.st.Size)
}
