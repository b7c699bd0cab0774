package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
)

// Actor types.
const (
	ActorUser           = "user"
	ActorServiceAccount = "service_account"
	ActorSystem         = "system"
	ActorAnonymous      = "anonymous"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// Limits on what an event may hold. The log keeps every event forever (or until pruning), so an
// unbounded field would let one caller grow it without limit.
const (
	// MaxCanonicalSize bounds the canonical encoding of one event.
	MaxCanonicalSize = 64 << 10
	// MaxDetailsDepth bounds the nesting of Details; it also stops a map that contains itself.
	MaxDetailsDepth = 16

	maxUserAgent = 512
	maxReason    = 1024
)

// canonicalVersion is written into every encoding as "v" so the encoding can evolve: verification
// never re-encodes, it hashes the stored bytes, so old entries stay verifiable after a change.
const canonicalVersion = 1

// timeLayout is RFC 3339 in UTC with exactly six fractional digits: fixed width, so one instant
// has one spelling.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Event is one audited action. ActorID is an opaque identifier (a user or service-account ID),
// never an e-mail address or other personal data: the log is append-only, so personal data
// written here could never be erased.
type Event struct {
	ID         string
	Time       time.Time // UTC, truncated to microseconds (what PostgreSQL stores)
	TenantID   string    // "" for platform events
	ActorType  string    // ActorUser, ActorServiceAccount, ActorSystem, ActorAnonymous
	ActorID    string
	SourceIP   string
	UserAgent  string
	Action     string
	TargetType string
	TargetID   string
	Outcome    string // OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeError
	RequestID  string
	Reason     string
	// Details holds strings, bools, nil, numbers (json.Number, float64, float32, ints), and
	// nested map[string]any, []any, map[string]string, []string. Pass it through
	// SanitizeDetails before recording.
	Details map[string]any
}

// Validate checks that e can be recorded. It returns a *tutela.Error with code EINVALID naming
// the offending field.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return tutela.FieldErrorf("id", "audit event id is required")
	case e.Time.IsZero():
		return tutela.FieldErrorf("time", "audit event time is required")
	case e.Time.Location() != time.UTC:
		return tutela.FieldErrorf("time", "audit event time must be in UTC")
	case !e.Time.Equal(e.Time.Truncate(time.Microsecond)):
		// The canonical encoding has microseconds; a finer time would be silently dropped and two
		// different events could share an encoding.
		return tutela.FieldErrorf("time", "audit event time must be truncated to microseconds")
	case e.Time.Year() < 1 || e.Time.Year() > 9999:
		return tutela.FieldErrorf("time", "audit event time is out of range")
	case e.Action == "":
		return tutela.FieldErrorf("action", "audit event action is required")
	case e.Outcome != OutcomeSuccess && e.Outcome != OutcomeFailure &&
		e.Outcome != OutcomeDenied && e.Outcome != OutcomeError:
		return tutela.FieldErrorf("outcome", "unknown audit outcome %q", e.Outcome)
	}
	switch e.ActorType {
	case ActorUser, ActorServiceAccount:
		if e.ActorID == "" {
			return tutela.FieldErrorf("actor_id", "audit actor id is required for actor type %s", e.ActorType)
		}
	case ActorSystem, ActorAnonymous:
	default:
		return tutela.FieldErrorf("actor_type", "unknown audit actor type %q", e.ActorType)
	}
	if strings.Contains(e.ActorID, "@") {
		// Cheap guard against the commonest mistake: putting an e-mail address where an ID goes.
		return tutela.FieldErrorf("actor_id", "audit actor id must be an opaque id, not an e-mail address")
	}
	for _, f := range e.stringFields() {
		if !utf8.ValidString(f.value) {
			return tutela.FieldErrorf(f.name, "audit field is not valid UTF-8")
		}
	}
	return nil
}

// Normalized returns e made recordable from untrusted input: time in UTC truncated to
// microseconds, invalid UTF-8 replaced, UserAgent and Reason shortened, Details sanitized.
// It does not invent missing fields; Validate still decides.
func (e Event) Normalized() Event {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	for _, p := range []*string{&e.ID, &e.TenantID, &e.ActorType, &e.ActorID, &e.SourceIP,
		&e.UserAgent, &e.Action, &e.TargetType, &e.TargetID, &e.Outcome, &e.RequestID, &e.Reason} {
		*p = strings.ToValidUTF8(*p, "\uFFFD")
	}
	e.UserAgent = truncateUTF8(e.UserAgent, maxUserAgent)
	e.Reason = truncateUTF8(e.Reason, maxReason)
	e.Details = SanitizeDetails(e.Details)
	return e
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type namedString struct{ name, value string }

// stringFields lists the top-level string members of the encoding, sorted by key (the order in
// which Canonical writes them). TestCanonical_TopLevelKeysSorted guards the order.
func (e Event) stringFields() []namedString {
	return []namedString{
		{"action", e.Action},
		{"actor_id", e.ActorID},
		{"actor_type", e.ActorType},
		// "details" goes here
		{"id", e.ID},
		{"outcome", e.Outcome},
		{"reason", e.Reason},
		{"request_id", e.RequestID},
		{"source_ip", e.SourceIP},
		{"target_id", e.TargetID},
		{"target_type", e.TargetType},
		{"tenant_id", e.TenantID},
		// "time" goes here
		{"user_agent", e.UserAgent},
		// "v" goes here
	}
}

// Canonical returns the deterministic encoding of e that the log hashes: JSON in the manner of
// RFC 8785 (JCS) — object keys sorted by UTF-16 code units, no insignificant whitespace, strings
// escaped minimally, numbers in ECMAScript shortest form — with every member always present and
// the time as fixed-width RFC 3339 UTC with microseconds. The same event always yields the same
// bytes and a change to any field changes them. Nil and empty Details both encode as {}.
//
// Integers beyond ±2^53 are rejected (RFC 8785 numbers are IEEE doubles and would collide);
// record such values as strings.
func (e Event) Canonical() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	fields := e.stringFields()
	b := make([]byte, 0, 512)
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.name)
		b = append(b, ':')
		b = appendString(b, f.value)
		if f.name == "actor_type" {
			b = append(b, `,"details":`...)
			var err error
			if b, err = appendValue(b, e.Details, 1); err != nil {
				return nil, tutela.FieldErrorf("details", "audit details: %v", err)
			}
		}
		if f.name == "tenant_id" {
			b = append(b, `,"time":"`...)
			b = e.Time.AppendFormat(b, timeLayout)
			b = append(b, '"')
		}
	}
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, canonicalVersion, 10)
	b = append(b, '}')
	if len(b) > MaxCanonicalSize {
		return nil, tutela.FieldErrorf("details", "audit event encoding is %d bytes, over the %d byte limit", len(b), MaxCanonicalSize)
	}
	return b, nil
}

