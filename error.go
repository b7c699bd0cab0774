package tutela

import (
	"errors"
	"fmt"
)

// Error codes form a small closed set. The HTTP layer maps each to a status exactly once
// (httpapi/middleware/errors.go); clients may rely on them, so they never change meaning.
const (
	EINVALID            = "invalid"                   // malformed or rule-breaking input (400)
	EUNAUTHENTICATED    = "unauthenticated"           // no or bad credentials (401)
	EINVALIDCREDENTIALS = "invalid_credentials"       // #nosec G101 -- an error code, not a credential; login failed; never says why (401)
	EFORBIDDEN          = "forbidden"                 // authenticated but not allowed (403)
	ECONSENTREQUIRED    = "consent_required"          // the subject's consent for the purpose is missing, withdrawn or outdated, or they objected (403)
	ERESTRICTED         = "processing_restricted"     // the subject's processing is restricted (GDPR Art. 18) (403)
	ENOTFOUND           = "not_found"                 // absent, or in another tenant (404)
	EMETHODNOTALLOWED   = "method_not_allowed"        // the path exists, not with this method (405)
	ECONFLICT           = "conflict"                  // uniqueness or state conflict (409)
	ETOOLARGE           = "too_large"                 // request body over the limit (413)
	EUNSUPPORTED        = "unsupported_media"         // wrong Content-Type (415)
	ERATELIMITED        = "rate_limited"              // per-client request rate exceeded (429)
	ETOOMANYATTEMPTS    = "too_many_attempts"         // login throttled; same for every account (429)
	EMFAREQUIRED        = "mfa_required"              // second factor needed to finish (401)
	ESTEPUPREQUIRED     = "step_up_required"          // fresh second factor needed (401)
	EREAUTHREQUIRED     = "reauthentication_required" // fresh sign-in, step-up or password needed (401)
	EUNAVAILABLE        = "unavailable"               // overloaded or dependency down (503)
	ENOTCONFIGURED      = "not_configured"            // feature not set up on this server; permanent (501)
	EWRONGREGION        = "wrong_region"              // tenant's data lives in another region than this node's (421)
	EQUOTAEXCEEDED      = "quota_exceeded"            // a tenant's AI token budget for the period is spent (429)
	EUPSTREAM           = "upstream_error"            // an AI provider refused or failed (502)
	EUPSTREAMTIMEOUT    = "upstream_timeout"          // an AI provider did not answer in time (504)
	EFILEREFUSED        = "file_refused"              // an upload failed a content check; Reason says which (422)
	EQUARANTINED        = "file_quarantined"          // the file is not yet (or could not be) scanned for malware (409)
	ELINKGONE           = "link_gone"                 // a download link that expired, was used up or was revoked (410)
	EAPPROVAL           = "approval_invalid"          // the approval named does not allow this call; Reason says why (409)
	EINTERNAL           = "internal"                  // anything unexpected (500)
)

// Codes lists every error code, for the HTTP status table and documentation.
var Codes = []string{
	EINVALID, EUNAUTHENTICATED, EINVALIDCREDENTIALS, EFORBIDDEN, ECONSENTREQUIRED, ERESTRICTED, ENOTFOUND, EMETHODNOTALLOWED, ECONFLICT, ETOOLARGE,
	EUNSUPPORTED, ERATELIMITED, ETOOMANYATTEMPTS, EMFAREQUIRED, ESTEPUPREQUIRED, EREAUTHREQUIRED, EUNAVAILABLE,
	ENOTCONFIGURED, EWRONGREGION, EQUOTAEXCEEDED, EUPSTREAM, EUPSTREAMTIMEOUT, EFILEREFUSED, EQUARANTINED, ELINKGONE, EAPPROVAL, EINTERNAL,
}

// Error is the application error. Code and Message are safe to show a client; Field names the
// offending input field when there is one. Err, the cause, is for logs only and never reaches
// a client.
type Error struct {
	Code    string
	Message string
	Field   string
	// Reason, for some codes, names the specific cause in one stable word the client can act
	// on (file_refused: "executable", "pdf_javascript", "malware", ...). Never a secret.
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tutela error: code=%s message=%s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("tutela error: code=%s message=%s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID error naming the offending field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an EINTERNAL error that keeps err for the log only. An err that is already
// EUNAVAILABLE (the database or a KMS did not answer) stays so: the client should retry, and
// wrapping must not turn an outage into a 500.
func Wrap(err error, msg string) *Error {
	var e *Error
	if errors.As(err, &e) && e.Code == EUNAVAILABLE {
		return &Error{Code: EUNAVAILABLE, Message: e.Message, Err: err}
	}
	return &Error{Code: EINTERNAL, Message: msg, Err: err}
}

// ErrorCode returns the code of err's *Error, EINTERNAL for any other non-nil error, and ""
// for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: its *Error message, or a generic text
// for anything else so internal details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
