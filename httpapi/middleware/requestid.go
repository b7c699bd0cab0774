package middleware

import (
	"context"
	"log/slog"
	"net/http"

	"tutela"
)

// RequestIDHeader carries the request ID in both directions.
const RequestIDHeader = "X-Request-ID"

// maxRequestIDLen bounds what a client can make us store, echo and log per request.
const maxRequestIDLen = 64

type ctxKey int

const (
	requestIDKey ctxKey = iota
	loggerKey
	clientIPKey
	routeKey
)

// RequestID gives every request an ID, stored in the context (RequestIDFrom), echoed in the
// X-Request-ID response header and added to Logger(ctx). An incoming X-Request-ID is kept so a
// caller's trace can be followed across services, but only if it is 1–64 characters of
// [A-Za-z0-9._-]: anything else could forge log lines, smuggle markup into dashboards or attempt
// header injection, so it is replaced with a fresh UUIDv7.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if vs := r.Header.Values(RequestIDHeader); len(vs) == 1 && validRequestID(vs[0]) {
			id = vs[0]
		} else {
			id = tutela.NewID()
		}
		w.Header().Set(RequestIDHeader, id)
		serve(next, w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// RequestIDFrom returns the request ID set by RequestID, or "" outside such a request.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithLogger makes base the logger that Logger returns for requests below it. The server wires
// its one logger here instead of through a package variable.
func WithLogger(base *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serve(next, w, r.WithContext(context.WithValue(r.Context(), loggerKey, base)))
		})
	}
}

// Logger returns the request's logger: the base from WithLogger with a request_id attribute when
// the request has one. The attribute is added on each call rather than stored, so WithLogger and
// RequestID work in either order. Without WithLogger it falls back to slog.Default() so that an
// unwired handler still reports failures instead of dropping them.
func Logger(ctx context.Context) *slog.Logger {
	l := baseLogger(ctx)
	if id := RequestIDFrom(ctx); id != "" {
		l = l.With(slog.String("request_id", id))
	}
	return l
}

func baseLogger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}
