package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// testBundle exports entries [from, to) of a 40-entry log with proofs to its size-40 checkpoint.
func testBundle(t *testing.T, from, to int) (*testLog, Bundle) {
	t.Helper()
	l := newTestLog(t, 40, 10)
	b, err := BuildBundle(context.Background(), l.src.hashes, l.checkpointAt[40], l.vkey, testOrigin, l.src.entries[from:to])
	if err != nil {
		t.Fatal(err)
	}
	return l, b
}

func roundTrip(t *testing.T, b Bundle) (Bundle, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteBundle(&buf, b); err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(buf.Bytes())
	got, err := ReadBundle(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return got, raw
}

func verifyBundle(t *testing.T, b Bundle, vkey string) *Report {
	t.Helper()
	rep, err := VerifyBundle(b, vkey, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBundle_RoundTripVerifies(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 10, 25)
	got, raw := roundTrip(t, b)
	if n := bytes.Count(raw, []byte("\n")); n != 16 {
		t.Errorf("%d lines, want header + 15 entries", n)
	}
	rep := verifyBundle(t, got, l.vkey)
	wantOK(t, rep)
	if rep.Size != 40 || rep.Checkpoints != 1 || rep.Origin != testOrigin {
		t.Errorf("report = %+v", rep)
	}
	for i, e := range got.Entries {
		if !bytes.Equal(e.Canonical, l.src.entries[10+i].Canonical) {
			t.Fatalf("entry %d canonical bytes changed in transit", e.Index)
		}
	}
}

func TestBundle_PrunedEntryVerifies(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, 40, 10)
	l.src.entries[12].Canonical, l.src.entries[12].Pruned = nil, true
	b, err := BuildBundle(context.Background(), l.src.hashes, l.checkpointAt[40], l.vkey, testOrigin, l.src.entries[10:15])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := roundTrip(t, b)
	rep := verifyBundle(t, got, l.vkey)
	wantOK(t, rep)
	if rep.Pruned != 1 {
		t.Errorf("pruned = %d", rep.Pruned)
	}
}

func TestBundle_FlippedByteFails(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 10, 25)
	_, raw := roundTrip(t, b)
	lines := bytes.Split(raw, []byte("\n"))

	// Flip one bit inside entry 13's canonical bytes, as the file carries them (base64).
	line := lines[1+3]
	start := bytes.Index(line, []byte(`"canonical":"`)) + len(`"canonical":"`)
	end := start + bytes.IndexByte(line[start:], '"')
	c, err := base64.StdEncoding.DecodeString(string(line[start:end]))
	if err != nil {
		t.Fatal(err)
	}
	c[5] ^= 0x01
	lines[1+3] = append(append(bytes.Clone(line[:start]), base64.StdEncoding.EncodeToString(c)...), line[end:]...)

	got, err := ReadBundle(bytes.NewReader(bytes.Join(lines, []byte("\n"))))
	if err != nil {
		t.Fatal(err)
	}
	wantFirst(t, verifyBundle(t, got, l.vkey), KindContentMismatch, 13)

	// The same edit with the leaf hash recomputed: the inclusion proof no longer fits.
	got.Entries[3].LeafHash = LeafHash(got.Entries[3].Canonical)
	got.Entries[3].EventID = ""
	wantFirst(t, verifyBundle(t, got, l.vkey), KindHashMismatch, 13)

	// A flipped bit in a proof.
	l2, b2 := testBundle(t, 10, 25)
	b2.Entries[7].Proof[1][0] ^= 0x40
	wantFirst(t, verifyBundle(t, b2, l2.vkey), KindHashMismatch, 17)
}

func TestBundle_OtherKeyFails(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 0, 5)
	// The attacker re-signs the checkpoint with their own key and names it in the bundle.
	_, attackerVKey, attacker := newTestKeys(t)
	c, err := OpenCheckpoint(b.Checkpoint, l.vkey, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if b.Checkpoint, err = attacker.Sign(c); err != nil {
		t.Fatal(err)
	}
	b.PublicKey = attackerVKey
	rep := verifyBundle(t, b, l.vkey)
	wantFirst(t, rep, KindBadSignature, -1)
	if rep.Checkpoints != 0 {
		t.Errorf("checkpoint counted as verified")
	}
	// Verified with the attacker's key it would pass: the trusted key must come from the
	// auditor, never from the bundle.
	wantOK(t, verifyBundle(t, b, attackerVKey))
}

