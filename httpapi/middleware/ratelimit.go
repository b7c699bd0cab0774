package middleware

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"tutela"
)

// Defaults for NewRateLimiter. 100k clients at roughly 200 bytes each is about 20 MB.
const (
	DefaultMaxClients = 100_000
	DefaultIdleAfter  = 10 * time.Minute
)

// RateLimiter limits requests per client with a token bucket each (golang.org/x/time/rate):
// rps tokens per second refill a bucket of burst. Clients are keyed by the address ClientIP
// resolved (never by a raw header, so a spoofed X-Forwarded-For cannot buy a fresh bucket), an
// IPv6 client by its /64 (tutela.ClientNetwork, as the sign-in throttles do): one host is
// usually given a whole /64 (RFC 6177) and could otherwise rotate through 2^64 addresses.
//
// Memory is bounded: buckets live in an LRU list, those idle longer than the idle time are
// dropped as new requests arrive, and at most MaxClients are kept, the least recently seen
// evicted first. The idle time is never shorter than a bucket's refill time, so dropping an idle
// bucket is indistinguishable from keeping it. Only the size cap can forget a bucket that is
// not yet full: an attacker holding more than MaxClients /64s can cycle through them faster
// than they are remembered; at that scale the defence belongs upstream (a CDN or firewall).
type RateLimiter struct {
	rps   rate.Limit
	burst int
	now   tutela.Clock

	maxClients int
	idleAfter  time.Duration
	exempt     map[string]bool

	mu      sync.Mutex
	lru     *list.List // of *bucket, most recently seen at the front
	buckets map[netip.Prefix]*list.Element

	// The shared limit (ratelimit_shared.go); store is nil when each node limits alone.
	store   CountStore
	span    time.Duration // window length
	limit   int64         // requests per client per span, all nodes together
	dirty   []*bucket     // clients seen since the last flush
	stale   []WindowCount // counts of ended windows not sent yet
	pruned  int64         // window of the last prune
	flushMu sync.Mutex
}

type bucket struct {
	key      netip.Prefix
	lim      *rate.Limiter
	lastSeen time.Time
	sh       *shared // with ShareCounts
}

// RateLimitOption configures a RateLimiter.
type RateLimitOption func(*RateLimiter)

// ExemptPaths exempts requests whose URL path is exactly one of paths, for probes and scrapes
// (/healthz, /readyz, /metrics) that must not be starved by, or counted against, client traffic.
// Exempt handlers must be cheap, since anyone can call them without limit.
func ExemptPaths(paths ...string) RateLimitOption {
	return func(l *RateLimiter) {
		for _, p := range paths {
			l.exempt[p] = true
		}
	}
}

// MaxClients caps the number of buckets kept (default DefaultMaxClients).
func MaxClients(n int) RateLimitOption {
	return func(l *RateLimiter) {
		if n > 0 {
			l.maxClients = n
		}
	}
}

// IdleAfter sets how long a client must be silent before its bucket is dropped (default
// DefaultIdleAfter, and never less than the time a bucket takes to refill).
func IdleAfter(d time.Duration) RateLimitOption {
	return func(l *RateLimiter) { l.idleAfter = d }
}

// NewRateLimiter returns a limiter allowing each client rps requests per second with bursts of
// burst. A nil clock means tutela.SystemClock. rps ≤ 0 or burst < 1 refuse every request: a
// misconfiguration fails closed.
func NewRateLimiter(rps float64, burst int, clock tutela.Clock, opts ...RateLimitOption) *RateLimiter {
	if clock == nil {
		clock = tutela.SystemClock
	}
	l := &RateLimiter{
		rps:        rate.Limit(rps),
		burst:      burst,
		now:        clock,
		maxClients: DefaultMaxClients,
		idleAfter:  DefaultIdleAfter,
		exempt:     map[string]bool{},
		lru:        list.New(),
		buckets:    map[netip.Prefix]*list.Element{},
	}
	for _, o := range opts {
		o(l)
	}
	if rps <= 0 || burst < 1 {
		// An empty bucket that never refills, and is therefore never forgotten.
		l.rps, l.burst, l.idleAfter = 0, 0, math.MaxInt64
	} else if fill := time.Duration(float64(burst) / rps * float64(time.Second)); l.idleAfter < fill {
		l.idleAfter = fill
	}
	l.initShared()
	if l.span > 0 && l.idleAfter < 2*l.span {
		// The shared estimate weighs the previous window too: forgetting a client sooner would
		// forget its count there.
		l.idleAfter = 2 * l.span
	}
	return l
}

// Middleware refuses a client over its rate with 429 rate_limited and a Retry-After header
// saying when its next token arrives.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.exempt[r.URL.Path] {
			if ok, wait := l.Allow(clientAddr(r)); !ok {
				WriteError(w, r, WithRetryAfter(
					tutela.Errorf(tutela.ERATELIMITED, "too many requests"), wait))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Allow takes a token from addr's bucket. If there is none it reports false and how long until
// one is available. The zero Addr (no IP peer, e.g. a Unix socket) is one client.
func (l *RateLimiter) Allow(addr netip.Addr) (bool, time.Duration) {
	key := tutela.ClientNetwork(addr)
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)

	var b *bucket
	if e, ok := l.buckets[key]; ok {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
	} else {
		for l.lru.Len() >= l.maxClients {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.rps, l.burst)}
		l.buckets[key] = l.lru.PushFront(b)
	}
	b.lastSeen = now

	if l.span > 0 {
		// The shared limit first, so that a refusal there takes no token from the bucket.
		if wait := l.sharedWait(b, now); wait > 0 {
			return false, wait
		}
	}
	if b.lim.AllowN(now, 1) {
		if b.sh != nil {
			b.sh.pend++
		}
		return true, 0
	}
	if l.rps <= 0 || l.burst < 1 {
		return false, time.Hour // misconfigured to refuse all; any finite hint will do
	}
	// AllowN took nothing, so the bucket holds tokens < 1; the next whole one is this far off.
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.rps) * float64(time.Second))
}

// evictIdle drops buckets not seen for idleAfter. The LRU list is in last-seen order, so it
// stops at the first recent one: amortised O(1) per request, and no sweeper goroutine to stop.
func (l *RateLimiter) evictIdle(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if now.Sub(e.Value.(*bucket).lastSeen) < l.idleAfter {
			return
		}
		l.remove(e)
	}
}

func (l *RateLimiter) remove(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// Len returns the number of clients currently tracked.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
