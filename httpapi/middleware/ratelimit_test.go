package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tutela/httpapi/middleware"
)

// hit sends one request from remote (with optional X-Forwarded-For) through h.
func hit(h http.Handler, path, remote, xff string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = remote
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRateLimiter_FloodIsRefusedAndRefills(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const burst = 3
	h := middleware.NewRateLimiter(1, burst, clock.Now).Middleware(okHandler)
	const attacker, bystander = "198.51.100.1:1000", "198.51.100.2:1000"

	for i := range burst {
		if rec := hit(h, "/v1/x", attacker, ""); rec.Code != 200 {
			t.Fatalf("request %d: status %d, want 200", i+1, rec.Code)
		}
	}
	rec := hit(h, "/v1/x", attacker, "")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("request %d: status %d, want 429", burst+1, rec.Code)
	}
	if d := decodeError(t, rec); d.Code != "rate_limited" {
		t.Errorf("code = %q, want rate_limited", d.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}

	if rec := hit(h, "/v1/x", bystander, ""); rec.Code != 200 {
		t.Errorf("another client: status %d, want 200", rec.Code)
	}

	clock.Add(time.Second)
	if rec := hit(h, "/v1/x", attacker, ""); rec.Code != 200 {
		t.Errorf("after refill: status %d, want 200", rec.Code)
	}
	if rec := hit(h, "/v1/x", attacker, ""); rec.Code != 429 {
		t.Errorf("after the refilled token: status %d, want 429", rec.Code)
	}
}

func TestRateLimiter_RetryAfterFromNextToken(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := middleware.NewRateLimiter(0.1, 1, clock.Now).Middleware(okHandler) // one per 10 s
	const client = "198.51.100.1:1000"
	hit(h, "/", client, "")
	tests := []struct {
		advance time.Duration
		want    string
	}{
		{0, "10"},
		{4 * time.Second, "6"},
		{5500 * time.Millisecond, "1"}, // 0.5 s left rounds up
	}
	for _, tt := range tests {
		clock.Add(tt.advance)
		rec := hit(h, "/", client, "")
		if rec.Code != 429 || rec.Header().Get("Retry-After") != tt.want {
			t.Errorf("after +%v: %d Retry-After %q, want 429 %q", tt.advance, rec.Code, rec.Header().Get("Retry-After"), tt.want)
		}
	}
}

// The limiter keys on the address ClientIP resolved. A client talking to us directly cannot
// evade it by inventing X-Forwarded-For values; behind a trusted proxy each real client gets
// its own bucket.
func TestRateLimiter_KeysOnResolvedClientIP(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cip := middleware.ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	lim := middleware.NewRateLimiter(1, 2, clock.Now)
	h := middleware.Chain(okHandler, cip.Middleware, lim.Middleware)

	t.Run("spoofed XFF from untrusted peer", func(t *testing.T) {
		for i := range 5 {
			rec := hit(h, "/", "198.51.100.9:1000", fmt.Sprintf("203.0.113.%d", i))
			if want := map[bool]int{true: 200, false: 429}[i < 2]; rec.Code != want {
				t.Errorf("request %d with spoofed XFF: status %d, want %d", i+1, rec.Code, want)
			}
		}
	})
	t.Run("trusted proxy forwards distinct clients", func(t *testing.T) {
		for i := range 2 {
			if rec := hit(h, "/", "10.0.0.1:1000", "192.0.2.1"); rec.Code != 200 {
				t.Errorf("client A request %d: %d", i+1, rec.Code)
			}
		}
		if rec := hit(h, "/", "10.0.0.1:1000", "192.0.2.1"); rec.Code != 429 {
			t.Errorf("client A over limit: %d, want 429", rec.Code)
		}
		if rec := hit(h, "/", "10.0.0.1:1000", "192.0.2.2, 10.0.0.7"); rec.Code != 200 {
			t.Errorf("client B through two proxies: %d, want 200", rec.Code)
		}
	})
}

// Without ClientIP.Middleware the limiter uses the TCP peer and never reads the header.
func TestRateLimiter_WithoutClientIPUsesPeer(t *testing.T) {
	t.Parallel()
	h := middleware.NewRateLimiter(1, 1, newFakeClock().Now).Middleware(okHandler)
	hit(h, "/", "198.51.100.9:1000", "1.1.1.1")
	if rec := hit(h, "/", "198.51.100.9:1000", "2.2.2.2"); rec.Code != 429 {
		t.Errorf("status %d, want 429", rec.Code)
	}
}

func TestRateLimiter_IPv6KeyedBySlash64(t *testing.T) {
	t.Parallel()
	h := middleware.NewRateLimiter(1, 1, newFakeClock().Now).Middleware(okHandler)
	tests := []struct {
		remote string
		want   int
	}{
		{"[2001:db8:1:2::1]:1000", 200},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1000", 429}, // same /64
		{"[2001:db8:1:2::1%eth0]:1000", 429},             // zone does not make a new client
		{"[2001:db8:1:3::1]:1000", 200},                  // next /64
		{"[::ffff:198.51.100.9]:1000", 200},
		{"198.51.100.9:1000", 429}, // mapped and plain IPv4 are one client
		{"198.51.100.10:1000", 200},
	}
	for _, tt := range tests {
		if rec := hit(h, "/", tt.remote, ""); rec.Code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.remote, rec.Code, tt.want)
		}
	}
}

