// Package middleware is the HTTP hygiene every Tutela route gets: request IDs, client-address
// resolution behind trusted proxies, per-client rate limiting, body limits and strict JSON
// decoding, security headers, panic recovery, access logging with secret redaction, and the one
// table that maps tutela error codes to HTTP statuses.
//
// A server composes them once, outermost first:
//
//	logger := slog.New(middleware.NewRedactingHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	clientIP := middleware.ClientIP{Trusted: proxyPrefixes}
//	limiter := middleware.NewRateLimiter(rps, burst, tutela.SystemClock,
//		middleware.ExemptPaths("/healthz", "/readyz", "/metrics"))
//	h := middleware.Chain(mux,
//		middleware.WithLogger(logger),      // base logger for Logger(ctx)
//		middleware.RequestID,               // ID in context, header and log lines
//		clientIP.Middleware,                // real client address behind trusted proxies
//		middleware.AccessLog,               // sees every response below, including 429/413/500
//		middleware.Recover,                 // a panic becomes a 500 the access log records
//		middleware.SecurityHeaders(useTLS), // on every response, errors included
//		limiter.Middleware,                 // before any body is read
//		middleware.BodyLimit(1<<20),
//	)
//
// Errors are written with WriteError, never with http.Error, so every failure has the same JSON
// shape and the status comes from Status alone.
package middleware
