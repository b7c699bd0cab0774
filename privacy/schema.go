package privacy

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"tutela"
	"tutela/authz"
)

// FieldType is the type of a subject field: a small closed set, each with its own validation
// and its own normalization for the blind index.
type FieldType string

// Field types. A date of birth is a FieldDate.
const (
	FieldName       FieldType = "name"        // a person's name: one line, ≤ 200 characters
	FieldDate       FieldType = "date"        // YYYY-MM-DD, a real calendar date
	FieldPhone      FieldType = "phone"       // digits with an optional leading +, separators " -.()" allowed; 5–15 digits (E.164)
	FieldNationalID FieldType = "national_id" // letters, digits, spaces and dashes; ≤ 64 characters
	FieldAddress    FieldType = "address"     // text, line breaks allowed; ≤ 500 characters
	FieldEmail      FieldType = "email"       // an address tutela.ValidEmail accepts
	FieldText       FieldType = "text"        // free text, line breaks allowed; ≤ 4000 characters
	FieldNumber     FieldType = "number"      // a decimal: -?digits(.digits)?, ≤ 30 integer and 10 fraction digits
)

// FieldTypes lists every field type.
var FieldTypes = []FieldType{FieldName, FieldDate, FieldPhone, FieldNationalID, FieldAddress, FieldEmail, FieldText, FieldNumber}

// Valid reports whether t is a known field type.
func (t FieldType) Valid() bool { return slices.Contains(FieldTypes, t) }

// Schema bounds.
const (
	MaxFields        = 100
	MaxPurposes      = 20
	MinRetentionDays = 1
	MaxRetentionDays = 36500
)

// Field is one field of a tenant's subject schema.
type Field struct {
	Name           string               `json:"name"`
	Type           FieldType            `json:"type"`
	Classification authz.Classification `json:"classification"`
	// Purposes are the purposes a read may state to receive this field.
	Purposes      []string   `json:"purposes"`
	RetentionDays int        `json:"retention_days"`
	Mask          authz.Mask `json:"mask"` // shown to a caller who may not read the value
	Searchable    bool       `json:"searchable"`
}

// Schema is a tenant's subject fields, in name order.
type Schema []Field