func TestRateLimiter_ExemptPaths(t *testing.T) {
	t.Parallel()
	lim := middleware.NewRateLimiter(1, 1, newFakeClock().Now, middleware.ExemptPaths("/healthz", "/readyz", "/metrics"))
	h := lim.Middleware(okHandler)
	const client = "198.51.100.1:1000"
	for range 10 {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if rec := hit(h, p, client, ""); rec.Code != 200 {
				t.Fatalf("%s: status %d, want 200", p, rec.Code)
			}
		}
	}
	if rec := hit(h, "/v1/x", client, ""); rec.Code != 200 {
		t.Errorf("exempt requests used up the bucket: %d", rec.Code)
	}
	for _, p := range []string{"/v1/x", "/healthz/", "/healthz/../v1/x"} {
		if rec := hit(h, p, client, ""); rec.Code != 429 {
			t.Errorf("%s: status %d, want 429 (not exempt)", p, rec.Code)
		}
	}
}

func TestRateLimiter_MemoryBoundedByMaxClients(t *testing.T) {
	t.Parallel()
	lim := middleware.NewRateLimiter(1, 1, newFakeClock().Now, middleware.MaxClients(10))
	for i := range 1000 {
		lim.Allow(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
		if n := lim.Len(); n > 10 {
			t.Fatalf("after %d clients Len = %d, want ≤ 10", i+1, n)
		}
	}
	// The least recently seen client went first; the most recent are still limited.
	if ok, _ := lim.Allow(netip.AddrFrom4([4]byte{198, 51, 3, 231})); ok { // i = 999
		t.Error("most recent client was evicted")
	}
}

func TestRateLimiter_IdleClientsEvicted(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	lim := middleware.NewRateLimiter(1, 1, clock.Now, middleware.IdleAfter(time.Minute))
	for i := range 100 {
		lim.Allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	clock.Add(30 * time.Second)
	lim.Allow(netip.MustParseAddr("192.0.2.1"))
	if n := lim.Len(); n != 101 {
		t.Errorf("before idle time Len = %d, want 101", n)
	}
	clock.Add(31 * time.Second)
	lim.Allow(netip.MustParseAddr("192.0.2.2"))
	if n := lim.Len(); n != 2 {
		t.Errorf("after idle time Len = %d, want 2", n)
	}
}

// An idle time shorter than the refill time would let a limited client wait it out and come
// back with a full bucket early; the limiter refuses to forget such a client.
func TestRateLimiter_IdleTimeNeverShorterThanRefill(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	lim := middleware.NewRateLimiter(0.01, 1, clock.Now, middleware.IdleAfter(time.Second)) // refill 100 s
	client := netip.MustParseAddr("198.51.100.1")
	lim.Allow(client)
	clock.Add(50 * time.Second)
	lim.Allow(netip.MustParseAddr("192.0.2.1")) // triggers the idle sweep
	if ok, wait := lim.Allow(client); ok || wait != 50*time.Second {
		t.Errorf("Allow = %v, %v; want refused with 50s to wait", ok, wait)
	}
}

func TestRateLimiter_MisconfiguredFailsClosed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rps   float64
		burst int
	}{{0, 10}, {-1, 10}, {10, 0}} {
		h := middleware.NewRateLimiter(tt.rps, tt.burst, newFakeClock().Now).Middleware(okHandler)
		rec := hit(h, "/", "198.51.100.1:1", "")
		if rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("rps=%v burst=%d: %d Retry-After %q, want 429 with Retry-After", tt.rps, tt.burst, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
}

func TestRateLimiter_ConcurrentClientGetsExactlyBurst(t *testing.T) {
	t.Parallel()
	lim := middleware.NewRateLimiter(1, 50, newFakeClock().Now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for g := range 16 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := lim.Allow(netip.MustParseAddr("198.51.100.1")); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
				lim.Allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(g)}))
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("allowed = %d, want exactly the burst of 50", allowed)
	}
	if n := lim.Len(); n != 17 {
		t.Errorf("Len = %d, want 17", n)
	}
}
