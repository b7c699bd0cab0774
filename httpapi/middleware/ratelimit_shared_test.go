package middleware_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/httpapi/middleware"
)

// memCounts is the shared store in memory, as the nodes of one process would share it; fail
// makes it unreachable.
type memCounts struct {
	mu   sync.Mutex
	hits map[kw]int64
	fail bool
}

type kw struct {
	key string
	win int64
}

func newMemCounts() *memCounts { return &memCounts{hits: map[kw]int64{}} }

func (m *memCounts) AddRateCounts(_ context.Context, deltas []middleware.WindowCount, keys [][]byte, since int64) ([]middleware.WindowCount, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errors.New("unreachable")
	}
	for _, d := range deltas {
		m.hits[kw{string(d.Key), d.Window}] += d.Hits
	}
	var out []middleware.WindowCount
	for k, n := range m.hits {
		for _, key := range keys {
			if k.key == string(key) && k.win >= since {
				out = append(out, middleware.WindowCount{Key: key, Window: k.win, Hits: n})
			}
		}
	}
	return out, nil
}

func (m *memCounts) PruneRateCounts(_ context.Context, before int64) (int64, error) { return 0, nil }

func (m *memCounts) setFail(f bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

// window boundary for rps 20, burst 40: a 2 s span.
var sharedT0 = time.Unix(1_900_000_000, 0)

// A client at the shared limit is told when the sliding window lets it in again, and is let in
// then, not before.
func TestSharedLimit_RetryAfterSaysWhenTheWindowAllows(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(sharedT0)
	l := middleware.NewRateLimiter(20, 40, clock.Now, middleware.ShareCounts(newMemCounts()))
	client := netip.MustParseAddr("192.0.2.9")
	for i := range 40 {
		if ok, _ := l.Allow(client); !ok {
			t.Fatalf("request %d refused", i+1)
		}
		if i%10 == 9 {
			clock.Add(400 * time.Millisecond) // 40 in the first 1.6 s; the bucket keeps up
		}
	}
	ok, wait := l.Allow(client)
	if ok || wait <= 0 {
		t.Fatalf("over the limit: %v, %v", ok, wait)
	}
	// 40 in the window starting at sharedT0; now is 1.6 s in. In the next window the estimate
	// is 40·(1−f) and drops to 39 at f = 1/40, 2 s + 50 ms after the window's start.
	if want := 2*time.Second + 50*time.Millisecond - 1600*time.Millisecond; wait != want {
		t.Fatalf("Retry-After %v, want %v", wait, want)
	}
	clock.Add(wait - time.Millisecond)
	if ok, _ := l.Allow(client); ok {
		t.Fatal("let in before the Retry-After")
	}
	clock.Add(time.Millisecond)
	if ok, _ := l.Allow(client); !ok {
		t.Fatal("refused at the Retry-After")
	}
}

// Counts a node made at the end of a window that ended before its flush still reach the store
// for that window, and counts a flush could not send are sent with the next one: nothing is
// lost to a window boundary or an outage.
func TestSharedLimit_CountsSurviveWindowEndsAndOutages(t *testing.T) {
	t.Parallel()
	store := newMemCounts()
	clock := clocktest.New(sharedT0)
	a := middleware.NewRateLimiter(20, 40, clock.Now, middleware.ShareCounts(store))
	b := middleware.NewRateLimiter(20, 40, clock.Now, middleware.ShareCounts(store))
	client := netip.MustParseAddr("2001:db8::5")

	clock.Add(1900 * time.Millisecond)
	for range 15 {
		a.Allow(client)
	}
	store.setFail(true)
	if err := a.Flush(context.Background()); err == nil {
		t.Fatal("flush to an unreachable store succeeded")
	}
	clock.Add(200 * time.Millisecond) // the next window
	store.setFail(false)
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b sees the client now (one request), then reads the totals: the 15 of the previous
	// window weigh 15·(1−0.05) = 14.25 at 100 ms into this one, so b lets the client's count
	// here grow while 14.25 + count ≤ 39: to 25.
	b.Allow(client)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 1
	for range 60 {
		if ok, _ := b.Allow(client); ok {
			n++
		}
	}
	if n != 25 {
		t.Fatalf("b allowed %d after a's 15 of the previous window, want 25", n)
	}
}
