package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// BundleFormat names the bundle format in its header line.
const BundleFormat = "tutela-audit-bundle/v1"

// LogOrigin names Tutela's audit log in its checkpoints (and its signing key). The same key
// signs other notes under other origins (compliance reports, the erasure ledger's heads), so
// whoever checks a checkpoint of the log passes this origin rather than one a file names.
const LogOrigin = "tutela/audit"

// Bounds enforced by ReadBundle, so a hostile bundle costs the auditor bounded memory per line.
const (
	// MaxBundleLine bounds one line: base64 of a MaxCanonicalSize event plus a 63-hash proof
	// fits with room to spare.
	MaxBundleLine = 256 << 10
	// MaxBundleEntries bounds the entries of one bundle; export larger ranges as several.
	MaxBundleEntries = 1 << 20
	// maxProofLen is the longest inclusion proof in a tree of up to 2^63 entries.
	maxProofLen = 63
)

// ErrMalformedBundle reports a bundle that cannot be read.
var ErrMalformedBundle = errors.New("audit: malformed bundle")

// Bundle is evidence for an auditor who has no access to the database: a contiguous range of
// entries, a signed checkpoint, and for each entry its inclusion proof in the checkpoint's tree.
// With the log's public key the auditor can check that each event is exactly what the log
// committed to, at that index, without trusting whoever handed over the bundle.
type Bundle struct {
	Origin string
	// PublicKey is the verifier key the exporter says signed Checkpoint. It is a label only:
	// VerifyBundle verifies with the key the auditor trusts and flags a bundle naming another.
	PublicKey  string
	Checkpoint []byte // signed checkpoint; its size is at least every entry index + 1
	Entries    []BundleEntry
}

// BundleEntry is one entry with its inclusion proof to the bundle's checkpoint.
type BundleEntry struct {
	Entry
	Proof tlog.RecordProof
}

// The wire format is JSON Lines (one JSON object per '\n'-terminated line), chosen so that a
// large range streams and every line can be bounded before it is parsed:
//
//	{"format":"tutela-audit-bundle/v1","origin":"…","public_key":"…","checkpoint":"<signed note>","entries":N}
//	{"index":0,"event_id":"…","canonical":"<base64>","pruned":false,"leaf_hash":"<base64>","proof":["<base64>",…]}
//	… N entry lines in total
//
// Canonical bytes travel as base64 so they arrive byte for byte; hashes are base64 as in
// checkpoints.
type bundleHeader struct {
	Format     string `json:"format"`
	Origin     string `json:"origin"`
	PublicKey  string `json:"public_key"`
	Checkpoint string `json:"checkpoint"`
	Entries    int    `json:"entries"`
}

type bundleLine struct {
	Index     int64       `json:"index"`
	EventID   string      `json:"event_id"`
	Canonical []byte      `json:"canonical"`
	Pruned    bool        `json:"pruned"`
	LeafHash  tlog.Hash   `json:"leaf_hash"`
	Proof     []tlog.Hash `json:"proof"`
}

// BuildBundle makes a bundle of entries (a contiguous range, ascending) with inclusion proofs
// from hs to the tree of the signed checkpoint, which must verify under vkey for origin. It
// checks each proof before returning, so a log that is already inconsistent cannot produce a
// bundle that looks authoritative.
func BuildBundle(ctx context.Context, hs HashStore, checkpoint []byte, vkey, origin string, entries []Entry) (Bundle, error) {
	c, err := OpenCheckpoint(checkpoint, vkey, origin)
	if err != nil {
		return Bundle{}, err
	}
	b := Bundle{Origin: origin, PublicKey: vkey, Checkpoint: checkpoint, Entries: make([]BundleEntry, 0, len(entries))}
	for i, e := range entries {
		if i > 0 && e.Index != entries[i-1].Index+1 {
			return Bundle{}, fmt.Errorf("audit bundle: entries are not contiguous at index %d", e.Index)
		}
		p, err := ProveInclusion(ctx, c.Size, e.Index, hs)
		if err != nil {
			return Bundle{}, fmt.Errorf("audit bundle: proving entry %d: %w", e.Index, err)
		}
		if err := CheckInclusion(p, c.Size, c.Root, e.Index, e.LeafHash); err != nil {
			return Bundle{}, fmt.Errorf("audit bundle: entry %d does not verify against the checkpoint: %w", e.Index, err)
		}
		b.Entries = append(b.Entries, BundleEntry{Entry: e, Proof: p})
	}
	return b, nil
}

