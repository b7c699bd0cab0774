package password

import (
	"runtime/debug"
	"sync"
	"time"
)

// Garbage-collector headroom while hashing.
//
// Every Argon2id computation allocates its memory parameter afresh (19 MiB by default;
// golang.org/x/crypto/argon2 has no way to reuse a buffer, and we do not fork it). With the
// default GOGC=100 the heap goal is about twice the live heap, and under sign-in load the live
// heap is mostly the hashes in flight, so the collector runs every two or three hashes: each
// cycle marks the rest of the heap, slows the hashes with its assists, and lets the scavenger
// return freed hashing memory to the OS, to be faulted back in (and zeroed by the kernel) by
// the next hash. Raising the GC percent while hashes are in flight makes cycles rarer and keeps the
// hashing memory mapped; restoring it once hashing has stopped for a while gives the memory
// back, so an idle server is as small as before.

// Serve's setting (tutela serve, and the sign-in benchmarks that stand for it): GOGC=400 while
// hashes are in flight, back to the previous value a second after the last one. CPU profiles of
// BenchmarkSignInConcurrent (8 clients, SQLite, a busy 2-core machine) with GOGC set for the
// whole run: GOGC=100 — 63 collections, the collector 6.7% of the process's CPU, Argon2id 78%,
// heap peak 105 MB; GOGC=200 — 37, 2.7%, 81%, 145 MB; GOGC=400 — 22, 1.5%, 84%, 240 MB. Set
// GOMEMLIMIT to cap the heap, or GOGC to keep the collector as it is.
const (
	ServeGCBoostPercent = 400
	ServeGCBoostLinger  = time.Second
)

// gcBoost raises the garbage collector's percent while hashes are in flight and restores it
// linger after the last one ends (a steady stream of sign-ins keeps it raised, instead of
// flapping between hashes). It never lowers the percent, and leaves it alone when the collector
// is off (GOGC=off).
type gcBoost struct {
	percent int
	linger  time.Duration
	// set is debug.SetGCPercent; after is time.AfterFunc returning its Stop. Tests replace
	// both, so they neither touch the process's collector nor wait.
	set   func(int) int
	after func(time.Duration, func()) func() bool

	mu       sync.Mutex
	inFlight int
	on       bool // the percent is raised; restore holds the one to put back
	off      bool // the percent was already at least as high, or the collector off: do nothing
	restore  int  // the percent before raising it
	stop     func() bool
	gen      uint64 // bumped whenever a pending restore must not happen
}

func newGCBoost(percent int, linger time.Duration) *gcBoost {
	return &gcBoost{percent: percent, linger: linger, set: debug.SetGCPercent,
		after: func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }}
}

// start is called when a hash takes a slot.
func (g *gcBoost) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight++
	if g.stop != nil {
		g.stop()
		g.stop = nil
	}
	g.gen++ // a restore already past Stop finds a newer generation and does nothing
	if g.on || g.off {
		return
	}
	prev := g.set(g.percent)
	if prev < 0 || prev >= g.percent {
		// GOGC=off, or set at least as high by the operator: theirs to keep.
		g.set(prev)
		g.off = true
		return
	}
	g.restore, g.on = prev, true
}

// end is called when a hash gives its slot back.
func (g *gcBoost) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if g.inFlight > 0 || !g.on {
		return
	}
	g.gen++
	gen := g.gen
	g.stop = g.after(g.linger, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if gen != g.gen || g.inFlight > 0 || !g.on {
			return
		}
		g.set(g.restore)
		g.on, g.stop = false, nil
	})
}

// BoostGC makes h raise the garbage collector's percent to percent while any hash is in
// flight, and restore the previous value linger after the last hash ends. The collector's
// percent is the process's, so so is the boost: every Hasher that calls BoostGC shares one
// count of hashes in flight (one Hasher's restore never lowers the percent under another's
// hash, nor does a second Hasher take the first one's raised percent for the operator's), and
// the latest call's percent and linger apply from the next time it is raised. tutela serve
// boosts its one Hasher unless GOGC is set in the environment; GOMEMLIMIT still caps the heap.
// It leaves the percent alone when it is already at least percent, or the collector is off.
// Call it before h is used; percent ≤ 0 stops h boosting.
func (h *Hasher) BoostGC(percent int, linger time.Duration) {
	if percent <= 0 {
		h.boost = nil
		return
	}
	processBoost.mu.Lock()
	defer processBoost.mu.Unlock()
	if processBoost.g == nil {
		processBoost.g = newGCBoost(percent, max(linger, 0))
	} else {
		processBoost.g.configure(percent, max(linger, 0))
	}
	h.boost = processBoost.g
}

// processBoost is the one boost of the process, shared by every Hasher that boosts.
var processBoost struct {
	mu sync.Mutex
	g  *gcBoost
}

// configure sets the percent and linger used from the next raise on.
func (g *gcBoost) configure(percent int, linger time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.percent, g.linger = percent, linger
}
