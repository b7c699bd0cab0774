package middleware_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/httpapi/middleware"
)

func TestStatus_MapsEveryCode(t *testing.T) {
	t.Parallel()
	want := map[string]int{
		tutela.EINVALID:            400,
		tutela.EUNAUTHENTICATED:    401,
		tutela.EINVALIDCREDENTIALS: 401,
		tutela.EMFAREQUIRED:        401,
		tutela.ESTEPUPREQUIRED:     401,
		tutela.EREAUTHREQUIRED:     401,
		tutela.EFORBIDDEN:          403,
		tutela.ECONSENTREQUIRED:    403,
		tutela.ERESTRICTED:         403,
		tutela.ENOTFOUND:           404,
		tutela.EMETHODNOTALLOWED:   405,
		tutela.ECONFLICT:           409,
		tutela.EWRONGREGION:        421,
		tutela.ETOOLARGE:           413,
		tutela.EUNSUPPORTED:        415,
		tutela.ERATELIMITED:        429,
		tutela.ETOOMANYATTEMPTS:    429,
		tutela.EUNAVAILABLE:        503,
		tutela.ENOTCONFIGURED:      501,
		tutela.EQUOTAEXCEEDED:      429,
		tutela.EUPSTREAM:           502,
		tutela.EUPSTREAMTIMEOUT:    504,
		tutela.EFILEREFUSED:        422,
		tutela.EQUARANTINED:        409,
		tutela.ELINKGONE:           410,
		tutela.EAPPROVAL:           409,
		tutela.EINTERNAL:           500,
		"":                         500,
		"no_such_code":             500,
	}
	for code, status := range want {
		if got := middleware.Status(code); got != status {
			t.Errorf("Status(%q) = %d, want %d", code, got, status)
		}
	}
	// A code added to tutela.Codes must get a row above, so its status is a decision.
	for _, code := range tutela.Codes {
		if _, ok := want[code]; !ok {
			t.Errorf("code %q has no expected status in this test", code)
		}
	}
}

func TestWriteError_Body(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		wantStatus  int
		wantCode    string
		wantMessage string
		wantField   string
		wantLogged  bool
	}{
		{"field error", tutela.FieldErrorf("email", "email is not valid"), 400, "invalid", "email is not valid", "email", false},
		{"not found", tutela.Errorf(tutela.ENOTFOUND, "user not found"), 404, "not_found", "user not found", "", false},
		{"wrapped tutela error", fmt.Errorf("store: %w", tutela.Errorf(tutela.ECONFLICT, "email taken")), 409, "conflict", "email taken", "", false},
		{"plain error is internal", errors.New("pq: password authentication failed for hunter2"), 500, "internal", "internal error", "", true},
		{"internal message hidden", tutela.Wrap(errors.New("disk full"), "save user at /var/db"), 500, "internal", "internal error", "", true},
		{"unknown code is internal", &tutela.Error{Code: "teapot", Message: "short and stout"}, 500, "internal", "internal error", "", true},
		{"unavailable", tutela.Errorf(tutela.EUNAVAILABLE, "try later"), 503, "unavailable", "try later", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				middleware.WriteError(w, r, tt.err)
			}), middleware.WithLogger(logger), middleware.RequestID)
			req := httptest.NewRequest("GET", "/v1/x", nil)
			req.Header.Set("X-Request-ID", "req-1")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			got := decodeError(t, rec)
			want := errorDetail{Code: tt.wantCode, Message: tt.wantMessage, RequestID: "req-1", Field: tt.wantField}
			if got != want {
				t.Errorf("body = %+v, want %+v", got, want)
			}
			if tt.wantField == "" && strings.Contains(rec.Body.String(), `"field"`) {
				t.Errorf("body %s has a field key; want it omitted", rec.Body)
			}
			if tt.wantStatus == 500 && tt.err != nil && strings.Contains(rec.Body.String(), tt.err.Error()) {
				t.Errorf("body leaks the cause: %s", rec.Body)
			}
			lines := logs.lines(t)
			if tt.wantLogged {
				if len(lines) != 1 || lines[0]["request_id"] != "req-1" || lines[0]["error"] != tt.err.Error() {
					t.Errorf("log = %v, want one line with the cause and request_id", lines)
				}
			} else if len(lines) != 0 {
				t.Errorf("client error logged: %v", lines)
			}
		})
	}
}

func TestWriteError_RetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		after time.Duration
		want  string
	}{
		{0, "1"},
		{-time.Second, "1"},
		{time.Millisecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{30 * time.Second, "30"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		err := fmt.Errorf("outer: %w", middleware.WithRetryAfter(tutela.Errorf(tutela.ETOOMANYATTEMPTS, "slow down"), tt.after))
		middleware.WriteError(rec, httptest.NewRequest("POST", "/v1/login", nil), err)
		if rec.Code != 429 {
			t.Errorf("%v: status = %d, want 429", tt.after, rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("%v: Retry-After = %q, want %q", tt.after, got, tt.want)
		}
		if d := decodeError(t, rec); d.Code != "too_many_attempts" || d.Message != "slow down" {
			t.Errorf("%v: body = %+v", tt.after, d)
		}
	}
}

func TestWriteError_NoRetryAfterByDefault(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.WriteError(rec, httptest.NewRequest("GET", "/", nil), tutela.Errorf(tutela.ERATELIMITED, "x"))
	if got := rec.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After = %q, want none", got)
	}
}

func TestWriteJSON_UnencodableValueIs500(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.WriteJSON(rec, http.StatusOK, map[string]any{"c": make(chan int)})
	if rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if d := decodeError(t, rec); d.Code != "internal" {
		t.Errorf("code = %q, want internal", d.Code)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.WriteJSON(rec, http.StatusCreated, map[string]string{"id": "x"})
	if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != "{\"id\":\"x\"}\n" {
		t.Errorf("got %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestWriteError_UnavailableAlwaysCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	middleware.WriteError(rec, httptest.NewRequest("GET", "/", nil), tutela.Errorf(tutela.EUNAVAILABLE, "busy"))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("503 without Retry-After: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}
