package upstream

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// retryAfterError carries the provider's retry hint to the caller. It satisfies
// httpapi/middleware.RetryAfterError, which sets the Retry-After header from it; the code and
// message are those of the wrapped *tutela.Error.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter is how long the provider asked to wait.
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// tokenRE is what a provider's error type or code must look like to be repeated to the caller:
// an identifier, never free text that could carry a fragment of a key or a prompt.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// statusError describes a refusal by its HTTP status and, when the provider's JSON error has
// them, its type and code. The body is read (bounded) only for those two fields and drained;
// its message is never copied anywhere, not even to the log-only Err, since providers echo
// parts of API keys and prompts in it.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	drainClose(resp.Body)
	what := fmt.Sprintf("HTTP %d", resp.StatusCode)
	var e struct {
		Error struct {
			Type json.RawMessage `json:"type"`
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil {
		var parts []string
		if s := token(e.Error.Type); s != "" {
			parts = append(parts, "type "+s)
		}
		if s := token(e.Error.Code); s != "" {
			parts = append(parts, "code "+s)
		}
		if len(parts) > 0 {
			what += ", " + strings.Join(parts, ", ")
		}
	}
	var msg string
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		msg = fmt.Sprintf("the provider answered with a redirect (%s), which is not followed", what)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		msg = fmt.Sprintf("the provider refused the API key (%s)", what)
	default:
		msg = fmt.Sprintf("the provider answered %s", what)
	}
	return &tutela.Error{Code: tutela.EUPSTREAM, Message: msg, Err: fmt.Errorf("upstream status %d", resp.StatusCode)}
}

// token returns a JSON string or integer that is a safe identifier, else "".
func token(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		s = n.String()
	}
	if !tokenRE.MatchString(s) {
		return ""
	}
	return s
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date
// in the past means now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func ceilSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// checkEventStream refuses a 2xx to a streamed request that is not an event stream (a JSON
// error some providers send with 200): read as events it would look like an empty answer.
func checkEventStream(resp *http.Response) error {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/event-stream" {
		return &tutela.Error{Code: tutela.EUPSTREAM, Message: "the provider did not answer with an event stream",
			Err: fmt.Errorf("upstream content type %.100q", resp.Header.Get("Content-Type"))}
	}
	return nil
}

// Failure is a failed call after at least one attempt, with what its audit record wants: the
// last HTTP status the provider answered (0 when none), how many requests were sent, and the
// key of the last one. Its message and code are Err's.
type Failure struct {
	Err      error
	Status   int
	Attempts int
	KeyID    string
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }
