package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// AccessLog logs one line per request: method, route pattern, status, bytes, duration, client
// IP and request ID. It deliberately logs neither the path nor the query nor any header: paths
// and queries can carry tokens (reset links, OAuth codes) and personal data, headers carry
// credentials. The route pattern ("GET /v1/users/{id}") says which handler ran without the
// values. Requests the mux did not match log an empty route.
//
// The line is written even when a panic unwinds through (aborted=true), so a request killed by
// http.ErrAbortHandler still leaves a trace.
//
// Duration uses time.Now's monotonic reading rather than a tutela.Clock: it measures an
// interval, not a moment, and tests have nothing to gain from controlling it.
func AccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := Recorder(w)
		ri, ok := r.Context().Value(routeKey).(*routeInfo)
		if !ok {
			ri = &routeInfo{}
			r = r.WithContext(context.WithValue(r.Context(), routeKey, ri))
		}
		completed := false
		defer func() {
			ctx := r.Context()
			route := r.Pattern
			if route == "" {
				route = ri.pattern
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", rec.Status()),
				slog.Int64("bytes", rec.Bytes()),
				slog.Duration("duration", time.Since(start)),
				slog.String("client_ip", clientAddr(r).String()),
				slog.String("request_id", RequestIDFrom(ctx)),
			}
			if !completed {
				attrs = append(attrs, slog.Bool("aborted", true))
			}
			// The base logger, not Logger(ctx): request_id is already an attribute here, and
			// this runs on every request, so skip the extra With.
			baseLogger(ctx).LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
		completed = true
	})
}

// routeInfo carries the matched route pattern back up to AccessLog. http.ServeMux sets Pattern on
// the *Request it is given; any middleware between AccessLog and the mux that derives a new
// request (WithContext, a body wrapper) hides that from AccessLog. Middleware in this package
// that derive a request report the pattern here through serve; a foreign one that does not
// leaves the route empty in the log, nothing worse.
type routeInfo struct{ pattern string }

// serve calls next with r, a request derived from the one this middleware received, and
// afterwards (also when panicking) passes the pattern the mux set on r up to AccessLog.
func serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	defer notePattern(r)
	next.ServeHTTP(w, r)
}

func notePattern(r *http.Request) {
	if r.Pattern == "" {
		return
	}
	if ri, ok := r.Context().Value(routeKey).(*routeInfo); ok {
		ri.pattern = r.Pattern
	}
}

// StatusRecorder is an http.ResponseWriter that remembers the status and counts body bytes, for
// access logs, metrics and audit. Get one with Recorder so layers share a single wrapper.
type StatusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// Recorder returns w itself if it already is a *StatusRecorder, or wraps it.
func Recorder(w http.ResponseWriter) *StatusRecorder {
	if rec, ok := w.(*StatusRecorder); ok {
		return rec
	}
	return &StatusRecorder{ResponseWriter: w}
}

// WriteHeader records the first final status and passes every call on. 1xx informational
// responses (other than 101, which is final) may precede the real status and are not recorded.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client; it commits the headers with 200 if none were
// written, as net/http does.
func (s *StatusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer, so http.ResponseController reaches Hijack, deadlines and
// full-duplex support of the underlying connection.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Written reports whether the response headers have been sent; after that the status can no
// longer change.
func (s *StatusRecorder) Written() bool { return s.status != 0 }

// Status returns the status sent, or 200 if the handler has written nothing yet: that is what
// net/http sends when a handler returns without writing.
func (s *StatusRecorder) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Bytes returns the number of body bytes written.
func (s *StatusRecorder) Bytes() int64 { return s.bytes }
