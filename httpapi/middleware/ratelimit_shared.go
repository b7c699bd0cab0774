package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"time"
)

// The shared limit (ShareCounts): on several nodes behind one load balancer, each node's token
// bucket alone lets a client through N times as often. With ShareCounts, every node also counts
// the requests it allows per client in fixed windows, adds its counts to the store every flush
// interval in one statement and reads back the totals of all nodes, and refuses a client whose
// sliding-window estimate (the previous window's total weighted by how much of it still
// overlaps the last span, plus the current window's) has reached the limit. The request path
// never waits on the database.
//
// The window is the time the bucket takes to fill, burst/rps (at least a second), and the
// limit the bucket's size over it, so one node alone limits as its bucket did: default 20 rps
// and burst 40 are 40 requests per client per 2 s across all nodes together.
//
// Overshoot: a node sees the other nodes' requests only as of its own last flush, and each of
// them has sent its counts only as of its own last flush, so what another node allowed in the
// last two flush intervals (plus a flush's round trip) can be unseen. Across N nodes a client
// gets at most the limit plus what the other N−1 nodes allowed it in those two intervals, each
// of which its own bucket bounds (burst + rps·2·interval). A client that spreads its requests
// evenly over the nodes, at the default 200 ms, gets through about limit·(1 + 0.4 s/window);
// one that stops being refused by one node and moves to the next does no better. Nodes whose
// clocks disagree by d share windows shifted by d; keep them within NTP's milliseconds.
//
// If the store cannot be reached, a node keeps limiting on what it knows: the totals it read
// last plus everything it allowed since (retried at each flush), so the limit never lifts; at
// worst each node then allows the limit on its own, as before ShareCounts.

// WindowCount is one client's allowed requests in one fixed window, as the nodes share them.
type WindowCount struct {
	Key    []byte // SHA-256 over the window's length and the client network: no address
	Window int64  // Unix time divided by the window's length
	Hits   int64
}

// CountStore is where nodes share their counts: sqlstore.DB on PostgreSQL (through httpapi).
type CountStore interface {
	// AddRateCounts adds deltas and returns the totals of windows numbered since or later
	// for keys, all nodes' counts included.
	AddRateCounts(ctx context.Context, deltas []WindowCount, keys [][]byte, since int64) ([]WindowCount, error)
	// PruneRateCounts deletes the windows numbered before before.
	PruneRateCounts(ctx context.Context, before int64) (int64, error)
}

// ShareCounts makes the limit hold across every node counting in store; run Run (or call Flush)
// to share. Without it each node limits alone (SQLite, a single node).
func ShareCounts(store CountStore) RateLimitOption {
	return func(l *RateLimiter) { l.store = store }
}

// shared is a client's part in the shared limit, kept on its bucket.
type shared struct {
	key       []byte
	win       int64 // the window cur counts
	cur, prev int64 // all nodes' totals for win and win-1 as last read back
	pend      int64 // allowed here in win and not sent yet
	fly       int64 // allowed here in win and sent, the totals not read back yet
	dirty     bool  // seen since the last flush (on RateLimiter.dirty)
}

// flushed is what one flush sent for one client.
type flushed struct {
	b   *bucket
	win int64
	n   int64
}

func (l *RateLimiter) initShared() {
	if l.store == nil || l.rps <= 0 || l.burst < 1 {
		return
	}
	l.span = max(time.Second, time.Duration(float64(l.burst)/float64(l.rps)*float64(time.Second))).Truncate(time.Millisecond)
	l.limit = int64(math.Ceil(float64(l.rps) * l.span.Seconds()))
}

func (l *RateLimiter) windowOf(t time.Time) int64 { return t.UnixNano() / int64(l.span) }

