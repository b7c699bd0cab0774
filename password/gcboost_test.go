package password

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// fakeGC stands in for debug.SetGCPercent and time.AfterFunc: it records the percent and
// holds the pending restore until the test fires it.
type fakeGC struct {
	mu      sync.Mutex
	percent int
	sets    int
	pending func()
	lingers []time.Duration
}

func (f *fakeGC) set(p int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.percent
	f.percent, f.sets = p, f.sets+1
	return prev
}

func (f *fakeGC) after(d time.Duration, fn func()) func() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lingers = append(f.lingers, d)
	f.pending = fn
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		stopped := f.pending != nil
		f.pending = nil
		return stopped
	}
}

// fire runs the pending restore, as the timer would once linger has passed.
func (f *fakeGC) fire() {
	f.mu.Lock()
	fn := f.pending
	f.pending = nil
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (f *fakeGC) get() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

func boostedHasher(t *testing.T, slots int, gc *fakeGC) *Hasher {
	t.Helper()
	h, err := NewHasher(testParams, slots, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h.boost = newGCBoost(400, time.Second) // its own, not the process's: tests run in parallel
	h.boost.set, h.boost.after = gc.set, gc.after
	return h
}

func TestBoostGC_RaisedWhileHashingRestoredAfterLinger(t *testing.T) {
	t.Parallel()
	gc := &fakeGC{percent: 100}
	h := boostedHasher(t, 2, gc)
	ctx := context.Background()
	if gc.get() != 100 {
		t.Fatalf("percent %d before any hash", gc.get())
	}
	// Two hashes in flight: raised once, kept while either runs.
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if gc.get() != 400 || gc.sets != 1 {
		t.Fatalf("percent %d after %d sets, want 400 after 1", gc.get(), gc.sets)
	}
	h.release()
	gc.fire() // nothing pending: one hash still runs
	if gc.get() != 400 {
		t.Fatalf("percent %d with a hash in flight, want 400", gc.get())
	}
	h.release()
	if gc.get() != 400 || len(gc.lingers) != 1 || gc.lingers[0] != time.Second {
		t.Fatalf("percent %d, lingers %v: want 400 until the 1s linger passes", gc.get(), gc.lingers)
	}
	gc.fire()
	if gc.get() != 100 {
		t.Fatalf("percent %d after the linger, want 100 restored", gc.get())
	}
	// The next burst raises it again.
	if _, err := h.Hash(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	if gc.get() != 400 {
		t.Fatalf("percent %d after the next burst's hash (before the linger), want 400", gc.get())
	}
	gc.fire()
	if gc.get() != 100 {
		t.Fatalf("percent %d, want 100", gc.get())
	}
}

// A hash that starts within the linger keeps the percent raised, even if the earlier restore's
// timer could no longer be stopped and runs anyway.
func TestBoostGC_HashWithinLingerKeepsItRaised(t *testing.T) {
	t.Parallel()
	gc := &fakeGC{percent: 100}
	h := boostedHasher(t, 1, gc)
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	h.release()
	stale := gc.pending // the restore scheduled by that release
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	stale() // fires late, after a new hash started
	if gc.get() != 400 {
		t.Fatalf("percent %d: a stale restore lowered it under a running hash", gc.get())
	}
	h.release()
	stale()
	if gc.get() != 400 {
		t.Fatalf("percent %d: a stale restore ran in place of the current one", gc.get())
	}
	gc.fire()
	if gc.get() != 100 || gc.sets != 2 {
		t.Fatalf("percent %d after %d sets, want 100 after 2 (raise once, restore once)", gc.get(), gc.sets)
	}
}

// The operator's own setting wins: an already higher percent or GOGC=off is left as it is.
func TestBoostGC_LeavesHigherOrOffAlone(t *testing.T) {
	t.Parallel()
	for _, start := range []int{400, 800, -1} {
		gc := &fakeGC{percent: start}
		h := boostedHasher(t, 1, gc)
		for range 3 {
			if _, err := h.Hash(context.Background(), "pw"); err != nil {
				t.Fatal(err)
			}
			gc.fire()
			if gc.get() != start {
				t.Fatalf("start %d: percent %d", start, gc.get())
			}
		}
		if gc.sets > 2 {
			t.Errorf("start %d: %d calls to SetGCPercent, want the one look and its undo", start, gc.sets)
		}
	}
}

// Failed acquisitions (busy, cancelled) never raise the percent: no hash runs.
func TestBoostGC_NotRaisedWithoutAHash(t *testing.T) {
	t.Parallel()
	gc := &fakeGC{percent: 100}
	h, err := NewHasher(testParams, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.boost = newGCBoost(400, time.Second) // its own, not the process's: tests run in parallel
	h.boost.set, h.boost.after = gc.set, gc.after
	h.sem <- struct{}{} // the only slot taken, outside the boost's view
	if _, err := h.Hash(context.Background(), "pw"); err == nil {
		t.Fatal("Hash got a slot that was taken")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	<-h.sem
	if _, err := h.Hash(ctx, "pw"); err == nil {
		t.Fatal("Hash ran with a cancelled context")
	}
	if gc.sets != 0 {
		t.Fatalf("%d calls to SetGCPercent without any hash", gc.sets)
	}
}

// Without BoostGC a Hasher never touches the collector.
func TestBoostGC_OffByDefault(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	if h.boost != nil {
		t.Fatal("a new Hasher boosts the collector")
	}
	h.BoostGC(400, time.Second)
	h.BoostGC(0, 0)
	if h.boost != nil {
		t.Fatal("BoostGC(0, …) left the boost on")
	}
}

// Not parallel: it changes GOMAXPROCS for the duration of NewHasher (parallel tests start only
// after the sequential ones).
func TestNewHasher_DefaultsConcurrencyToGOMAXPROCS(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	h, err := NewHasher(testParams, 0, 0)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	if cap(h.sem) != 1 {
		t.Errorf("semaphore capacity %d with GOMAXPROCS 1 (NumCPU %d), want 1", cap(h.sem), runtime.NumCPU())
	}
}

// Every Hasher that boosts shares the process's one boost: a second Hasher (each benchmark run
// builds its own) neither mistakes the first one's raised percent for the operator's and stays
// off, nor is lowered under its hashes when the first one's linger ends. Before they shared it,
// BenchmarkCodeFlowRatio ran at GOGC=100 after its first run.
func TestBoostGC_SharedByTheProcessesHashers(t *testing.T) {
	t.Parallel()
	var hs [2]*Hasher
	for i := range hs {
		h, err := NewHasher(testParams, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		h.BoostGC(ServeGCBoostPercent, ServeGCBoostLinger)
		hs[i] = h
	}
	if hs[0].boost != hs[1].boost {
		t.Fatal("two boosting Hashers keep separate counts of the process's hashes in flight")
	}
	// The real collector (unless GOGC is set, which a boost leaves alone): the first Hasher's
	// hash raises the percent, the second one's keeps it.
	for _, h := range hs {
		if _, err := h.Hash(context.Background(), "pw"); err != nil {
			t.Fatal(err)
		}
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		if os.Getenv("GOGC") == "" && p != ServeGCBoostPercent {
			t.Fatalf("GC percent %d right after a boosted hash, want %d", p, ServeGCBoostPercent)
		}
	}
}
