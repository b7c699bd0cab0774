package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// HashStore reads the stored hashes of the log's Merkle tree. Index i is a position in the dense
// ordering of tlog.StoredHashIndex: record n's leaf hash lives at StoredHashIndex(0, n), and the
// hashes of the subtrees record n completes follow it. ReadHashes returns one hash per index, in
// the same order, or an error; an index that was never written yields an error wrapping
// ErrHashNotFound.
type HashStore interface {
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// ErrHashNotFound reports a stored-hash index that was never written.
var ErrHashNotFound = errors.New("audit: stored tree hash not found")

// ErrInvalidProof reports an inclusion or consistency proof that does not verify.
var ErrInvalidProof = errors.New("audit: invalid transparency proof")

// EmptyTreeHash is the root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
var EmptyTreeHash = tlog.Hash{
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
}

// hashReader adapts a HashStore to tlog.HashReader for one call.
func hashReader(ctx context.Context, hs HashStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return hs.ReadHashes(ctx, indexes)
	})
}

// StoredHashesFor returns the hashes to store when appending record n with the given leaf hash:
// the leaf itself and the hashes of the subtrees it completes, to be written at consecutive
// positions starting at tlog.StoredHashIndex(0, n). existing must hold the hashes of records
// 0..n-1; at most log2(n) of them are read.
func StoredHashesFor(ctx context.Context, n int64, leaf tlog.Hash, existing HashStore) ([]tlog.Hash, error) {
	if n < 0 {
		return nil, fmt.Errorf("audit: negative record index %d", n)
	}
	return tlog.StoredHashesForRecordHash(n, leaf, hashReader(ctx, existing))
}

// TreeHash returns the root hash of the tree holding the first size records.
func TreeHash(ctx context.Context, size int64, hs HashStore) (tlog.Hash, error) {
	if size < 0 {
		return tlog.Hash{}, fmt.Errorf("audit: negative tree size %d", size)
	}
	return tlog.TreeHash(size, hashReader(ctx, hs))
}

// ProveInclusion returns the RFC 6962 inclusion proof (audit path) of record index in the tree
// of the given size.
func ProveInclusion(ctx context.Context, size, index int64, hs HashStore) (tlog.RecordProof, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("audit: record %d is not in a tree of size %d", index, size)
	}
	return tlog.ProveRecord(size, index, hashReader(ctx, hs))
}

// ProveConsistency returns the RFC 6962 consistency proof that the tree of size to extends the
// tree of size from. The proof is empty when from is 0 or equals to.
func ProveConsistency(ctx context.Context, from, to int64, hs HashStore) (tlog.TreeProof, error) {
	if from < 0 || from > to {
		return nil, fmt.Errorf("audit: no consistency proof from size %d to size %d", from, to)
	}
	if from == 0 {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(to, from, hashReader(ctx, hs))
}

// CheckInclusion verifies that proof shows the record with leaf hash leaf at position index of
// the tree of the given size and root. Failures wrap ErrInvalidProof.
func CheckInclusion(proof tlog.RecordProof, size int64, root tlog.Hash, index int64, leaf tlog.Hash) error {
	if index < 0 || index >= size {
		return fmt.Errorf("%w: record %d is not in a tree of size %d", ErrInvalidProof, index, size)
	}
	if err := tlog.CheckRecord(proof, size, root, index, leaf); err != nil {
		return fmt.Errorf("%w: record %d in tree of size %d", ErrInvalidProof, index, size)
	}
	return nil
}

// CheckConsistency verifies that proof shows the tree (to, toRoot) extends the tree (from,
// fromRoot): every record of the older tree is in the newer one, unchanged and in place.
// Failures wrap ErrInvalidProof.
func CheckConsistency(proof tlog.TreeProof, from int64, fromRoot tlog.Hash, to int64, toRoot tlog.Hash) error {
	switch {
	case from < 0 || from > to:
		return fmt.Errorf("%w: no consistency from size %d to size %d", ErrInvalidProof, from, to)
	case from == 0:
		// Every tree extends the empty tree, but only if the claimed empty root is the real one.
		if len(proof) != 0 || fromRoot != EmptyTreeHash {
			return fmt.Errorf("%w: bad proof from the empty tree", ErrInvalidProof)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, to, toRoot, from, fromRoot); err != nil {
		return fmt.Errorf("%w: tree of size %d does not extend tree of size %d", ErrInvalidProof, to, from)
	}
	return nil
}

// MemHashes is an in-memory HashStore: element i is the hash at stored-hash index i. Use it in
// tests and wherever a whole tree fits in memory (32 bytes × ~2 per record).
type MemHashes []tlog.Hash

// ReadHashes implements HashStore.
func (m MemHashes) ReadHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("%w: index %d", ErrHashNotFound, x)
		}
		out[i] = m[x]
	}
	return out, nil
}

// Appender grows a tree in memory, one leaf at a time.
type Appender struct {
	Hashes MemHashes
	size   int64
	// scratch is reused by read so appending does not allocate per record for the reads.
	scratch []tlog.Hash
	reader  tlog.HashReader
}

// Size returns the number of records appended.
func (a *Appender) Size() int64 { return a.size }

// Append adds a record with the given leaf hash and returns its index.
func (a *Appender) Append(leaf tlog.Hash) (int64, error) {
	if a.reader == nil {
		a.reader = tlog.HashReaderFunc(a.read)
	}
	hs, err := tlog.StoredHashesForRecordHash(a.size, leaf, a.reader)
	if err != nil {
		return 0, err
	}
	a.Hashes = append(a.Hashes, hs...)
	a.size++
	return a.size - 1, nil
}

// Root returns the root hash of the tree of all appended records. It fails only if Hashes was
// altered from outside.
func (a *Appender) Root() (tlog.Hash, error) {
	return tlog.TreeHash(a.size, hashReader(context.Background(), a.Hashes))
}

// read serves tlog's reads of earlier hashes from a reused buffer; tlog consumes the result
// before the next call.
func (a *Appender) read(indexes []int64) ([]tlog.Hash, error) {
	if cap(a.scratch) < len(indexes) {
		a.scratch = make([]tlog.Hash, len(indexes), max(64, len(indexes)))
	}
	out := a.scratch[:len(indexes)]
	for i, x := range indexes {
		if x < 0 || x >= int64(len(a.Hashes)) {
			return nil, fmt.Errorf("%w: index %d", ErrHashNotFound, x)
		}
		out[i] = a.Hashes[x]
	}
	return out, nil
}
