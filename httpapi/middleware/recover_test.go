package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tutela/httpapi/middleware"
)

func TestRecover_PanicBecomesGeneric500(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	panicky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "half-made"})
		w.Header().Set("Location", "/v1/home")
		panic("boom: nil map in handlePanicky")
	})
	h := middleware.Chain(panicky,
		middleware.WithLogger(logger), middleware.RequestID, middleware.SecurityHeaders(false), middleware.Recover)
	req := httptest.NewRequest("POST", "/v1/login", nil)
	req.Header.Set("X-Request-ID", "req-panic")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	want := errorDetail{Code: "internal", Message: "internal error", RequestID: "req-panic"}
	if d := decodeError(t, rec); d != want {
		t.Errorf("body = %+v, want %+v", d, want)
	}
	for _, leak := range []string{"boom", "goroutine", "recover_test.go", "handlePanicky"} {
		if strings.Contains(rec.Body.String(), leak) {
			t.Errorf("response body leaks %q: %s", leak, rec.Body)
		}
	}
	for _, stale := range []string{"Set-Cookie", "Location"} {
		if v := rec.Header().Get(stale); v != "" {
			t.Errorf("%s = %q survived the panic", stale, v)
		}
	}
	if rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Error("security headers lost on the panic response")
	}

	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("log lines = %d, want exactly 1 (no second line from WriteError): %v", len(lines), lines)
	}
	l := lines[0]
	stack, _ := l["stack"].(string)
	if l["level"] != "ERROR" || l["panic"] != "boom: nil map in handlePanicky" || l["request_id"] != "req-panic" ||
		!strings.Contains(stack, "goroutine") || !strings.Contains(stack, "recover_test.go") {
		t.Errorf("log line = %v, want error level with panic value, stack and request_id", l)
	}
}

func TestRecover_AbortHandlerRepanics(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}), middleware.WithLogger(logger), middleware.Recover)
	rec := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
			t.Errorf("wrote a response for an aborted handler: %q", rec.Body)
		}
		if s := logs.String(); s != "" {
			t.Errorf("logged an abort as a panic: %s", s)
		}
	}()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/stream", nil))
	t.Error("ServeHTTP returned normally")
}

func TestRecover_AfterResponseStartedWritesNothingMore(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		panic("late")
	}), middleware.WithLogger(logger), middleware.Recover)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))

	if rec.Code != 200 || rec.Body.String() != "partial" {
		t.Errorf("got %d %q, want the untouched partial response", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "late") {
		t.Errorf("panic not logged: %s", logs)
	}
}

func TestRecover_NoPanicPassesThrough(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.Recover(okHandler).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
}
