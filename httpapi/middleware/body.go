package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"tutela"
)

// MaxJSONBody caps what DecodeJSON reads even when no BodyLimit is in front of the handler, so a
// route wired without the middleware still cannot be made to buffer an unbounded body. A smaller
// BodyLimit wins; a route that needs more than this does not take JSON.
const MaxJSONBody = 1 << 20

// BodyLimit rejects request bodies over n bytes with 413 too_large. A declared Content-Length
// over n is refused before the handler runs; a body without one (chunked) is cut off by
// http.MaxBytesReader, which DecodeJSON reports as too_large. Either way the server never reads
// more than n bytes, which bounds the memory and CPU an attacker can make one request cost.
func BodyLimit(n int64) func(http.Handler) http.Handler { return BodyLimitExcept(n, nil) }

// BodyLimitExcept is BodyLimit for every request except those exempt reports true for (file
// uploads, which their handler bounds by the tenant's file policy).
func BodyLimitExcept(n int64, exempt func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if exempt != nil && exempt(r) {
				serve(next, w, r)
				return
			}
			if r.ContentLength > n {
				WriteError(w, r, tooLarge(n))
				return
			}
			// Copy rather than modify the caller's request (http.Handler's contract), as
			// http.MaxBytesHandler does.
			r2 := *r
			r2.Body = http.MaxBytesReader(w, r.Body, n)
			serve(next, w, &r2)
		})
	}
}

func tooLarge(n int64) *tutela.Error {
	return tutela.Errorf(tutela.ETOOLARGE, "request body must not be larger than %d bytes", n)
}

// DecodeJSON decodes the request body, which must be a single JSON object, into v. It is strict
// on purpose: an unknown field is an error rather than silently ignored (a client misspelling
// "mfa_requried" must not get the default), and trailing data is an error (it hides request
// smuggling and concatenated payloads). Keys are checked before decoding (checkKeys): no
// duplicate keys, no two keys equal ignoring case, no key in another letter case than the field
// it fills, and at most maxJSONDepth levels of nesting. The returned error is always a
// *tutela.Error whose message is safe to show the client; pass it to WriteError.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if r.Body == nil {
		return errEmptyBody()
	}
	// Reading the whole body first costs nothing extra: json.Decoder buffers a complete value
	// before decoding it, and MaxBytesReader bounds both.
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, MaxJSONBody)}
	data, err := io.ReadAll(body)
	if err != nil {
		return decodeError(err, body.err, 0)
	}

	// Look at the first significant byte so "null", arrays and scalars are refused with a clear
	// message instead of decoding into a zero value.
	skipped := len(data) - len(bytes.TrimLeft(data, " \t\n\r"))
	switch {
	case skipped == len(data):
		return errEmptyBody()
	case data[skipped] != '{':
		return tutela.Errorf(tutela.EINVALID, "request body must be a JSON object")
	}
	data = data[skipped:]

	keys, err := checkKeys(data, reflect.TypeOf(v))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, nil, int64(skipped))
	}
	// Anything but whitespace after the object is an error, including a second object.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tutela.Errorf(tutela.EINVALID, "request body must contain a single JSON object")
	}
	if meta := tutela.RequestMetaFrom(r.Context()); meta != nil {
		// The audit record gets the field names, never the values.
		meta.BodyKeys = keys
	}
	return nil
}

func errEmptyBody() *tutela.Error {
	return tutela.Errorf(tutela.EINVALID, "request body must not be empty")
}

// bodyReader remembers the last read error other than io.EOF, so a failure reading the body
// (client went away, bad chunked encoding) is told apart from a value the decoder rejected.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// checkJSONContentType accepts application/json with at most a charset parameter of utf-8
// (RFC 8259 §8.1: JSON exchanged between systems is UTF-8). Refusing anything else stops a
// browser form post (text/plain, application/x-www-form-urlencoded) from reaching a JSON
// handler as a CSRF vector.
func checkJSONContentType(ct string) error {
	unsupported := tutela.Errorf(tutela.EUNSUPPORTED, "Content-Type must be application/json")
	if ct == "" {
		return unsupported
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return unsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return unsupported
		}
	}
	return nil
}

// decodeError turns an encoding/json error into a client-safe *tutela.Error. The json package's
// own messages mention Go types and struct names, so they are rewritten, not passed through.
// readErr is the body's read error, if any; skipped is the whitespace consumed before the
// decoder started, added back so offsets count from the start of the body.
func decodeError(err, readErr error, skipped int64) *tutela.Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
		invalid   *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &maxErr), errors.As(readErr, &maxErr):
		return tooLarge(maxErr.Limit)
	case readErr != nil:
		return &tutela.Error{Code: tutela.EINVALID, Message: "request body could not be read", Err: readErr}
	case err == io.EOF:
		return errEmptyBody()
	case errors.As(err, &syntaxErr):
		return &tutela.Error{
			Code:    tutela.EINVALID,
			Message: fmt.Sprintf("request body contains malformed JSON at offset %d", syntaxErr.Offset+skipped),
			Err:     err,
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &tutela.Error{Code: tutela.EINVALID, Message: "request body contains truncated JSON", Err: err}
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return &tutela.Error{Code: tutela.EINVALID, Message: "request body must be a JSON object", Err: err}
		}
		e := tutela.FieldErrorf(typeErr.Field, "field %q must be %s", typeErr.Field, jsonKind(typeErr.Type))
		e.Err = err
		return e
	case errors.As(err, &invalid):
		// A nil or non-pointer destination is our bug, not the client's.
		return tutela.Wrap(err, "decode request body")
	}
	if name, ok := unknownField(err); ok {
		e := tutela.FieldErrorf(name, "unknown field %q", name)
		e.Err = err
		return e
	}
	// A custom UnmarshalJSON/UnmarshalText (time.Time, say) rejected a value; its message may
	// name Go types, so it stays in Err.
	return &tutela.Error{Code: tutela.EINVALID, Message: "request body contains an invalid value", Err: err}
}

// unknownField extracts the field name from DisallowUnknownFields' error, which has no type of
// its own, only the text `json: unknown field "name"`.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	name, err := strconv.Unquote(rest)
	if err != nil {
		return "", false
	}
	return name, true
}

// jsonKind names, with its article, the JSON type a Go type decodes from, in the client's
// vocabulary. Integer fields say "an integer": "must be a number" would puzzle a client that
// sent 1.5.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a valid value"
	}
}
