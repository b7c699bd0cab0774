package receiver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/clocktest"
	"tutela/notify"
)

const origin = "tutela.test/audit"

var ctx = context.Background()

// testLog is a log in memory that can sign a checkpoint at any size.
type testLog struct {
	signer  *audit.Signer
	vkey    string
	entries []audit.Entry
	tree    audit.Appender
}

func newLog(t *testing.T, n int) *testLog {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{signer: s, vkey: vkey}
	for i := range n {
		e := audit.Event{ID: fmt.Sprintf("0190f3a4-0000-7000-8000-%012d", i), Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
			ActorType: audit.ActorSystem, Action: "test.event", Outcome: audit.OutcomeSuccess, TargetType: "thing",
			TargetID: strconv.Itoa(i)}
		c, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		leaf := audit.LeafHash(c)
		if _, err := l.tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
		l.entries = append(l.entries, audit.Entry{Index: int64(i), EventID: e.ID, Canonical: c, LeafHash: leaf})
	}
	return l
}

// batch is entries from..to-1 under a checkpoint of size cp, for a receiver in state st.
func (l *testLog) batch(t *testing.T, st audit.ShipState, from, to, cp int64) *audit.Batch {
	t.Helper()
	return l.batchAt(t, st, from, to, cp, time.Time{})
}

