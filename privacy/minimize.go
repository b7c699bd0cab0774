package privacy

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// Minimization profiles (issue 13): per purpose, what of a record may leave. Every field is
// dropped unless the profile names it, so a field added to the schema later never leaks through
// an old profile.

// RuleAction is what a profile does with one field.
type RuleAction string

// Rule actions.
const (
	Pass       RuleAction = "pass"       // the value as is
	Generalize RuleAction = "generalize" // a coarser value (age band, region, …)
	Tokenize   RuleAction = "tokenize"   // the field's deterministic token
	Drop       RuleAction = "drop"       // nothing (the default for fields not listed)
)

// Generalizers, by name. A rule names one, or leaves it to the field's type (DefaultGeneralizer).
const (
	// AgeBand turns a date of birth (YYYY-MM-DD) into an age band at the time of the call:
	// "<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+" (the bands of most official
	// surveys; under-18s are one band, since minors need the most protection).
	AgeBand = "age_band"
	// Region keeps an address's last comma-separated part. Tutela's convention: addresses are
	// written most specific first, ending with the region or country released under this rule
	// ("12 Rainbow St, Jabal Amman, Amman, Jordan" → "Jordan"). An address without a comma is
	// refused: the whole value might be the street.
	Region = "region"
	// CountryCode turns an E.164 phone number ("+962 79 123 4567") into its country calling code
	// ("+962"), per the ITU-T E.164 assignments.
	CountryCode = "country_code"
	// Domain keeps an e-mail address's domain, lower-cased ("a@Example.org" → "example.org").
	Domain = "domain"
	// Range puts a number in a bucket of the rule's width (default 10): 37 → "[30,40)".
	Range = "range"
)

var generalizers = map[string]func(r Rule, v string, now time.Time) (string, error){
	AgeBand: ageBand, Region: region, CountryCode: countryCode, Domain: domain, Range: numberRange,
}

// DefaultGeneralizer is the generalizer for a subject schema field type: "" when the type has
// none (name, national_id, text: no coarser form says less), and a generalize rule must then
// name one.
func DefaultGeneralizer(t FieldType) string {
	switch t {
	case FieldDate:
		return AgeBand
	case FieldAddress:
		return Region
	case FieldPhone:
		return CountryCode
	case FieldEmail:
		return Domain
	case FieldNumber:
		return Range
	}
	return ""
}

// Rule is a profile's treatment of one field.
type Rule struct {
	Action RuleAction `json:"action"`
	// As names the generalizer; empty means the field type's default.
	As string `json:"as,omitempty"`
	// Width is a Range bucket's width (default 10).
	Width float64 `json:"width,omitempty"`
}

