package middleware

import "net/http"

// Chain wraps h in mws so that the first middleware is the outermost: it sees the request first
// and the response last.
func Chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
