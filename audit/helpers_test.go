package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "tutela.example/audit"

// memSource is an in-memory Source whose parts tests tamper with directly.
type memSource struct {
	size        int64
	entries     []Entry
	hashes      MemHashes
	checkpoints [][]byte
}

func (s *memSource) Size(context.Context) (int64, error) { return s.size, nil }
func (s *memSource) Hashes() HashStore                   { return s.hashes }
func (s *memSource) Checkpoints(context.Context) ([][]byte, error) {
	return s.checkpoints, nil
}

func (s *memSource) Entries(_ context.Context, fn func(Entry) error) error {
	for _, e := range s.entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// testLog is a log with its keys, built the way the store will build it.
type testLog struct {
	src          *memSource
	skey, vkey   string
	signer       *Signer
	checkpointAt map[int64][]byte // every checkpoint signed, by size
}

func testEvent(i int) Event {
	return Event{
		ID:         fmt.Sprintf("0190f3a4-0000-7000-8000-%012d", i),
		Time:       time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		TenantID:   "0190f3a4-aaaa-7000-8000-000000000001",
		ActorType:  ActorUser,
		ActorID:    fmt.Sprintf("0190f3a4-bbbb-7000-8000-%012d", i%7),
		SourceIP:   "192.0.2.10",
		UserAgent:  "Mozilla/5.0 (X11; Linux x86_64)",
		Action:     "user.login",
		TargetType: "user",
		TargetID:   fmt.Sprintf("0190f3a4-cccc-7000-8000-%012d", i%5),
		Outcome:    OutcomeSuccess,
		RequestID:  fmt.Sprintf("req-%d", i),
		Details:    map[string]any{"method": "password", "attempt": i % 3, "mfa": true},
	}
}

func newTestKeys(t testing.TB) (skey, vkey string, s *Signer) {
	t.Helper()
	skey, vkey, err := GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err = NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey, s
}

// newTestLog appends n events, storing a checkpoint after every `every` entries and at the end.
func newTestLog(t testing.TB, n, every int) *testLog {
	t.Helper()
	skey, vkey, s := newTestKeys(t)
	l := &testLog{src: &memSource{}, skey: skey, vkey: vkey, signer: s, checkpointAt: map[int64][]byte{}}
	events := make([]Event, n)
	for i := range n {
		events[i] = testEvent(i)
	}
	l.rebuild(t, events, every)
	return l
}

// rebuild recomputes the whole log from events and re-signs it with the log's real key: what an
// attacker holding the key (or the signing service) would do to rewrite history.
func (l *testLog) rebuild(t testing.TB, events []Event, every int) {
	t.Helper()
	ctx := context.Background()
	src := &memSource{}
	l.checkpointAt = map[int64][]byte{}
	var a Appender
	for i, e := range events {
		c, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		leaf := LeafHash(c)
		// Use StoredHashesFor, the store's path, and cross-check it with Appender.
		hs, err := StoredHashesFor(ctx, int64(i), leaf, src.hashes)
		if err != nil {
			t.Fatal(err)
		}
		src.hashes = append(src.hashes, hs...)
		if _, err := a.Append(leaf); err != nil {
			t.Fatal(err)
		}
		src.entries = append(src.entries, Entry{Index: int64(i), EventID: e.ID, Canonical: c, LeafHash: leaf})
		src.size++
		if (i+1)%every == 0 || i == len(events)-1 {
			root, err := TreeHash(ctx, src.size, src.hashes)
			if err != nil {
				t.Fatal(err)
			}
			signed := l.sign(t, Checkpoint{Origin: testOrigin, Size: src.size, Root: root})
			src.checkpoints = append(src.checkpoints, signed)
			l.checkpointAt[src.size] = signed
		}
	}
	if !slices.Equal(a.Hashes, src.hashes) {
		t.Fatal("Appender and StoredHashesFor disagree")
	}
	l.src = src
}

func (l *testLog) sign(t testing.TB, c Checkpoint) []byte {
	t.Helper()
	signed, err := l.signer.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (l *testLog) verify(t testing.TB, published ...[]byte) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), l.src, l.vkey, testOrigin, published)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// wantFirst checks that rep failed and that its first failure has the given kind and index.
func wantFirst(t *testing.T, rep *Report, kind string, index int64) {
	t.Helper()
	if rep.OK || len(rep.Failures) == 0 {
		t.Fatalf("report OK, want first failure %s at %d", kind, index)
	}
	f := rep.Failures[0]
	if f.Kind != kind || f.Index != index {
		t.Fatalf("first failure = %s at %d (%s), want %s at %d; all: %+v", f.Kind, f.Index, f.Detail, kind, index, rep.Failures)
	}
}

func wantOK(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.OK || len(rep.Failures) != 0 || rep.FailureCount != 0 {
		t.Fatalf("report not OK: %+v", rep.Failures)
	}
}

func hasFailure(rep *Report, kind string) bool {
	for _, f := range rep.Failures {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

func mustHash(t testing.TB, s string) tlog.Hash {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		t.Fatalf("bad hex hash %q: %v", s, err)
	}
	return tlog.Hash(b)
}
