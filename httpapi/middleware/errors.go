package middleware

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"tutela"
)

// Status returns the HTTP status for a tutela error code. It is the only place codes become
// statuses; an unknown code is a server bug and maps to 500.
func Status(code string) int {
	switch code {
	case tutela.EINVALID:
		return http.StatusBadRequest
	case tutela.EUNAUTHENTICATED, tutela.EINVALIDCREDENTIALS, tutela.EMFAREQUIRED, tutela.ESTEPUPREQUIRED,
		tutela.EREAUTHREQUIRED:
		return http.StatusUnauthorized
	case tutela.EFORBIDDEN, tutela.ECONSENTREQUIRED, tutela.ERESTRICTED:
		return http.StatusForbidden
	case tutela.ENOTFOUND:
		return http.StatusNotFound
	case tutela.EMETHODNOTALLOWED:
		return http.StatusMethodNotAllowed
	case tutela.ECONFLICT:
		return http.StatusConflict
	case tutela.EWRONGREGION:
		// RFC 9110 §15.5.20: this server is not the one to answer for this tenant; the
		// client should ask a node of the tenant's data region.
		return http.StatusMisdirectedRequest
	case tutela.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case tutela.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case tutela.ERATELIMITED, tutela.ETOOMANYATTEMPTS, tutela.EQUOTAEXCEEDED:
		return http.StatusTooManyRequests
	case tutela.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case tutela.EUPSTREAM:
		return http.StatusBadGateway
	case tutela.EUPSTREAMTIMEOUT:
		return http.StatusGatewayTimeout
	case tutela.EFILEREFUSED:
		return http.StatusUnprocessableEntity
	case tutela.EQUARANTINED, tutela.EAPPROVAL:
		return http.StatusConflict
	case tutela.ELINKGONE:
		return http.StatusGone
	case tutela.ENOTCONFIGURED:
		// RFC 9110 §15.6.2: the server does not support what the request needs. Unlike
		// 503 it promises nothing will change by retrying, so no Retry-After.
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// ChallengeError is an error that carries a WWW-Authenticate challenge (e.g. an RFC 9470
// step-up request); WriteError sets the header.
type ChallengeError interface{ WWWAuthenticate() string }

// DefaultUnavailableRetry is the Retry-After, in seconds, of a 503 that names none.
const DefaultUnavailableRetry = 2

// RetryAfterError is an error that tells the client when to try again. WriteError finds it
// anywhere in the chain (errors.As) and sets Retry-After (RFC 9110 §10.2.3).
type RetryAfterError interface {
	RetryAfter() time.Duration
}

// WithRetryAfter returns err annotated with a Retry-After delay. Code, message and field are
// still taken from err.
func WithRetryAfter(err error, d time.Duration) error {
	return &retryAfterError{err: err, after: d}
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// errorBody is the one JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	Field     string `json:"field,omitempty"`
	// Reason is the specific cause of some codes (file_refused: "pdf_javascript", "malware",
	// ...; file_quarantined: "scanner_unavailable", ...), a stable machine-readable word.
	Reason string `json:"reason,omitempty"`
}

// internalMessage is all a client learns about an unexpected failure; the cause goes to the log.
const internalMessage = "internal error"

// WriteError writes err as the JSON error body with the status from Status. Only the code,
// client-safe message and field of a *tutela.Error reach the client; for internal errors (and
// any error that is not a *tutela.Error, or carries an unknown code) the client sees
// "internal error" and the cause is logged with the request ID.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	code := tutela.ErrorCode(err)
	status := Status(code)
	if status == http.StatusInternalServerError {
		code = tutela.EINTERNAL // never echo a code outside the closed set
	}

	d := errorDetail{Code: code}
	var te *tutela.Error
	if code == tutela.EINTERNAL {
		d.Message = internalMessage
	} else if errors.As(err, &te) {
		d.Message = te.Message
		d.Field = te.Field
		d.Reason = te.Reason
	}
	if r != nil {
		d.RequestID = RequestIDFrom(r.Context())
		if m := tutela.RequestMetaFrom(r.Context()); m != nil && (code == tutela.EFORBIDDEN || code == tutela.ECONSENTREQUIRED || code == tutela.ERESTRICTED) {
			m.Forbidden = d.Message
		}
	}

	if status >= 500 && r != nil {
		level := slog.LevelError
		if status == http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
		cause := "<nil>"
		if err != nil {
			cause = err.Error()
		}
		Logger(r.Context()).LogAttrs(r.Context(), level, "request failed",
			slog.String("code", code), slog.String("error", cause))
	}

	var ch ChallengeError
	if errors.As(err, &ch) {
		w.Header().Set("WWW-Authenticate", ch.WWWAuthenticate())
	}
	var ra RetryAfterError
	switch {
	case errors.As(err, &ra):
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(ra.RetryAfter()), 10))
	case status == http.StatusServiceUnavailable:
		// Overload (the bounded password-hashing pool) and outages are short-lived: tell
		// clients to back off briefly instead of hammering (RFC 9110 §15.6.4).
		w.Header().Set("Retry-After", strconv.FormatInt(DefaultUnavailableRetry, 10))
	}
	writeErrorBody(w, status, d)
}

func writeErrorBody(w http.ResponseWriter, status int, d errorDetail) {
	WriteJSON(w, status, errorBody{Error: d})
}

// retryAfterSeconds rounds d up to whole seconds, at least 1: Retry-After has no fractions, and
// "0" would invite an immediate retry that is bound to fail.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// WriteJSON writes v as JSON with the given status. v is marshalled before anything is sent, so
// a value that cannot be encoded yields a clean 500 rather than a half-written body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error","request_id":""}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