func (l *RateLimiter) sharedKey(b *bucket) []byte {
	h := sha256.New()
	h.Write([]byte("tutela rate window v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(l.span.Milliseconds()))) // #nosec G115 -- span ≥ 1 s, positive
	h.Write([]byte(b.key.String()))
	return h.Sum(nil)
}

// roll moves s to window w: the current window's counts, as this node knows them, become the
// previous window's (or nothing, after a gap); its unsent count is sent with the next flush.
func (l *RateLimiter) roll(s *shared, w int64) {
	if s.win >= w {
		return
	}
	if s.win == w-1 {
		s.prev = s.cur + s.pend + s.fly
	} else {
		s.prev = 0
	}
	if s.pend > 0 {
		l.stale = append(l.stale, WindowCount{Key: s.key, Window: s.win, Hits: s.pend})
	}
	s.win, s.cur, s.pend, s.fly = w, 0, 0, 0
}

// sharedWait is 0 when the client is under the shared limit at now, else how long until it is.
// l.mu is held.
func (l *RateLimiter) sharedWait(b *bucket, now time.Time) time.Duration {
	w := l.windowOf(now)
	s := b.sh
	if s == nil {
		s = &shared{key: l.sharedKey(b), win: w}
		b.sh = s
	}
	l.roll(s, w)
	if !s.dirty {
		s.dirty = true
		l.dirty = append(l.dirty, b)
	}
	start := time.Unix(0, w*int64(l.span))
	frac := float64(now.Sub(start)) / float64(l.span)
	cur, prev, room := float64(s.cur+s.pend+s.fly), float64(s.prev), float64(l.limit-1)
	if prev*(1-frac)+cur <= room {
		return 0
	}
	var at time.Time
	if cur <= room && prev > 0 {
		// Later in this window, once enough of the previous one has slid out.
		at = start.Add(time.Duration((1 - (room-cur)/prev) * float64(l.span)))
	} else {
		// In the next window, where this one's count is the previous one's.
		at = start.Add(l.span).Add(time.Duration(max(0, 1-room/cur) * float64(l.span)))
	}
	return max(at.Sub(now), time.Millisecond)
}

// Flush sends what this node allowed since the last flush and reads back every node's totals
// for the clients it has seen since, in one store transaction; every so often it also prunes
// old windows. On error the counts are kept and sent with the next flush, and the node goes on
// limiting with what it knows. Flushes do not overlap.
func (l *RateLimiter) Flush(ctx context.Context) error {
	if l.store == nil || l.span == 0 {
		return nil
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()

	l.mu.Lock()
	w := l.windowOf(l.now())
	items := make([]flushed, 0, len(l.dirty))
	keys := make([][]byte, 0, len(l.dirty))
	var deltas []WindowCount
	for _, b := range l.dirty {
		s := b.sh
		s.dirty = false
		l.roll(s, w)
		items = append(items, flushed{b: b, win: s.win, n: s.pend})
		keys = append(keys, s.key)
		if s.pend > 0 {
			deltas = append(deltas, WindowCount{Key: s.key, Window: s.win, Hits: s.pend})
			s.fly, s.pend = s.fly+s.pend, 0
		}
	}
	clear(l.dirty)
	l.dirty = l.dirty[:0]
	var stale []WindowCount
	for _, c := range l.stale {
		if c.Window >= w-1 { // older windows no longer weigh on any estimate
			stale = append(stale, c)
		}
	}
	deltas = append(deltas, stale...)
	l.stale = nil
	l.mu.Unlock()

	var totals []WindowCount
	var err error
	if len(deltas) > 0 || len(keys) > 0 {
		totals, err = l.store.AddRateCounts(ctx, deltas, keys, w-1)
	}

	l.mu.Lock()
	if err != nil {
		for _, it := range items {
			s := it.b.sh
			if s.win == it.win {
				s.fly, s.pend = s.fly-it.n, s.pend+it.n
			} else if it.n > 0 {
				l.stale = append(l.stale, WindowCount{Key: s.key, Window: it.win, Hits: it.n})
			}
			if s.pend > 0 && !s.dirty { // sent again next time, requested or not
				s.dirty = true
				l.dirty = append(l.dirty, it.b)
			}
		}
		l.stale = append(l.stale, stale...)
		l.mu.Unlock()
		return err
	}
	type kw struct {
		key string
		win int64
	}
	sum := make(map[kw]int64, len(totals))
	for _, c := range totals {
		sum[kw{string(c.Key), c.Window}] = c.Hits
	}
	for _, it := range items {
		s := it.b.sh
		switch s.win {
		case it.win:
			s.fly -= it.n
			s.cur = sum[kw{string(s.key), it.win}]
			s.prev = max(s.prev, sum[kw{string(s.key), it.win - 1}])
		case it.win + 1: // the window ended while the flush ran
			s.prev = max(s.prev, sum[kw{string(s.key), it.win}])
		}
	}
	prune := w-l.pruned >= l.pruneEvery()
	if prune {
		l.pruned = w
	}
	l.mu.Unlock()
	if prune {
		if _, err := l.store.PruneRateCounts(ctx, w-2); err != nil {
			return err
		}
	}
	return nil
}

// pruneEvery is how many windows pass between prunes: about every 30 s.
func (l *RateLimiter) pruneEvery() int64 {
	return max(1, int64(30*time.Second/l.span))
}

// Run flushes every interval until ctx ends. A store that cannot be reached is logged by logf
// when the flushes start failing and when they recover, not at every flush.
func (l *RateLimiter) Run(ctx context.Context, every time.Duration, logf func(err error)) {
	if l.store == nil || l.span == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, max(every*5, 2*time.Second))
		err := l.Flush(fctx)
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			logf(err)
		case err == nil && failing:
			failing = false
			logf(nil)
		}
	}
}