func TestBundle_GapsAndRangeErrors(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 10, 20)
	b.Entries = append(b.Entries[:3], b.Entries[4:]...)
	wantFirst(t, verifyBundle(t, b, l.vkey), KindMissingEntry, 13)

	l, b = testBundle(t, 10, 20)
	b.Entries[4].Index = 45 // beyond the checkpoint's tree
	rep := verifyBundle(t, b, l.vkey)
	if !hasFailure(rep, KindOutOfOrder) || rep.OK {
		t.Errorf("index beyond the tree accepted: %+v", rep.Failures)
	}

	if _, err := VerifyBundle(b, "garbage", testOrigin); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad trusted key: %v", err)
	}
	if _, err := BuildBundle(context.Background(), l.src.hashes, l.checkpointAt[40], l.vkey, testOrigin,
		[]Entry{l.src.entries[1], l.src.entries[3]}); err == nil {
		t.Error("non-contiguous export accepted")
	}
	// Exporting from a tampered tree fails instead of producing a bundle.
	l.src.hashes[0][0] ^= 1
	if _, err := BuildBundle(context.Background(), l.src.hashes, l.checkpointAt[40], l.vkey, testOrigin,
		l.src.entries[0:2]); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("export from tampered tree: %v", err)
	}
}

func TestReadBundle_RejectsMalformedInput(t *testing.T) {
	t.Parallel()
	_, b := testBundle(t, 0, 3)
	_, raw := roundTrip(t, b)
	header, rest, _ := bytes.Cut(raw, []byte("\n"))
	cases := map[string][]byte{
		"empty":           nil,
		"truncated":       raw[:len(raw)-40],
		"missing entry":   raw[:bytes.LastIndexByte(raw[:len(raw)-1], '\n')+1],
		"extra line":      append(bytes.Clone(raw), raw[len(header)+1:]...),
		"wrong format":    bytes.Replace(raw, []byte(BundleFormat), []byte("other/v1"), 1),
		"unknown field":   bytes.Replace(raw, []byte(`{"index":0,`), []byte(`{"index":0,"extra":1,`), 1),
		"trailing data":   bytes.Replace(raw, []byte("\n"), []byte(" {}\n"), 1),
		"negative count":  bytes.Replace(raw, []byte(`"entries":3`), []byte(`"entries":-1`), 1),
		"huge count":      bytes.Replace(raw, []byte(`"entries":3`), []byte(`"entries":99999999`), 1),
		"oversized line":  append(append(bytes.Clone(header[:len(header)-1]), []byte(`,"x":"`+strings.Repeat("a", MaxBundleLine)+`"}`)...), rest...),
		"bad hash":        bytes.Replace(raw, []byte(`"leaf_hash":"`), []byte(`"leaf_hash":"AA`), 1),
		"not JSON":        []byte("hello\n"),
		"oversized event": []byte(`{"format":"` + BundleFormat + `","entries":1}` + "\n" + `{"canonical":"` + base64.StdEncoding.EncodeToString(make([]byte, MaxCanonicalSize+1)) + `"}` + "\n"),
	}
	for name, in := range cases {
		if _, err := ReadBundle(bytes.NewReader(in)); !errors.Is(err, ErrMalformedBundle) {
			t.Errorf("%s: err = %v, want ErrMalformedBundle", name, err)
		}
	}
}

// The log key also signs notes under other origins (compliance reports, erasure-ledger heads).
// Such a note wrapped in a bundle that names its own origin must not verify as the log's
// checkpoint, whether the bundle names the note's origin or claims the log's.
func TestBundle_NoteOfAnotherOriginUnderTheLogKeyIsRefused(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 10, 12)
	other, err := l.signer.Sign(Checkpoint{Origin: "tutela/compliance-report", Size: 40, Root: [32]byte{7}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		origin  string
		entries []BundleEntry
	}{
		{"named origin, no entries", "tutela/compliance-report", nil},
		{"named origin, with entries", "tutela/compliance-report", b.Entries},
		{"claims the log's origin", testOrigin, nil},
	} {
		got, _ := roundTrip(t, Bundle{Origin: tc.origin, PublicKey: l.vkey, Checkpoint: other, Entries: tc.entries})
		rep := verifyBundle(t, got, l.vkey)
		if rep.OK || !hasFailure(rep, KindBadSignature) || rep.Origin != testOrigin || rep.Size != 0 {
			t.Errorf("%s: a note of another origin verified as the log's: OK=%v size=%d failures=%+v", tc.name, rep.OK, rep.Size, rep.Failures)
		}
	}
	// The log's own checkpoint in a bundle naming another origin is refused too: the origin is
	// the verifier's, not the file's.
	b.Origin = "tutela/compliance-report"
	if rep := verifyBundle(t, b, l.vkey); rep.OK || !hasFailure(rep, KindBadSignature) {
		t.Errorf("bundle naming another origin accepted: %+v", rep.Failures)
	}
}

// A bundle of the log's own checkpoint with no entries proves nothing about the log; exports
// always hold at least one entry, and a range not starting at 0 stays valid.
func TestBundle_EmptyBundleRefusedRangeAccepted(t *testing.T) {
	t.Parallel()
	l, b := testBundle(t, 10, 12)
	b.Entries = nil
	got, _ := roundTrip(t, b)
	if rep := verifyBundle(t, got, l.vkey); rep.OK || !hasFailure(rep, KindMissingEntry) {
		t.Errorf("empty bundle accepted: %+v", rep)
	}
	l, b = testBundle(t, 39, 40)
	wantOK(t, verifyBundle(t, b, l.vkey))
}