// Field returns the field named name.
func (s Schema) Field(name string) (Field, bool) {
	for _, f := range s {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidName reports whether s is a valid field or purpose name.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// Validate checks one field's definition.
func (f Field) Validate() error {
	switch {
	case !ValidName(f.Name):
		return tutela.FieldErrorf("name", "field name must match [a-z][a-z0-9_]{0,62}")
	case !f.Type.Valid():
		return tutela.FieldErrorf("type", "field %s: type must be one of %s", f.Name, typeList())
	case !f.Classification.Valid():
		return tutela.FieldErrorf("classification", "field %s: classification must be GREEN, YELLOW or RED", f.Name)
	case len(f.Purposes) == 0 || len(f.Purposes) > MaxPurposes:
		return tutela.FieldErrorf("purposes", "field %s: between 1 and %d purposes are required", f.Name, MaxPurposes)
	case f.RetentionDays < MinRetentionDays || f.RetentionDays > MaxRetentionDays:
		return tutela.FieldErrorf("retention_days", "field %s: retention_days must be between %d and %d", f.Name, MinRetentionDays, MaxRetentionDays)
	case !f.Mask.Valid():
		return tutela.FieldErrorf("mask", "field %s: mask must be full, partial, hashed, redacted or hidden", f.Name)
	}
	seen := map[string]bool{}
	for _, p := range f.Purposes {
		if !ValidName(p) {
			return tutela.FieldErrorf("purposes", "field %s: purpose names must match [a-z][a-z0-9_]{0,62}", f.Name)
		}
		if seen[p] {
			return tutela.FieldErrorf("purposes", "field %s: purpose %s is listed twice", f.Name, p)
		}
		seen[p] = true
	}
	return nil
}

// Allows reports whether a read stating purpose may receive this field.
func (f Field) Allows(purpose string) bool { return slices.Contains(f.Purposes, purpose) }

// Validate checks every field and that names are unique; it returns the first problem.
func (s Schema) Validate() error {
	if len(s) > MaxFields {
		return tutela.FieldErrorf("fields", "a schema has at most %d fields", MaxFields)
	}
	seen := map[string]bool{}
	for _, f := range s {
		if err := f.Validate(); err != nil {
			return err
		}
		if seen[f.Name] {
			return tutela.FieldErrorf("name", "field %s is declared twice", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

func typeList() string {
	out := make([]string, len(FieldTypes))
	for i, t := range FieldTypes {
		out[i] = string(t)
	}
	return strings.Join(out, ", ")
}

// Length caps, in characters (runes).
const (
	maxName       = 200
	maxNationalID = 64
	maxAddress    = 500
	maxEmail      = 254
	maxText       = 4000
)

var (
	dateRe       = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	phoneRe      = regexp.MustCompile(`^\+?[0-9 ().-]+$`)
	nationalIDRe = regexp.MustCompile(`^[A-Za-z0-9 -]+$`)
	numberRe     = regexp.MustCompile(`^-?[0-9]{1,30}(\.[0-9]{1,10})?$`)
)

// ValidateValue checks a value for a field of type t. The error names the field, never the value.
func ValidateValue(field string, t FieldType, v string) error {
	bad := func(rule string) error { return tutela.FieldErrorf(field, "%s must be %s", field, rule) }
	n := utf8.RuneCountInString(v)
	if !utf8.ValidString(v) || n == 0 {
		return bad("a non-empty UTF-8 value")
	}
	switch t {
	case FieldName:
		if n > maxName || !tutela.ValidText(v) || strings.TrimSpace(v) == "" {
			return bad("one line of text of at most 200 characters")
		}
	case FieldDate:
		if _, err := time.Parse(time.DateOnly, v); err != nil || !dateRe.MatchString(v) {
			return bad("a date as YYYY-MM-DD")
		}
	case FieldPhone:
		d := len(strings.TrimPrefix(phoneDigits(v), "+"))
		if !phoneRe.MatchString(v) || strings.LastIndexByte(v, '+') > 0 || d < 5 || d > 15 || n > 30 {
			return bad("a phone number: 5 to 15 digits, an optional leading +")
		}
	case FieldNationalID:
		if n > maxNationalID || !nationalIDRe.MatchString(v) || normalizeNationalID(v) == "" {
			return bad("an identifier of letters, digits, spaces and dashes (at most 64 characters)")
		}
	case FieldAddress:
		if n > maxAddress || !validMultiline(v) || strings.TrimSpace(v) == "" {
			return bad("text of at most 500 characters")
		}
	case FieldEmail:
		if n > maxEmail || !tutela.ValidEmail(v) {
			return bad("an e-mail address")
		}
	case FieldText:
		if n > maxText || !validMultiline(v) {
			return bad("text of at most 4000 characters")
		}
	case FieldNumber:
		if !numberRe.MatchString(v) {
			return bad("a decimal number (at most 30 integer and 10 fraction digits)")
		}
	default:
		return bad("of a known type")
	}
	return nil
}

// validMultiline is tutela.ValidText allowing line breaks and tabs: addresses and notes span
// lines, but bidi overrides, zero-width characters and other controls stay refused.
func validMultiline(s string) bool {
	return tutela.ValidText(strings.NewReplacer("\r\n", " ", "\n", " ", "\t", " ").Replace(s))
}

var fold = cases.Fold()

// Normalize is the form of a valid value that the blind index hashes: a search matches a stored
// value exactly when both normalize to the same string.
//
//   - name, address, text, email: Unicode NFKC, then case folding, then runs of white space
//     collapsed to one space and trimmed ("  ÉLODIE  Durand" = "élodie durand"; "Elodie" ≠
//     "Élodie": accents count);
//   - phone: the digits only, keeping a leading + ("+41 79-123 45 67" = "+41791234567"; the
//     same number without +41 is another value);
//   - national_id: upper case without spaces or dashes ("756.1234" is invalid; "ab-12 3" =
//     "AB123");
//   - date: YYYY-MM-DD (the only accepted form);
//   - number: no leading zeros in the integer part, no trailing zeros in the fraction, "-0" is
//     "0" ("007.50" = "7.5").
//
// A prefix, a substring or a near value is a different value: the index answers equality only.
func Normalize(t FieldType, v string) string {
	switch t {
	case FieldName, FieldAddress, FieldText, FieldEmail:
		return strings.Join(strings.FieldsFunc(fold.String(norm.NFKC.String(v)), unicode.IsSpace), " ")
	case FieldPhone:
		return phoneDigits(v)
	case FieldNationalID:
		return normalizeNationalID(v)
	case FieldNumber:
		return normalizeNumber(v)
	}
	return v
}

func phoneDigits(v string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(v) {
		if r == '+' && i == 0 {
			b.WriteRune(r)
		} else if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if s := b.String(); s != "+" {
		return s
	}
	return ""
}

func normalizeNationalID(v string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(v))
}

func normalizeNumber(v string) string {
	neg := strings.HasPrefix(v, "-")
	v = strings.TrimPrefix(v, "-")
	ip, fp, _ := strings.Cut(v, ".")
	ip = strings.TrimLeft(ip, "0")
	if ip == "" {
		ip = "0"
	}
	fp = strings.TrimRight(fp, "0")
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}

// Equal reports whether f and g define the same field.
func (f Field) Equal(g Field) bool {
	return f.Name == g.Name && f.Type == g.Type && f.Classification == g.Classification && slices.Equal(f.Purposes, g.Purposes) &&
		f.RetentionDays == g.RetentionDays && f.Mask == g.Mask && f.Searchable == g.Searchable
}

// FieldChange is one field's difference between two schemas: Old is nil for an added field,
// New is nil for a removed one.
type FieldChange struct {
	Name     string
	Old, New *Field
}

// Class is the classification a change touches: the higher of the old and new definitions'.
// Whoever changes a field must be cleared for it, or they could lower a RED field to YELLOW,
// relax its mask or add a purpose, and then read what they were never cleared to see.
func (c FieldChange) Class() authz.Classification {
	class := authz.Green
	for _, f := range []*Field{c.Old, c.New} {
		if f != nil && f.Classification.Rank() > class.Rank() {
			class = f.Classification
		}
	}
	return class
}

// Changes lists the fields added, removed or changed going from old to s, in name order.
func (s Schema) Changes(old Schema) []FieldChange {
	var out []FieldChange
	for _, o := range old {
		if n, ok := s.Field(o.Name); !ok {
			out = append(out, FieldChange{Name: o.Name, Old: &o})
		} else if !n.Equal(o) {
			out = append(out, FieldChange{Name: o.Name, Old: &o, New: &n})
		}
	}
	for _, n := range s {
		if _, ok := old.Field(n.Name); !ok {
			out = append(out, FieldChange{Name: n.Name, New: &n})
		}
	}
	slices.SortFunc(out, func(a, b FieldChange) int { return strings.Compare(a.Name, b.Name) })
	return out
}
