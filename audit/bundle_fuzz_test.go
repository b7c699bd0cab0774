package audit

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
)

// FuzzReadBundle: an auditor reads bundles from anyone. Whatever ReadBundle refuses is refused as
// ErrMalformedBundle; whatever it accepts writes back out and reads back to the same bundle, and
// VerifyBundle then decides on it without panicking, accepting it only with a valid checkpoint
// signature and proofs (a mutated seed that still verifies proves the same entries).
func FuzzReadBundle(f *testing.F) {
	l := newTestLog(f, 40, 10)
	b, err := BuildBundle(context.Background(), l.src.hashes, l.checkpointAt[40], l.vkey, testOrigin, l.src.entries[10:14])
	if err != nil {
		f.Fatal(err)
	}
	var seed bytes.Buffer
	if err := WriteBundle(&seed, b); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add([]byte(`{"format":"tutela-audit-bundle/v1","origin":"o","public_key":"k","checkpoint":"","entries":0}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadBundle(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrMalformedBundle) {
				t.Fatalf("refused without ErrMalformedBundle: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := WriteBundle(&out, got); err != nil {
			t.Fatalf("a bundle ReadBundle accepted does not write: %v", err)
		}
		again, err := ReadBundle(&out)
		if err != nil || !reflect.DeepEqual(normalBundle(again), normalBundle(got)) {
			t.Fatalf("round trip changed the bundle: %v", err)
		}
		rep, err := VerifyBundle(got, l.vkey, testOrigin)
		if err != nil || rep == nil || !rep.OK {
			return
		}
		// Accepted: every entry must be one the log holds at that index.
		for _, e := range got.Entries {
			if e.Index < 0 || e.Index >= int64(len(l.src.entries)) || e.EventID != l.src.entries[e.Index].EventID {
				t.Fatalf("VerifyBundle accepted entry %d (%q) the log does not hold", e.Index, e.EventID)
			}
		}
	})
}

// normalBundle makes empty and nil slices compare equal: JSON does not tell them apart.
func normalBundle(b Bundle) Bundle {
	if len(b.Checkpoint) == 0 {
		b.Checkpoint = nil
	}
	if len(b.Entries) == 0 {
		b.Entries = nil
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		if len(e.Canonical) == 0 {
			e.Canonical = nil
		}
		if len(e.Proof) == 0 {
			e.Proof = nil
		}
	}
	return b
}