// batchAt is batch with the checkpoint signed at the given time (none when zero).
func (l *testLog) batchAt(t *testing.T, st audit.ShipState, from, to, cp int64, at time.Time) *audit.Batch {
	t.Helper()
	root, err := audit.TreeHash(ctx, cp, l.tree.Hashes)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := l.signer.Sign(audit.Checkpoint{Origin: origin, Size: cp, Root: root, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	tail, err := audit.ProveConsistency(ctx, to, cp, l.tree.Hashes)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := audit.ProveConsistency(ctx, st.CheckpointSize, cp, l.tree.Hashes)
	if err != nil {
		t.Fatal(err)
	}
	b := &audit.Batch{Format: audit.BatchFormat, Origin: origin, From: from, Checkpoint: string(signed), TailProof: tail,
		PrevSize: st.CheckpointSize, PrevProof: prev}
	for _, e := range l.entries[from:to] {
		b.Entries = append(b.Entries, audit.BatchEntry{Index: e.Index, EventID: e.EventID,
			Canonical: append([]byte(nil), e.Canonical...), LeafHash: e.LeafHash})
	}
	return b
}

func open(t *testing.T, dir, vkey string) *receiver.Store {
	t.Helper()
	s, err := receiver.Open(dir, vkey, origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apply(t *testing.T, s *receiver.Store, b *audit.Batch) audit.ShipState {
	t.Helper()
	st, err := s.Apply(ctx, b)
	if err != nil {
		t.Fatalf("batch from %d: %v", b.From, err)
	}
	return st
}

func verify(t *testing.T, s *receiver.Store, vkey string) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(ctx, s.Source(), vkey, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestStore_PersistsAcrossReopenAndVerifies(t *testing.T) {
	t.Parallel()
	l := newLog(t, 20)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	st := apply(t, s, l.batch(t, s.State(), 0, 6, 8))
	st = apply(t, s, l.batch(t, st, 6, 12, 12))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, l.vkey)
	if s.State() != st || st.Size != 12 || st.CheckpointSize != 12 {
		t.Fatalf("reopened state %+v, want %+v", s.State(), st)
	}
	apply(t, s, l.batch(t, st, 12, 20, 20))
	rep := verify(t, s, l.vkey)
	if !rep.OK || rep.Size != 20 || rep.Checkpoints != 3 { // 8 (accepted holding 6), 12, 20
		t.Fatalf("verify: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "20.checkpoint")); err != nil {
		t.Fatalf("checkpoint not kept: %v", err)
	}
}

// A thinning store keeps the first, the latest and one checkpoint per hour of the shipped
// checkpoints' times, and its copy still verifies against every one it kept.
func TestStore_ThinnedCheckpointsStillVerify(t *testing.T) {
	t.Parallel()
	l := newLog(t, 20)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	s.ThinCheckpoints(2 * time.Hour)
	start := time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC)
	st := s.State()
	for i := range int64(20) { // one entry every 20 minutes: 6h20m
		st = apply(t, s, l.batchAt(t, st, i, i+1, i+1, start.Add(time.Duration(i)*20*time.Minute)))
	}
	kept, err := audit.ReadCheckpointDir(filepath.Join(dir, "checkpoints"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) >= 20 || len(kept) < 3 {
		t.Fatalf("%d of 20 checkpoints kept", len(kept))
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "20.checkpoint")); err != nil {
		t.Fatalf("the latest checkpoint is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "1.checkpoint")); err != nil {
		t.Fatalf("the first checkpoint is gone: %v", err)
	}
	rep := verify(t, s, l.vkey)
	if !rep.OK || rep.Size != 20 || rep.Checkpoints != len(kept) {
		t.Fatalf("verify: %+v (kept %d)", rep, len(kept))
	}
}

// A batch interrupted between appending and recording (a crash) leaves bytes past the recorded
// lengths; reopening cuts them, and the batch, sent again, is stored once.
func TestStore_InterruptedBatchCutOnReopen(t *testing.T) {
	t.Parallel()
	l := newLog(t, 10)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	st := apply(t, s, l.batch(t, s.State(), 0, 5, 5))
	s.Close()
	for _, name := range []string{"entries.jsonl", "hashes.bin"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(`{"index":5,"half a line`); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s = open(t, dir, l.vkey)
	apply(t, s, l.batch(t, st, 5, 10, 10))
	if rep := verify(t, s, l.vkey); !rep.OK || rep.Size != 10 {
		t.Fatalf("verify after the cut: %+v", rep.Failures)
	}
}

// The entries, their tree and the state are the audit log's: only the receiver's user reads them.
func TestStore_FilesOwnerOnly(t *testing.T) {
	t.Parallel()
	l := newLog(t, 4)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	apply(t, s, l.batch(t, s.State(), 0, 4, 4))
	for _, name := range []string{"entries.jsonl", "hashes.bin", "state.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want group and others without access", name, perm)
		}
	}
}

// The received copy is evidence: an edit to it afterwards is found by verifying it.
func TestStore_EditedCopyFailsVerification(t *testing.T) {
	t.Parallel()
	l := newLog(t, 8)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	apply(t, s, l.batch(t, s.State(), 0, 8, 8))
	path := filepath.Join(dir, "entries.jsonl")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := base64.StdEncoding.EncodeToString(l.entries[3].Canonical)
	edited := bytes.Replace(l.entries[3].Canonical, []byte("test.event"), []byte("test.evenT"), 1)
	raw = bytes.Replace(raw, []byte(old), []byte(base64.StdEncoding.EncodeToString(edited)), 1)
	if err := os.WriteFile(path, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, s, l.vkey)
	if rep.OK || rep.Failures[0].Kind != audit.KindContentMismatch || rep.Failures[0].Index != 3 {
		t.Fatalf("edited copy: %+v", rep.Failures)
	}
}

func TestStore_RefusalChangesNothing(t *testing.T) {
	t.Parallel()
	l := newLog(t, 8)
	dir := t.TempDir()
	s := open(t, dir, l.vkey)
	st := apply(t, s, l.batch(t, s.State(), 0, 4, 4))
	b := l.batch(t, st, 4, 8, 8)
	b.Entries[2].Canonical[10] ^= 1
	_, err := s.Apply(ctx, b)
	var be *audit.BatchError
	if !errors.As(err, &be) || be.Index != 6 || be.Kind != audit.KindContentMismatch {
		t.Fatalf("flipped byte: %v, want content_mismatch at 6", err)
	}
	s.Close()
	s = open(t, dir, l.vkey)
	if s.State() != st {
		t.Fatalf("state after a refusal %+v, want %+v", s.State(), st)
	}
	if rep := verify(t, s, l.vkey); !rep.OK || rep.Size != 4 {
		t.Fatalf("verify: %+v", rep.Failures)
	}
}

// handlerRig serves a Store over HTTP with a test clock.
type handlerRig struct {
	l      *testLog
	store  *receiver.Store
	srv    *httptest.Server
	clock  *clocktest.Clock
	secret string
}

func newHandlerRig(t *testing.T) *handlerRig {
	t.Helper()
	l := newLog(t, 8)
	r := &handlerRig{l: l, store: open(t, t.TempDir(), l.vkey), secret: "whsec_test",
		clock: clocktest.New(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))}
	r.srv = httptest.NewServer(&receiver.Handler{Store: r.store, Secret: r.secret, Now: r.clock.Now, MaxBody: 1 << 20})
	t.Cleanup(r.srv.Close)
	return r
}

func (r *handlerRig) post(t *testing.T, body []byte, secret string, at time.Time) (int, receiver.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set(notify.HeaderTimestamp, ts)
	req.Header.Set(notify.HeaderSignature, notify.Sign(secret, ts, body))
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out receiver.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler_SignedBatchesOnlyAndReplayRefused(t *testing.T) {
	t.Parallel()
	r := newHandlerRig(t)
	body := mustJSON(t, r.l.batch(t, r.store.State(), 0, 4, 4))
	now := r.clock.Now()

	for name, tc := range map[string]struct {
		secret string
		at     time.Time
	}{
		"wrong secret":     {"whsec_other", now},
		"stale timestamp":  {r.secret, now.Add(-notify.Tolerance - time.Second)},
		"future timestamp": {r.secret, now.Add(notify.Tolerance + time.Second)},
	} {
		if code, resp := r.post(t, body, tc.secret, tc.at); code != http.StatusUnauthorized || resp.Error.Code != "unauthenticated" || resp.Size != 0 {
			t.Fatalf("%s: %d %+v, want 401 without state", name, code, resp)
		}
	}
	code, resp := r.post(t, body, r.secret, now)
	if code != http.StatusOK || resp.Size != 4 || resp.Accepted == nil || resp.Accepted.To != 4 {
		t.Fatalf("good batch: %d %+v", code, resp)
	}
	// The same signed request again (a replay within the timestamp's tolerance).
	code, resp = r.post(t, body, r.secret, now)
	if code != http.StatusConflict || resp.Error.Code != audit.KindReplayed || resp.Error.Index == nil || *resp.Error.Index != 0 || resp.Size != 4 {
		t.Fatalf("replay: %d %+v, want 409 replayed at 0 with size 4", code, resp)
	}
	// A batch skipping 4..5 (batches reordered): refused, saying where the receiver stands.
	skip := mustJSON(t, r.l.batch(t, r.store.State(), 6, 8, 8))
	code, resp = r.post(t, skip, r.secret, now)
	if code != http.StatusConflict || resp.Error.Code != audit.KindMissingEntry || *resp.Error.Index != 4 {
		t.Fatalf("reordered: %d %+v", code, resp)
	}
	// A flipped byte: 422 naming the index.
	b := r.l.batch(t, r.store.State(), 4, 8, 8)
	b.Entries[1].Canonical[12] ^= 1
	code, resp = r.post(t, mustJSON(t, b), r.secret, now)
	if code != http.StatusUnprocessableEntity || resp.Error.Code != audit.KindContentMismatch || *resp.Error.Index != 5 {
		t.Fatalf("flipped byte: %d %+v", code, resp)
	}
	if st := r.store.State(); st.Size != 4 {
		t.Fatalf("refusals changed the state: %+v", st)
	}
}

func TestHandler_MalformedOversizedAndWrongMethod(t *testing.T) {
	t.Parallel()
	r := newHandlerRig(t)
	now := r.clock.Now()
	if code, resp := r.post(t, []byte(`{"format":"tutela-audit-batch/v1","unknown":1}`), r.secret, now); code != http.StatusBadRequest || resp.Error.Code != "invalid" {
		t.Fatalf("unknown field: %d %+v", code, resp)
	}
	if code, _ := r.post(t, bytes.Repeat([]byte("x"), 2<<20), r.secret, now); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	resp, err := r.srv.Client().Get(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}
