package password

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1" // #nosec G505 -- the breach index holds SHA-1 hashes, the HIBP corpus format
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
)

// Offline breach index file format, all integers big-endian:
//
//	magic   [8]byte  "TUTELABR"
//	version uint32   1
//	count   uint64   number of records
//	records [count][20]byte  SHA-1 digests, sorted ascending, no duplicates
//
// Fixed-size sorted records let OpenIndex binary-search the file with ReadAt instead of
// loading it: the full HaveIBeenPwned corpus is ~1 billion hashes, ~20 GB in this format.
const (
	indexMagic     = "TUTELABR"
	indexVersion   = 1
	indexHeaderLen = 8 + 4 + 8
	indexRecordLen = sha1.Size
)

// ErrCorruptIndex is returned by OpenIndex for a file that is not a valid index.
var ErrCorruptIndex = errors.New("password: corrupt breach index")

// ImportIndex reads SHA-1 hashes of breached passwords from r, one per line as 40 hex digits in
// either case, optionally followed by ":COUNT" (the HaveIBeenPwned download format), and writes
// the sorted, deduplicated index to w. Blank lines are skipped, as are lines with a count of 0
// (padding, not a breach). It returns the number of distinct hashes written. A malformed line
// fails the import with an error naming its line number.
//
// The importer sorts in memory rather than externally: it needs about 20 bytes of RAM per input
// hash (up to twice that while the slice grows), so ~20–40 GB for the full HaveIBeenPwned corpus
// (~1 billion hashes, ~38 GB of text). Smaller lists, or a subset such as hashes seen at least
// N times, import on an ordinary machine.
func ImportIndex(r io.Reader, w io.Writer) (n int, err error) {
	var hashes [][indexRecordLen]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		digest, count, hasCount := bytes.Cut(text, []byte(":"))
		var h [indexRecordLen]byte
		if len(digest) != 2*indexRecordLen {
			return 0, fmt.Errorf("password: index import: line %d: want 40 hex digits", line)
		}
		if _, err := hex.Decode(h[:], digest); err != nil {
			return 0, fmt.Errorf("password: index import: line %d: want 40 hex digits", line)
		}
		if hasCount {
			c, err := strconv.ParseUint(string(count), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("password: index import: line %d: bad count", line)
			}
			if c == 0 {
				continue
			}
		}
		hashes = append(hashes, h)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return 0, fmt.Errorf("password: index import: line %d: line too long", line+1)
		}
		return 0, fmt.Errorf("password: index import: %w", err)
	}

	slices.SortFunc(hashes, func(a, b [indexRecordLen]byte) int { return bytes.Compare(a[:], b[:]) })
	hashes = slices.Compact(hashes)

	bw := bufio.NewWriterSize(w, 1<<16)
	var hdr [indexHeaderLen]byte
	copy(hdr[:], indexMagic)
	binary.BigEndian.PutUint32(hdr[8:], indexVersion)
	binary.BigEndian.PutUint64(hdr[12:], uint64(len(hashes)))
	if _, err := bw.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("password: index import: %w", err)
	}
	for i := range hashes {
		if _, err := bw.Write(hashes[i][:]); err != nil {
			return 0, fmt.Errorf("password: index import: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("password: index import: %w", err)
	}
	return len(hashes), nil
}

// Index is an offline breach index written by ImportIndex. Lookups binary-search the file with
// ReadAt (about log2(count) reads of 20 bytes, 30 for the full corpus), so the index is never
// loaded into memory; the page cache keeps the hot upper levels of the search. It is safe for
// concurrent use.
type Index struct {
	r     io.ReaderAt
	c     io.Closer // nil for an index in memory
	count int64

	mu     sync.RWMutex // guards closed against lookups racing Close
	closed bool
}

// OpenIndex opens an index file and checks its header and that its size matches the record
// count, so a truncated or foreign file is rejected here (ErrCorruptIndex) rather than giving
// wrong answers later. The records' order is not checked, as that would read the whole file.
func OpenIndex(path string) (*Index, error) {
	f, err := os.Open(path) // #nosec G304 -- the breach index file the operator configures
	if err != nil {
		return nil, fmt.Errorf("password: open breach index: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("password: open breach index: %w", err)
	}
	ix, err := newIndex(f, fi.Size(), f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return ix, nil
}

func newIndex(r io.ReaderAt, size int64, c io.Closer) (*Index, error) {
	var hdr [indexHeaderLen]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("%w: short header", ErrCorruptIndex)
	}
	if string(hdr[:8]) != indexMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptIndex)
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != indexVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorruptIndex, v)
	}
	count := binary.BigEndian.Uint64(hdr[12:])
	body := size - indexHeaderLen
	if count > uint64(body)/indexRecordLen || int64(count)*indexRecordLen != body { // #nosec G115 -- body >= 0 (size checked against the header); count is compared before use
		return nil, fmt.Errorf("%w: size does not match record count", ErrCorruptIndex)
	}
	return &Index{r: r, c: c, count: int64(count)}, nil // #nosec G115 -- count <= body/indexRecordLen was checked above
}

// Len returns the number of hashes in the index.
func (ix *Index) Len() int64 { return ix.count }

// Breached reports whether the SHA-1 of pw is in the index, checking the NFKC form and, when
// different, the form as typed (see RangeClient.Breached).
func (ix *Index) Breached(ctx context.Context, pw string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.closed {
		return false, errors.New("password: breach index is closed")
	}
	for _, form := range breachForms(pw) {
		hit, err := ix.contains(sha1.Sum([]byte(form))) // #nosec G401 -- the breach index holds SHA-1 hashes, the HIBP corpus format; not used for integrity
		if err != nil || hit {
			return hit, err
		}
	}
	return false, nil
}

func (ix *Index) contains(want [indexRecordLen]byte) (bool, error) {
	var rec [indexRecordLen]byte
	lo, hi := int64(0), ix.count // search [lo, hi)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := ix.r.ReadAt(rec[:], indexHeaderLen+mid*indexRecordLen); err != nil {
			return false, fmt.Errorf("password: read breach index: %w", err)
		}
		switch c := bytes.Compare(rec[:], want[:]); {
		case c == 0:
			return true, nil
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return false, nil
}

// Close closes the index file. Lookups after Close fail.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	if ix.c == nil {
		return nil
	}
	return ix.c.Close()
}
