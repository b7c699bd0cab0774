package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"tutela"
)

// Recover turns a panic in a handler into a 500 internal response, so one bad request cannot
// take the process down or leave the client with a reset connection and no request ID. The panic
// value and stack go to the log at error level; the client sees only the generic internal error,
// because stack traces reveal code paths, versions and sometimes data.
//
// http.ErrAbortHandler is re-panicked: it is how a handler asks net/http to abort the response
// silently, and swallowing it would send a 500 on a stream the handler meant to cut. If the
// handler had already started its response, no error body is written (it would corrupt the
// response); the log line is still written.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Recorder(w)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // net/http compares by identity too
				panic(v)
			}
			ctx := r.Context()
			Logger(ctx).LogAttrs(ctx, slog.LevelError, "panic serving request",
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			if !rec.Written() {
				// Headers the handler set before panicking describe a response that will not
				// be sent; a session cookie or redirect from a half-finished login must not
				// ride out on the 500.
				h := rec.Header()
				for _, k := range [...]string{
					"Set-Cookie", "Location", "Content-Disposition", "Content-Encoding",
					"Content-Length", "Content-Language", "Content-Range", "ETag",
					"Last-Modified", "Trailer", "Retry-After",
				} {
					h.Del(k)
				}
				// Not WriteError: the panic is logged above, with its stack.
				writeErrorBody(rec, http.StatusInternalServerError, errorDetail{
					Code:      tutela.EINTERNAL,
					Message:   internalMessage,
					RequestID: RequestIDFrom(ctx),
				})
			}
		}()
		next.ServeHTTP(rec, r)
	})
}
