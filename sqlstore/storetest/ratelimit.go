package storetest

import (
	"fmt"
	"sync"
	"testing"

	"tutela/sqlstore"
)

// RateLimitTests cover the request counts nodes share (rate_windows): the shared rate limit
// is only as good as the sums being exact under concurrent flushes.
var RateLimitTests = []Test{
	{"RateCountsAddUpAcrossConcurrentNodes", testRateCountsAddUp},
	{"RateCountsPruneOldWindows", testRateCountsPrune},
}

// Several "nodes" flushing deltas for overlapping clients at once lose no count, and each
// reads back the totals of the windows it asked for, of the keys it asked for, only.
func testRateCountsAddUp(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	const nodes, flushes = 4, 25
	keys := [][]byte{[]byte("client-a"), []byte("client-b"), []byte("client-c")}
	var wg sync.WaitGroup
	for n := range nodes {
		wg.Go(func() {
			for f := range flushes {
				// Each node lists the clients in its own order; the store must not deadlock.
				deltas := []sqlstore.RateCount{
					{Key: keys[(n+f)%3], Window: 100, Hits: 2},
					{Key: keys[(n+f+1)%3], Window: 100, Hits: 1},
					{Key: keys[(n+f+2)%3], Window: 101, Hits: 1},
					{Key: keys[0], Window: 101, Hits: 0}, // nothing to add: ignored
				}
				if _, err := db.AddRateCounts(ctx, deltas, keys, 100); err != nil {
					t.Errorf("node %d flush %d: %v", n, f, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := db.AddRateCounts(ctx, []sqlstore.RateCount{{Key: []byte("other"), Window: 101, Hits: 5}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	got, err := db.AddRateCounts(ctx, nil, keys[:2], 101)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, c := range got {
		sums[fmt.Sprintf("%s/%d", c.Key, c.Window)] = c.Hits
	}
	// Every client got 2+1 hits in window 100 and 1 in window 101 from each flush of each node
	// over the three rotations; window 100 is before since and not read.
	want := map[string]int64{}
	for _, k := range keys[:2] {
		var w101 int64
		for n := range nodes {
			for f := range flushes {
				if string(keys[(n+f+2)%3]) == string(k) {
					w101++
				}
			}
		}
		want[fmt.Sprintf("%s/101", k)] = w101
	}
	if fmt.Sprint(sums) != fmt.Sprint(want) {
		t.Fatalf("totals %v, want %v", sums, want)
	}
	all, err := db.AddRateCounts(ctx, nil, keys, 100)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, c := range all {
		total += c.Hits
	}
	if total != nodes*flushes*4 {
		t.Fatalf("%d hits in all, want %d", total, nodes*flushes*4)
	}
}

// Pruning drops whole windows before the cut and nothing after it.
func testRateCountsPrune(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := []byte("client")
	var deltas []sqlstore.RateCount
	for w := int64(1); w <= 5; w++ {
		deltas = append(deltas, sqlstore.RateCount{Key: k, Window: w, Hits: w})
	}
	if _, err := db.AddRateCounts(ctx, deltas, nil, 0); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneRateCounts(ctx, 4)
	if err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	got, err := db.AddRateCounts(ctx, nil, [][]byte{k}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Window+got[1].Window != 9 {
		t.Fatalf("left %+v, want windows 4 and 5", got)
	}
}
