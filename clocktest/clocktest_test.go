package clocktest

import (
	"sync"
	"testing"
	"time"
)

func TestClock_MovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := New(t0)
	first := c.Now()
	if !first.Equal(t0) || !c.Now().Equal(first) {
		t.Fatal("the clock moved by itself")
	}
	c.Add(90 * time.Second)
	if got := c.Now(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("after Add: %v", got)
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Fatal("Set did not move the clock back")
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { c.Add(time.Second); _ = c.Now() })
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(t0.Add(100 * time.Second)) {
		t.Fatalf("concurrent Adds lost updates: %v", got)
	}
}
