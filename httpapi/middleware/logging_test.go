package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tutela/httpapi/middleware"
)

// server builds the production chain around mux, logging to the returned buffer.
func server(t *testing.T, mux http.Handler, lim *middleware.RateLimiter) (http.Handler, *logBuffer) {
	t.Helper()
	logger, logs := newLogger()
	if lim == nil {
		lim = middleware.NewRateLimiter(100, 100, newFakeClock().Now)
	}
	cip := middleware.ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	return middleware.Chain(mux,
		middleware.WithLogger(logger),
		middleware.RequestID,
		cip.Middleware,
		middleware.AccessLog,
		middleware.Recover,
		middleware.SecurityHeaders(true),
		lim.Middleware,
		middleware.BodyLimit(1<<10),
	), logs
}

func accessLines(t *testing.T, logs *logBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" {
			out = append(out, l)
		}
	}
	return out
}

func TestAccessLog_OneLineWithRouteNotPath(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("hello"))
	})
	h, logs := server(t, mux, nil)

	req := httptest.NewRequest("GET", "/v1/users/u-4242-secret?reset_token=tok-abc123", nil)
	req.RemoteAddr = "10.0.0.1:443"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Request-ID", "req-log")
	req.Header.Set("Authorization", "Bearer bearer-xyz")
	req.Header.Set("Cookie", "session=cookie-xyz")
	h.ServeHTTP(httptest.NewRecorder(), req)

	lines := accessLines(t, logs)
	if len(lines) != 1 {
		t.Fatalf("access lines = %d, want 1: %s", len(lines), logs)
	}
	l := lines[0]
	want := map[string]any{
		"level":      "INFO",
		"method":     "GET",
		"route":      "GET /v1/users/{id}",
		"status":     float64(200),
		"bytes":      float64(5),
		"client_ip":  "203.0.113.7",
		"request_id": "req-log",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	if d, ok := l["duration"].(float64); !ok || d < 0 {
		t.Errorf("duration = %v", l["duration"])
	}
	if _, ok := l["aborted"]; ok {
		t.Error("completed request marked aborted")
	}
	for _, leak := range []string{"u-4242-secret", "tok-abc123", "reset_token", "bearer-xyz", "cookie-xyz"} {
		if strings.Contains(logs.String(), leak) {
			t.Errorf("log leaks %q: %s", leak, logs)
		}
	}
}

