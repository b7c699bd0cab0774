package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

func TestRequestID_AcceptsOnlyWellFormedIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string // X-Request-ID values sent
		keep    bool
	}{
		{"none", nil, false},
		{"valid", []string{"abc-123_X.y"}, true},
		{"uuid", []string{"018f2b6e-7c1a-7d3e-9a4b-0c1d2e3f4a5b"}, true},
		{"max length", []string{strings.Repeat("a", 64)}, true},
		{"too long", []string{strings.Repeat("a", 65)}, false},
		{"empty", []string{""}, false},
		{"space", []string{"abc def"}, false},
		{"markup", []string{"<script>alert(1)</script>"}, false},
		{"header injection", []string{"abc\r\nSet-Cookie: session=evil"}, false},
		{"log injection", []string{"abc\n{\"level\":\"ERROR\"}"}, false},
		{"non-ASCII", []string{"abcé"}, false},
		{"two headers", []string{"a", "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var seen string
			h := middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = middleware.RequestIDFrom(r.Context())
			}))
			req := httptest.NewRequest("GET", "/", nil)
			for _, v := range tt.headers {
				req.Header.Add("X-Request-ID", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			echoed := rec.Header().Values("X-Request-ID")
			if len(echoed) != 1 || echoed[0] != seen {
				t.Fatalf("response X-Request-ID = %q, context = %q", echoed, seen)
			}
			if tt.keep {
				if seen != tt.headers[0] {
					t.Errorf("id = %q, want the client's %q", seen, tt.headers[0])
				}
				return
			}
			if !tutela.ValidID(seen) {
				t.Errorf("id = %q, want a generated UUID", seen)
			}
		})
	}
}

func TestRequestID_GeneratedIDsDiffer(t *testing.T) {
	t.Parallel()
	h := middleware.RequestID(okHandler)
	seen := map[string]bool{}
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		id := rec.Header().Get("X-Request-ID")
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestRequestIDFrom_EmptyOutsideMiddleware(t *testing.T) {
	t.Parallel()
	if id := middleware.RequestIDFrom(t.Context()); id != "" {
		t.Errorf("RequestIDFrom = %q, want empty", id)
	}
}

func TestLogger_CarriesRequestIDInEitherOrder(t *testing.T) {
	t.Parallel()
	for _, loggerFirst := range []bool{true, false} {
		logger, logs := newLogger()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			middleware.Logger(r.Context()).Info("hello", "k", "v")
		})
		var chained http.Handler
		if loggerFirst {
			chained = middleware.Chain(h, middleware.WithLogger(logger), middleware.RequestID)
		} else {
			chained = middleware.Chain(h, middleware.RequestID, middleware.WithLogger(logger))
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Request-ID", "trace-7")
		chained.ServeHTTP(httptest.NewRecorder(), req)

		lines := logs.lines(t)
		if len(lines) != 1 || lines[0]["request_id"] != "trace-7" || lines[0]["msg"] != "hello" {
			t.Errorf("loggerFirst=%v: log = %v", loggerFirst, lines)
		}
	}
}