// WriteBundle writes b in the JSON Lines format described above.
func WriteBundle(w io.Writer, b Bundle) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bundleHeader{Format: BundleFormat, Origin: b.Origin, PublicKey: b.PublicKey,
		Checkpoint: string(b.Checkpoint), Entries: len(b.Entries)}); err != nil {
		return err
	}
	for _, e := range b.Entries {
		if err := enc.Encode(bundleLine{Index: e.Index, EventID: e.EventID, Canonical: e.Canonical,
			Pruned: e.Pruned, LeafHash: e.LeafHash, Proof: e.Proof}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadBundle reads a bundle written by WriteBundle. It checks structure and bounds only (line
// and entry limits, the declared entry count, no unknown fields, nothing after the last entry);
// VerifyBundle checks what the bundle proves. The limits bound each line, not the whole input:
// wrap r in an io.LimitReader to cap the total read from an untrusted source.
func ReadBundle(r io.Reader) (Bundle, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxBundleLine)
	next := func(v any) error {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformedBundle, err)
			}
			return fmt.Errorf("%w: unexpected end", ErrMalformedBundle)
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformedBundle, err)
		}
		if dec.More() {
			return fmt.Errorf("%w: trailing data on a line", ErrMalformedBundle)
		}
		return nil
	}
	var h bundleHeader
	if err := next(&h); err != nil {
		return Bundle{}, err
	}
	if h.Format != BundleFormat {
		return Bundle{}, fmt.Errorf("%w: format %q, want %q", ErrMalformedBundle, h.Format, BundleFormat)
	}
	if h.Entries < 0 || h.Entries > MaxBundleEntries {
		return Bundle{}, fmt.Errorf("%w: %d entries, limit %d", ErrMalformedBundle, h.Entries, MaxBundleEntries)
	}
	if len(h.Checkpoint) > MaxSignedCheckpointSize {
		return Bundle{}, fmt.Errorf("%w: checkpoint too large", ErrMalformedBundle)
	}
	b := Bundle{Origin: h.Origin, PublicKey: h.PublicKey, Checkpoint: []byte(h.Checkpoint),
		Entries: make([]BundleEntry, 0, min(h.Entries, 4096))}
	for range h.Entries {
		var l bundleLine
		if err := next(&l); err != nil {
			return Bundle{}, err
		}
		if len(l.Canonical) > MaxCanonicalSize || len(l.Proof) > maxProofLen {
			return Bundle{}, fmt.Errorf("%w: entry %d over size limits", ErrMalformedBundle, l.Index)
		}
		b.Entries = append(b.Entries, BundleEntry{
			Entry: Entry{Index: l.Index, EventID: l.EventID, Canonical: l.Canonical, Pruned: l.Pruned, LeafHash: l.LeafHash},
			Proof: l.Proof,
		})
	}
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) != 0 {
			return Bundle{}, fmt.Errorf("%w: data after the last entry", ErrMalformedBundle)
		}
	}
	if err := sc.Err(); err != nil {
		return Bundle{}, fmt.Errorf("%w: %v", ErrMalformedBundle, err)
	}
	return b, nil
}

// VerifyBundle checks b against trustedVKey, the log key the auditor obtained independently —
// never the one the bundle carries — and origin, the log's origin (LogOrigin for Tutela's
// audit log) — never the one the bundle names: the audit key also signs compliance reports and
// erasure-ledger heads, and such a note wrapped in a bundle must not pass for the log's
// checkpoint. It checks the checkpoint's signature and origin, that the bundle holds at least one
// entry (an export always does; an empty bundle proves nothing about the log), that the entries
// are contiguous and inside the checkpoint's tree, each entry's content against its leaf hash,
// and each leaf's inclusion proof against the signed root. A range that does not start at 0 is
// legitimate (`tutela audit export --from N --to M`). Failures use the kinds of Verify; the
// error is only for an unusable trustedVKey.
func VerifyBundle(b Bundle, trustedVKey, origin string) (*Report, error) {
	if _, err := note.NewVerifier(trustedVKey); err != nil {
		return nil, ErrInvalidKey
	}
	v := &verifier{rep: &Report{Origin: origin}}
	if b.PublicKey != "" && b.PublicKey != trustedVKey {
		v.failCheckpoint(Failure{Index: -1, Kind: KindBadSignature,
			Detail: "bundle names a different log key than the trusted one"})
	}
	if b.Origin != origin {
		v.failCheckpoint(Failure{Index: -1, Kind: KindBadSignature,
			Detail: fmt.Sprintf("bundle names origin %q, not the log's %q", b.Origin, origin)})
	}
	if len(b.Entries) == 0 {
		v.failEntry(Failure{Index: -1, Kind: KindMissingEntry, Detail: "the bundle holds no entries"})
	}
	c, err := OpenCheckpoint(b.Checkpoint, trustedVKey, origin)
	signed := err == nil
	if !signed {
		v.failCheckpoint(Failure{Index: -1, Kind: KindBadSignature, Detail: "bundle checkpoint: " + err.Error()})
	} else {
		v.rep.Size, v.rep.Root, v.rep.Checkpoints, v.rep.Covered = c.Size, c.Root, 1, c.Size
	}
	for i, e := range b.Entries {
		if i > 0 {
			if want := b.Entries[i-1].Index + 1; e.Index > want {
				v.failEntry(Failure{Index: want, Kind: KindMissingEntry,
					Detail: fmt.Sprintf("entries %d..%d are missing from the bundle", want, e.Index-1)})
			} else if e.Index < want {
				v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindOutOfOrder,
					Detail: fmt.Sprintf("entry %d follows entry %d", e.Index, want-1)})
			}
		}
		v.checkContent(e.Entry)
		if !signed {
			continue
		}
		if e.Index < 0 || e.Index >= c.Size {
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindOutOfOrder,
				Detail: fmt.Sprintf("entry index %d is outside the checkpoint's tree of size %d", e.Index, c.Size)})
			continue
		}
		if err := CheckInclusion(e.Proof, c.Size, c.Root, e.Index, e.LeafHash); err != nil {
			v.failEntry(Failure{Index: e.Index, EventID: e.EventID, Kind: KindHashMismatch,
				Detail: "inclusion proof does not lead to the signed checkpoint root"})
		}
	}
	return v.report(), nil
}