func TestAccessLog_RecordsRejectionsAndPanics(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/things", func(w http.ResponseWriter, r *http.Request) {
		var v struct{ Name string }
		if err := middleware.DecodeJSON(w, r, &v); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	})
	mux.HandleFunc("GET /v1/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	lim := middleware.NewRateLimiter(1, 1, newFakeClock().Now)
	h, logs := server(t, mux, lim)

	send := func(method, path, remote, body string, contentLength int64) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = remote
		req.Header.Set("Content-Type", "application/json")
		if contentLength != 0 {
			req.ContentLength = contentLength
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	send("GET", "/v1/panic", "198.51.100.1:1", "", 0)
	send("GET", "/v1/panic", "198.51.100.1:1", "", 0)                                            // rate limited
	send("POST", "/v1/things", "198.51.100.2:1", `{"Name":"`+strings.Repeat("a", 2000)+`"}`, 0)  // declared length
	send("POST", "/v1/things", "198.51.100.3:1", `{"Name":"`+strings.Repeat("a", 2000)+`"}`, -1) // chunked: hits the reader
	send("POST", "/v1/things", "198.51.100.4:1", `{"Name":"ok"}`, 0)                             // fine
	send("GET", "/nowhere", "198.51.100.5:1", "", 0)                                             // unmatched

	type row struct {
		route  string
		status float64
	}
	want := []row{
		{"GET /v1/panic", 500},
		{"", 429}, // refused before routing
		{"", 413}, // refused before routing
		{"POST /v1/things", 413},
		{"POST /v1/things", 200},
		{"", 404},
	}
	lines := accessLines(t, logs)
	if len(lines) != len(want) {
		t.Fatalf("access lines = %d, want %d: %s", len(lines), len(want), logs)
	}
	for i, w := range want {
		if got := (row{lines[i]["route"].(string), lines[i]["status"].(float64)}); got != w {
			t.Errorf("line %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestAccessLog_AbortedRequestStillLogged(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}), middleware.WithLogger(logger), middleware.AccessLog, middleware.Recover)
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	lines := accessLines(t, logs)
	if len(lines) != 1 || lines[0]["aborted"] != true {
		t.Errorf("access log = %v, want one aborted line", lines)
	}
}

func TestStatusRecorder(t *testing.T) {
	t.Parallel()
	t.Run("nothing written means 200", func(t *testing.T) {
		t.Parallel()
		rec := middleware.Recorder(httptest.NewRecorder())
		if rec.Written() || rec.Status() != 200 || rec.Bytes() != 0 {
			t.Errorf("Written %v Status %d Bytes %d", rec.Written(), rec.Status(), rec.Bytes())
		}
	})
	t.Run("first final status wins", func(t *testing.T) {
		t.Parallel()
		inner := &headerLog{}
		rec := middleware.Recorder(inner)
		rec.WriteHeader(http.StatusEarlyHints)
		if rec.Written() {
			t.Error("1xx counted as the final status")
		}
		rec.WriteHeader(http.StatusCreated)
		rec.WriteHeader(http.StatusTeapot)
		_, _ = rec.Write([]byte("abc"))
		_, _ = rec.Write([]byte("de"))
		if rec.Status() != 201 || rec.Bytes() != 5 {
			t.Errorf("Status %d Bytes %d", rec.Status(), rec.Bytes())
		}
		if fmt.Sprint(inner.codes) != "[103 201 418]" {
			t.Errorf("inner saw %v, want every WriteHeader passed on", inner.codes)
		}
	})
	t.Run("write implies 200", func(t *testing.T) {
		t.Parallel()
		rec := middleware.Recorder(httptest.NewRecorder())
		_, _ = rec.Write([]byte("x"))
		if !rec.Written() || rec.Status() != 200 {
			t.Errorf("Written %v Status %d", rec.Written(), rec.Status())
		}
	})
	t.Run("shared, not nested", func(t *testing.T) {
		t.Parallel()
		rec := middleware.Recorder(httptest.NewRecorder())
		if middleware.Recorder(rec) != rec {
			t.Error("Recorder wrapped a *StatusRecorder again")
		}
	})
	t.Run("flush passes through", func(t *testing.T) {
		t.Parallel()
		inner := httptest.NewRecorder()
		rec := middleware.Recorder(inner)
		var w http.ResponseWriter = rec
		w.(http.Flusher).Flush()
		if !inner.Flushed || rec.Status() != 200 || !rec.Written() {
			t.Errorf("Flushed %v Status %d", inner.Flushed, rec.Status())
		}
	})
}

// headerLog is a ResponseWriter that records WriteHeader calls; httptest.ResponseRecorder
// treats 1xx as final.
type headerLog struct {
	codes []int
}

func (h *headerLog) Header() http.Header         { return http.Header{} }
func (h *headerLog) WriteHeader(code int)        { h.codes = append(h.codes, code) }
func (h *headerLog) Write(p []byte) (int, error) { return len(p), nil }

// http.ResponseController must reach the connection through the recorder (deadlines, hijack).
func TestStatusRecorder_ResponseControllerUnwraps(t *testing.T) {
	t.Parallel()
	logger, _ := newLogger()
	srv := httptest.NewServer(middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		conn, buf, err := rc.Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		_ = buf.Flush()
	}), middleware.WithLogger(logger), middleware.AccessLog))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status = %d, want 204 from the hijacked connection", resp.StatusCode)
	}
}
