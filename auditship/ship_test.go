package auditship_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/auditship"
	"tutela/clocktest"
	"tutela/monitor/rules"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const origin = "tutela.test/audit"

var ctx = context.Background()

// rig is a store with a sequenced log, and a receiver in a directory behind an HTTP server.
type rig struct {
	db       *sqlstore.DB
	clock    *clocktest.Clock
	seq      *sqlstore.Sequencer
	vkey     string
	dir      string
	store    *receiver.Store
	srv      *httptest.Server
	secret   string
	recorded int
	// dieAfter, when set, is called after the receiver handled each batch; when it returns true
	// the answer never leaves: the connection is cut, as when the shipping node dies right after
	// the receiver stored the batch.
	dieAfter atomic.Pointer[func() bool]
}

func newRig(t testing.TB, d sqlstore.Dialect, receiverKey string) *rig {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	skey, vkey, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if receiverKey == "" {
		receiverKey = vkey
	}
	r := &rig{db: db, clock: clock, vkey: vkey, dir: t.TempDir(), secret: "whsec_" + tutela.RandomToken(16),
		seq: sqlstore.NewSequencer(db, signer, origin, sqlstore.SequencerOptions{Clock: clock.Now, BatchSize: 7})}
	r.store, err = receiver.Open(r.dir, receiverKey, origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	h := &receiver.Handler{Store: r.store, Secret: r.secret, Now: clock.Now}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := r.dieAfter.Load()
		if f == nil {
			h.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if (*f)() {
			panic(http.ErrAbortHandler)
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// record adds n events and sequences them (rounds of at most 7, so there are many checkpoints).
func (r *rig) record(t testing.TB, n int) {
	t.Helper()
	for range n {
		i := r.recorded
		r.recorded++
		if err := r.db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "test.event", Outcome: audit.OutcomeSuccess,
				TargetType: "thing", TargetID: fmt.Sprint(i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		n, err := r.seq.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (r *rig) shipper(t *testing.T, owner string, maxEntries int) *auditship.Shipper {
	t.Helper()
	dest, err := auditship.NewHTTPS("archive", r.srv.URL, tutela.NewSecret(r.secret), r.srv.Client(), r.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auditship.New(r.db, []auditship.Destination{dest}, auditship.Options{VerifierKey: r.vkey, Origin: origin,
		Owner: owner, MaxEntries: maxEntries})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) cursor(t *testing.T) sqlstore.AuditShipCursor {
	t.Helper()
	cs, err := r.db.AuditShipCursors(ctx)
	if err != nil || len(cs) != 1 {
		t.Fatalf("cursors = %+v, %v", cs, err)
	}
	return cs[0]
}

// receivedIndexes reads the receiver's entry file: every index it stored, in order.
func (r *rig) receivedIndexes(t *testing.T) []int64 {
	t.Helper()
	f, err := os.Open(filepath.Join(r.dir, "entries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []int64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct{ Index int64 }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Index)
	}
	return out
}

// mustHoldEachOnce checks the receiver holds indexes 0..n-1 exactly once, in order, and that
// its directory verifies from scratch against the checkpoints it accepted.
func (r *rig) mustHoldEachOnce(t *testing.T, n int64) {
	t.Helper()
	got := r.receivedIndexes(t)
	if int64(len(got)) != n {
		t.Fatalf("receiver holds %d entries, want %d", len(got), n)
	}
	for i, x := range got {
		if x != int64(i) {
			t.Fatalf("receiver's entry %d has index %d", i, x)
		}
	}
	rep, err := audit.Verify(ctx, r.store.Source(), r.vkey, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Size != n || rep.Checkpoints == 0 {
		t.Fatalf("receiver's copy: OK=%v size=%d checkpoints=%d failures=%+v", rep.OK, rep.Size, rep.Checkpoints, rep.Failures)
	}
	// What it received is byte for byte what the store holds.
	want, err := r.db.AuditEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := r.store.Source().Entries(ctx, func(e audit.Entry) error {
		if string(e.Canonical) != string(want[i].Canonical) || e.LeafHash != want[i].LeafHash {
			return fmt.Errorf("entry %d differs from the store's", e.Index)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func eachDialect(t *testing.T, fn func(t *testing.T, d sqlstore.Dialect)) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestShip_ReceiverVerifiesEverythingAgainstCheckpoints(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, "")
		r.record(t, 30)
		s := r.shipper(t, "node-a", 4)
		n, err := s.Step(ctx)
		if err != nil || n != 30 {
			t.Fatalf("Step = %d, %v; want 30 shipped", n, err)
		}
		r.record(t, 12)
		if n, err := s.Step(ctx); err != nil || n != 12 {
			t.Fatalf("second Step = %d, %v; want 12", n, err)
		}
		if n, err := s.Step(ctx); err != nil || n != 0 {
			t.Fatalf("idle Step = %d, %v; want 0", n, err)
		}
		r.mustHoldEachOnce(t, 42)
		if c := r.cursor(t); c.Next != 42 || c.CheckpointSize != 42 || c.Failures != 0 {
			t.Fatalf("cursor %+v, want 42/42", c)
		}
		if st := r.store.State(); st.Size != 42 || st.CheckpointSize != 42 {
			t.Fatalf("receiver state %+v", st)
		}
	})
}

// The shipper is killed after the receiver stored a batch and before the cursor moved; a new
// node takes over once the dead one's lease lapses. It sends that batch again, the receiver
// drops it by index and says where it stands, and shipping resumes there: every index arrives
// exactly once.
func TestShip_RestartMidStreamResumesWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, "")
		r.record(t, 40)
		killCtx, kill := context.WithCancel(ctx)
		defer kill()
		var sent atomic.Int32
		f := func() bool {
			if sent.Add(1) == 3 {
				kill() // the node dies with the third batch stored but not recorded
				return true
			}
			return false
		}
		r.dieAfter.Store(&f)
		first := r.shipper(t, "node-a", 5)
		if _, err := first.Step(killCtx); err != nil {
			t.Fatalf("killed Step: %v", err)
		}
		r.dieAfter.Store(nil)
		if c := r.cursor(t); c.Next != 10 || r.store.State().Size != 15 {
			t.Fatalf("after the kill: cursor %d, receiver %d; want 10 and 15 (one batch unrecorded)", c.Next, r.store.State().Size)
		}

		second := r.shipper(t, "node-b", 5)
		if n, err := second.Step(ctx); err != nil || n != 0 {
			t.Fatalf("Step while node-a's lease runs = %d, %v; want nothing shipped", n, err)
		}
		r.clock.Add(3 * time.Minute)
		if _, err := second.Step(ctx); err != nil {
			t.Fatal(err)
		}
		r.mustHoldEachOnce(t, 40)
		if c := r.cursor(t); c.Next != 40 || c.LeaseOwner != "node-b" {
			t.Fatalf("cursor %+v, want node-b at 40", c)
		}
		if got := countActions(t, r.db, auditship.ActionShipResync); got != 1 {
			t.Fatalf("%d resync events, want 1", got)
		}
	})
}

// A receiver that trusts another log key refuses every batch: nothing is stored, the cursor
// stays, the failure is on the cursor with a backoff, and the refusal is audited once.
func TestShip_RefusedBatchKeepsCursorAndIsAudited(t *testing.T) {
	t.Parallel()
	_, otherKey, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, otherKey)
		r.record(t, 5)
		s := r.shipper(t, "node-a", 100)
		if n, err := s.Step(ctx); err != nil || n != 0 {
			t.Fatalf("Step = %d, %v", n, err)
		}
		c := r.cursor(t)
		if c.Next != 0 || c.Failures != 1 || c.LastError == "" || c.Due || r.store.State().Size != 0 {
			t.Fatalf("cursor %+v, receiver %+v; want nothing shipped and one failure", c, r.store.State())
		}
		if want := "refused: bad_signature"; len(c.LastError) < len(want) || c.LastError[:len(want)] != want {
			t.Fatalf("last error %q, want %q…", c.LastError, want)
		}
		// Within the backoff nothing is sent; after it, the retry fails the same way and is not
		// audited again.
		if _, err := s.Step(ctx); err != nil || r.cursor(t).Failures != 1 {
			t.Fatalf("retried within the backoff: %+v, %v", r.cursor(t), err)
		}
		r.clock.Add(time.Minute)
		if _, err := s.Step(ctx); err != nil || r.cursor(t).Failures != 2 {
			t.Fatalf("no retry after the backoff: %+v, %v", r.cursor(t), err)
		}
		r.record(t, 0)
		if got := countActions(t, r.db, auditship.ActionShipRefused); got != 1 {
			t.Fatalf("%d refusal events, want 1", got)
		}
	})
}

// A receiver that is down is retried; nothing is lost and order holds once it is back.
func TestShip_UnreachableReceiverRetriedInOrder(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, "")
		r.record(t, 9)
		dest, err := auditship.NewHTTPS("archive", "http://127.0.0.1:1/", tutela.NewSecret(r.secret), nil, r.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		down, err := auditship.New(r.db, []auditship.Destination{dest}, auditship.Options{VerifierKey: r.vkey, Origin: origin,
			Owner: "node-a", MaxEntries: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := down.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if c := r.cursor(t); c.Next != 0 || c.Failures != 1 || c.LastError[:12] != "unreachable:" {
			t.Fatalf("cursor %+v", c)
		}
		r.record(t, 3)
		r.clock.Add(10 * time.Second)
		if n, err := r.shipper(t, "node-a", 4).Step(ctx); err != nil || n != 12 {
			t.Fatalf("Step = %d, %v; want 12", n, err)
		}
		r.mustHoldEachOnce(t, 12)
	})
}

func countActions(t *testing.T, db *sqlstore.DB, action string) int {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// A refusal raises a security alert: the built-in monitoring rule names this package's action.
func TestShip_RefusalHasAMonitoringRule(t *testing.T) {
	t.Parallel()
	for _, r := range rules.Defaults() {
		if r.Action == auditship.ActionShipRefused && r.Severity == rules.SevCritical {
			return
		}
	}
	t.Fatalf("no critical built-in rule matches %s", auditship.ActionShipRefused)
}
