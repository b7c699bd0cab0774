package client

import (
	"context"
	"errors"
	"sync"
	"time"
)

// cache is a bounded map of values that expire, with one loader per key at a time: when many
// requests carrying the same new token arrive together, Tutela is asked once, not once each.
type cache[V any] struct {
	mu        sync.Mutex
	limit     int
	entries   map[string]cacheEntry[V]
	inflight  map[string]*cacheCall[V]
	nextSweep time.Time
}

type cacheEntry[V any] struct {
	v   V
	exp time.Time
}

type cacheCall[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func newCache[V any](limit int) *cache[V] {
	return &cache[V]{limit: limit, entries: map[string]cacheEntry[V]{}, inflight: map[string]*cacheCall[V]{}}
}

// sweepInterval is how often a put removes every expired entry, so memory follows the
// working set rather than everything seen since start.
const sweepInterval = time.Minute

func (c *cache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// putLocked stores v until exp. When full, it drops expired entries and then, if still full,
// arbitrary ones: a lost entry costs one more call to Tutela, never a wrong answer.
func (c *cache[V]) putLocked(key string, v V, exp, now time.Time) {
	if !now.Before(exp) {
		return
	}
	if len(c.entries) >= c.limit || !now.Before(c.nextSweep) {
		c.nextSweep = now.Add(sweepInterval)
		for k, e := range c.entries {
			if !now.Before(e.exp) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.limit {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry[V]{v: v, exp: exp}
}

// do returns the cached value for key, or calls load once for all concurrent callers and
// caches its value until the expiry load returns. Errors are not cached. A caller whose ctx
// ends stops waiting; the load goes on for the others.
func (c *cache[V]) do(ctx context.Context, key string, now func() time.Time, load func() (V, time.Time, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now().Before(e.exp) {
		c.mu.Unlock()
		return e.v, nil
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.v, call.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	call := &cacheCall[V]{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()

	var exp time.Time
	// Deferred so that waiters are released even if load panics.
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		if call.err == nil {
			c.putLocked(key, call.v, exp, now())
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = errLoadPanicked
	call.v, exp, call.err = load()
	return call.v, call.err
}

var errLoadPanicked = errors.New("client: cache loader panicked")

func (c *cache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
