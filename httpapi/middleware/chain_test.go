package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

func TestChain_FirstIsOutermost(t *testing.T) {
	t.Parallel()
	var order []string
	mw := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name+">")
				next.ServeHTTP(w, r)
				order = append(order, "<"+name)
			})
		}
	}
	h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		order = append(order, "h")
	}), mw("a"), mw("b"), mw("c"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got := strings.Join(order, " "); got != "a> b> c> h <c <b <a" {
		t.Errorf("order = %s", got)
	}
}

func TestChain_Empty(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.Chain(okHandler).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Body.String() != "ok" {
		t.Errorf("body = %q", rec.Body)
	}
}

// BenchmarkChain measures the per-request cost of the full middleware stack around a trivial
// handler: go test -run '^$' -bench Chain -benchmem ./httpapi/middleware
func BenchmarkChain(b *testing.B) {
	logger := slog.New(middleware.NewRedactingHandler(slog.NewJSONHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	cip := middleware.ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	lim := middleware.NewRateLimiter(1e12, 1<<30, tutela.SystemClock)
	h := middleware.Chain(mux,
		middleware.WithLogger(logger),
		middleware.RequestID,
		cip.Middleware,
		middleware.AccessLog,
		middleware.Recover,
		middleware.SecurityHeaders(true),
		lim.Middleware,
		middleware.BodyLimit(1<<20),
	)
	req := httptest.NewRequest("GET", "/v1/users/42", nil)
	req.RemoteAddr = "10.0.0.1:443"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Request-ID", "bench-1")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