// Profile is a tenant's minimization profile for one purpose.
type Profile struct {
	Purpose   string          `json:"purpose"`
	Fields    map[string]Rule `json:"fields"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
	UpdatedBy string          `json:"updated_by,omitempty"`
}

// MaxProfileFields bounds a profile.
const MaxProfileFields = 200

var purposePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidPurpose reports whether s may name a purpose.
func ValidPurpose(s string) bool { return purposePattern.MatchString(s) }

// Check refuses a profile that Minimize could not apply.
func (p *Profile) Check() error {
	if !ValidPurpose(p.Purpose) {
		return tutela.FieldErrorf("purpose", "purpose must be lowercase letters, digits, _ or -")
	}
	if len(p.Fields) > MaxProfileFields {
		return tutela.FieldErrorf("fields", "a profile lists at most %d fields", MaxProfileFields)
	}
	for name, r := range p.Fields {
		if !ValidTokenField(name) {
			return tutela.FieldErrorf("fields", "field names are lowercase letters, digits and _")
		}
		switch r.Action {
		case Pass, Tokenize, Drop:
			if r.As != "" || r.Width != 0 {
				return tutela.FieldErrorf("fields", "field %s: only generalize takes as and width", name)
			}
		case Generalize:
			if _, ok := generalizers[r.As]; r.As != "" && !ok {
				return tutela.FieldErrorf("fields", "field %s: unknown generalizer %q", name, r.As)
			}
			if r.Width < 0 || math.IsNaN(r.Width) || math.IsInf(r.Width, 0) || (r.Width != 0 && r.As != Range && r.As != "") {
				return tutela.FieldErrorf("fields", "field %s: width must be positive and is for range only", name)
			}
		default:
			return tutela.FieldErrorf("fields", "field %s: action must be pass, generalize, tokenize or drop", name)
		}
	}
	return nil
}

// Minimize applies p to record (field → value): listed fields pass, are generalised or become
// tokens (tokenize, the tenant's deterministic tokenizer); every other field is dropped. types
// gives the subject schema's field types, for generalize rules that name no generalizer. A value that its rule cannot handle is an error naming the field, never the
// value: the caller gets nothing rather than more than the profile allows.
func Minimize(p *Profile, record map[string]string, types map[string]FieldType,
	tokenize func(field, value string) (string, error), now time.Time) (map[string]any, error) {
	out := map[string]any{}
	names := make([]string, 0, len(record))
	for f := range record {
		names = append(names, f)
	}
	sort.Strings(names) // tokenize in a stable order
	for _, f := range names {
		r, ok := p.Fields[f]
		if !ok {
			continue
		}
		v := record[f]
		switch r.Action {
		case Pass:
			out[f] = v
		case Tokenize:
			if tokenize == nil {
				return nil, tutela.FieldErrorf(f, "field %s: tokenizing is not available here", f)
			}
			tok, err := tokenize(f, v)
			if err != nil {
				return nil, err
			}
			out[f] = tok
		case Generalize:
			name := r.As
			if name == "" {
				name = DefaultGeneralizer(types[f])
			}
			g := generalizers[name]
			if g == nil {
				return nil, tutela.FieldErrorf(f, "field %s: no generalizer for its type; name one with as", f)
			}
			s, err := g(r, v, now)
			if err != nil {
				return nil, tutela.FieldErrorf(f, "field %s: %v", f, err)
			}
			out[f] = s
		}
	}
	return out, nil
}

func ageBand(_ Rule, v string, now time.Time) (string, error) {
	dob, err := time.Parse(time.DateOnly, strings.TrimSpace(v))
	if err != nil {
		return "", fmt.Errorf("not a date (YYYY-MM-DD)")
	}
	now = now.UTC()
	if dob.After(now) {
		return "", fmt.Errorf("date of birth is in the future")
	}
	age := now.Year() - dob.Year()
	if now.Month() < dob.Month() || (now.Month() == dob.Month() && now.Day() < dob.Day()) {
		age--
	}
	switch {
	case age < 18:
		return "<18", nil
	case age < 25:
		return "18-24", nil
	case age >= 65:
		return "65+", nil
	}
	lo := 25 + (age-25)/10*10
	return fmt.Sprintf("%d-%d", lo, lo+9), nil
}

func region(_ Rule, v string, _ time.Time) (string, error) {
	i := strings.LastIndexByte(v, ',')
	if i < 0 {
		return "", fmt.Errorf("an address needs comma-separated parts ending with its region")
	}
	r := strings.TrimSpace(v[i+1:])
	if r == "" {
		return "", fmt.Errorf("the address's last part is empty")
	}
	return r, nil
}

// callingCodes2 are the two-digit country calling codes (ITU-T E.164 assignments); 1 and 7 are
// the one-digit ones and every other code has three digits (the codes are prefix-free).
var callingCodes2 = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58
		60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98`) {
		m[c] = true
	}
	return m
}()

func countryCode(_ Rule, v string, _ time.Time) (string, error) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "+") {
		return "", fmt.Errorf("phone numbers must be in E.164 form (+ and country code)")
	}
	var digits []byte
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case isDigit(c):
			digits = append(digits, c)
		case c == ' ' || c == '-' || c == '(' || c == ')' || c == '.':
		default:
			return "", fmt.Errorf("a phone number has only digits and separators")
		}
	}
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", fmt.Errorf("not an E.164 number")
	}
	d := string(digits)
	switch {
	case d[0] == '1' || d[0] == '7':
		return "+" + d[:1], nil
	case callingCodes2[d[:2]]:
		return "+" + d[:2], nil
	}
	return "+" + d[:3], nil
}

func domain(_ Rule, v string, _ time.Time) (string, error) {
	i := strings.LastIndexByte(v, '@')
	if i <= 0 || i == len(v)-1 || !strings.Contains(v[i+1:], ".") {
		return "", fmt.Errorf("not an e-mail address")
	}
	return strings.ToLower(strings.TrimSpace(v[i+1:])), nil
}

func numberRange(r Rule, v string, _ time.Time) (string, error) {
	x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return "", fmt.Errorf("not a number")
	}
	w := r.Width
	if w == 0 {
		w = 10
	}
	lo := math.Floor(x/w) * w
	f := func(n float64) string { return strconv.FormatFloat(n, 'f', -1, 64) }
	return "[" + f(lo) + "," + f(lo+w) + ")", nil
}