// FormatTime writes t as the canonical encoding does (fixed-width RFC 3339 UTC, microseconds), so
// a stored time column can be compared with the content's "time".
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(timeLayout) }

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || canonical) of an encoded event.
func LeafHash(canonical []byte) tlog.Hash { return tlog.RecordHash(canonical) }

// appendValue appends the canonical JSON of v. depth is v's nesting level (Details itself is 1);
// containers deeper than MaxDetailsDepth are rejected.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch v.(type) {
	case map[string]any, map[string]string, []any, []string:
		if depth > MaxDetailsDepth {
			return b, fmt.Errorf("nested deeper than %d", MaxDetailsDepth)
		}
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		if !utf8.ValidString(v) {
			return b, fmt.Errorf("string is not valid UTF-8")
		}
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendFloat(b, v)
	case float32:
		return appendFloat(b, float64(v))
	case int:
		return appendInt(b, int64(v))
	case int8:
		return appendInt(b, int64(v))
	case int16:
		return appendInt(b, int64(v))
	case int32:
		return appendInt(b, int64(v))
	case int64:
		return appendInt(b, v)
	case uint:
		return appendUint(b, uint64(v))
	case uint8:
		return appendUint(b, uint64(v))
	case uint16:
		return appendUint(b, uint64(v))
	case uint32:
		return appendUint(b, uint64(v))
	case uint64:
		return appendUint(b, v)
	case json.Number:
		return appendNumber(b, v)
	case map[string]any:
		return appendObject(b, v, depth)
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return appendObject(b, m, depth)
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, x, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if !utf8.ValidString(s) {
				return b, fmt.Errorf("string is not valid UTF-8")
			}
			b = appendString(b, s)
		}
		return append(b, ']'), nil
	default:
		return b, fmt.Errorf("unsupported value of type %T", v)
	}
}

func appendObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !utf8.ValidString(k) {
			return b, fmt.Errorf("key is not valid UTF-8")
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k], depth+1); err != nil {
			return b, fmt.Errorf("%q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires. It differs
// from byte order only between supplementary characters (surrogate pairs, 0xD800–0xDBFF first
// unit) and BMP characters U+E000–U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUTF16Unit(ra), firstUTF16Unit(rb)
			if ua != ub {
				return int(ua) - int(ub)
			}
			return int(ra) - int(rb) // both supplementary with the same high surrogate
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func firstUTF16Unit(r rune) rune {
	if r < 0x10000 {
		return r
	}
	return 0xD800 + (r-0x10000)>>10
}

// appendString writes s as a JSON string the way ECMAScript JSON.stringify does (RFC 8785
// §3.2.2.2): only '"', '\\' and control characters are escaped, using the short forms where they
// exist and lowercase \u00xx otherwise. s must be valid UTF-8.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// maxSafeInt is 2^53: every integer up to it has exactly one IEEE double.
const maxSafeInt = 1 << 53

func appendInt(b []byte, v int64) ([]byte, error) {
	if v > maxSafeInt || v < -maxSafeInt {
		return b, fmt.Errorf("integer %d is beyond ±2^53; record it as a string", v)
	}
	return strconv.AppendInt(b, v, 10), nil
}

func appendUint(b []byte, v uint64) ([]byte, error) {
	if v > maxSafeInt {
		return b, fmt.Errorf("integer %d is beyond 2^53; record it as a string", v)
	}
	return strconv.AppendUint(b, v, 10), nil
}

// appendNumber accepts a json.Number (as decoded with UseNumber). An integer literal must be
// exact as a double; a fractional one is rounded to the nearest double like any JSON parser does.
func appendNumber(b []byte, n json.Number) ([]byte, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return b, fmt.Errorf("number %q is not an integer within ±2^63; record it as a string", s)
		}
		return appendInt(b, i)
	}
	if !json.Valid([]byte(s)) {
		return b, fmt.Errorf("number %q is not a JSON number", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return b, fmt.Errorf("number %q is out of range", s)
	}
	return appendFloat(b, f)
}

// appendFloat writes f as ECMAScript Number.prototype.toString does (RFC 8785 §3.2.2.3): the
// shortest round-tripping digits, plain notation for 1e-6 <= |f| < 1e21, otherwise exponent
// notation without a leading zero in the exponent, and -0 as 0.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("NaN and infinities have no JSON form")
	}
	if f == 0 {
		return append(b, '0'), nil
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64), nil
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// Go writes e+09 / e-07; ECMAScript writes e+9 / e-7.
	if n := len(b); n-start >= 4 && b[n-2] == '0' && (b[n-3] == '+' || b[n-3] == '-') {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b, nil
}
