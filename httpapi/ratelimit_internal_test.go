package httpapi

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The default limit: 20 rps with a burst of 40 is, shared, 40 requests per client per 2 s
// window across all nodes.
const (
	sharedRPS, sharedBurst = 20, 40
	sharedLimit            = 40
	sharedSpan             = 2 * time.Second
	flushEvery             = 200 * time.Millisecond
)

// windowStart is a window boundary (a multiple of the 2 s span).
var windowStart = time.Unix(1_800_000_000, 0)

// cutOff is a store a test can take offline.
type cutOff struct {
	middleware.CountStore
	down atomic.Bool
}

var errCutOff = errors.New("database unreachable")

func (c *cutOff) AddRateCounts(ctx context.Context, d []middleware.WindowCount, k [][]byte, since int64) ([]middleware.WindowCount, error) {
	if c.down.Load() {
		return nil, errCutOff
	}
	return c.CountStore.AddRateCounts(ctx, d, k, since)
}

// offer sends n requests from client to each limiter and counts those allowed.
func offer(client netip.Addr, n int, ls ...*middleware.RateLimiter) int {
	allowed := 0
	for range n {
		for _, l := range ls {
			if ok, _ := l.Allow(client); ok {
				allowed++
			}
		}
	}
	return allowed
}

// flushAll flushes every limiter, failing the test on an error unless allowed.
func flushAll(t *testing.T, ls ...*middleware.RateLimiter) {
	t.Helper()
	for _, l := range ls {
		if err := l.Flush(context.Background()); err != nil && !errors.Is(err, errCutOff) {
			t.Fatal(err)
		}
	}
}

// Two nodes on one PostgreSQL database share one limit. A client sends 10 requests to each
// node every flush interval (100 per node per window, well over the limit): together the nodes
// allow at most the limit plus what the other node allowed since the last flush, in every
// window; two nodes that do not share allow each the full limit and more (their buckets
// refill), so the test would fail if the counts were not shared.
func TestSharedRateLimit_TwoNodesShareOneLimit(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{})
	store := rateCounts{db}
	const perStep, steps = 10, int(sharedSpan / flushEvery)
	// Overshoot: within one flush interval a node cannot see what the other allowed in it.
	const bound = sharedLimit + perStep
	client := netip.MustParseAddr("198.51.100.7")

	run := func(a, b *middleware.RateLimiter, clock *clocktest.Clock, windows int) []int {
		var per []int
		for range windows {
			allowed := 0
			for range steps {
				allowed += offer(client, perStep, a, b)
				clock.Add(flushEvery)
				flushAll(t, a, b)
			}
			per = append(per, allowed)
		}
		return per
	}

	clock := clocktest.New(windowStart)
	a := middleware.NewRateLimiter(sharedRPS, sharedBurst, clock.Now, middleware.ShareCounts(store))
	b := middleware.NewRateLimiter(sharedRPS, sharedBurst, clock.Now, middleware.ShareCounts(store))
	shared := run(a, b, clock, 5)
	for w, n := range shared {
		if n > bound {
			t.Errorf("window %d: two sharing nodes allowed %d, want at most %d (limit %d + overshoot %d)", w, n, bound, sharedLimit, perStep)
		}
	}
	if shared[0] < sharedLimit {
		t.Errorf("first window: %d allowed, want the whole limit %d", shared[0], sharedLimit)
	}

	// The same traffic on two nodes that do not share.
	clock2 := clocktest.New(windowStart)
	alone := run(middleware.NewRateLimiter(sharedRPS, sharedBurst, clock2.Now), middleware.NewRateLimiter(sharedRPS, sharedBurst, clock2.Now), clock2, 1)
	if alone[0] < 2*sharedLimit {
		t.Fatalf("unshared nodes allowed only %d; the comparison proves nothing", alone[0])
	}
	t.Logf("allowed per 2 s window: shared %v, unshared %v", shared, alone)

	// Another client is not affected by the first one's count.
	if ok, _ := a.Allow(netip.MustParseAddr("198.51.100.8")); !ok {
		t.Fatal("a second client was refused")
	}
}

// A node cut off from the database goes on limiting: with the totals it read last and what it
// allowed itself since, it refuses the client at the shared limit, never falling back to no
// limit (nor to its token bucket alone, which would allow more); when the database is back,
// its counts reach the other nodes.
func TestSharedRateLimit_CutOffNodeStillLimits(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.Postgres, sqlstore.Options{})
	clock := clocktest.New(windowStart)
	cut := &cutOff{CountStore: rateCounts{db}}
	a := middleware.NewRateLimiter(sharedRPS, sharedBurst, clock.Now, middleware.ShareCounts(rateCounts{db}))
	c := middleware.NewRateLimiter(sharedRPS, sharedBurst, clock.Now, middleware.ShareCounts(cut))
	client := netip.MustParseAddr("2001:db8:7::1")

	// Node a allows 30; c, asked once (a node reads back the totals of the clients it has
	// seen since its last flush), learns of them, then loses the database.
	if n := offer(client, 30, a); n != 30 {
		t.Fatalf("a allowed %d of 30", n)
	}
	clock.Add(flushEvery)
	flushAll(t, a)
	if n := offer(client, 1, c); n != 1 {
		t.Fatal("c refused the client's first request")
	}
	flushAll(t, c)
	cut.down.Store(true)
	clock.Add(flushEvery)
	n := 0
	for range int(sharedSpan/flushEvery) - 2 { // the rest of the window
		n += offer(client, 20, c)
		if err := c.Flush(context.Background()); !errors.Is(err, errCutOff) {
			t.Fatalf("flush while cut off: %v", err)
		}
		clock.Add(flushEvery)
	}
	if n != sharedLimit-31 {
		t.Fatalf("cut-off node allowed %d more in the window, want the %d left of the limit", n, sharedLimit-31)
	}

	// Windows later, still cut off: it allows the limit by itself, not its bucket's worth.
	clock.Set(windowStart.Add(10 * sharedSpan))
	n = 0
	for range int(sharedSpan / flushEvery) {
		n += offer(client, 20, c)
		_ = c.Flush(context.Background())
		clock.Add(flushEvery)
	}
	if n != sharedLimit {
		t.Fatalf("cut-off node allowed %d in one window, want the limit %d", n, sharedLimit)
	}

	// Back online: what c allowed while cut off reaches a once c flushes.
	cut.down.Store(false)
	clock.Set(windowStart.Add(20 * sharedSpan))
	if got := offer(client, 25, c); got != 25 {
		t.Fatalf("c allowed %d of 25 in a fresh window", got)
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := offer(client, 1, a); got != 1 { // a sees the client, then reads its total
		t.Fatal("a refused the client's first request in the window")
	}
	flushAll(t, a)
	if got := offer(client, 40, a); got != sharedLimit-26 {
		t.Fatalf("a allowed %d more after c's 25 and its own 1, want %d", got, sharedLimit-26)
	}
}
