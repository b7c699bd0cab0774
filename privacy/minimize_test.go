package privacy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tutela"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestGeneralizers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, as, in, want string
		width              float64
	}{
		{"minor", AgeBand, "2010-03-02", "<18", 0},
		{"18 today", AgeBand, "2008-03-01", "18-24", 0},
		{"day before 25th birthday", AgeBand, "2001-03-02", "18-24", 0},
		{"25", AgeBand, "2001-03-01", "25-34", 0},
		{"44", AgeBand, "1981-06-30", "35-44", 0},
		{"senior", AgeBand, "1940-01-01", "65+", 0},
		{"region", Region, "12 Rainbow St, Jabal Amman, Amman, Jordan", "Jordan", 0},
		{"jordan", CountryCode, "+962 79 123 4567", "+962", 0},
		{"nanp", CountryCode, "+1 (202) 555-0143", "+1", 0},
		{"france", CountryCode, "+33 1 23 45 67 89", "+33", 0},
		{"domain", Domain, "Layla@Example.ORG", "example.org", 0},
		{"range", Range, "37", "[30,40)", 0},
		{"range width", Range, "1234.5", "[1000,1500)", 500},
		{"negative", Range, "-3", "[-10,0)", 0},
	} {
		g := generalizers[c.as]
		got, err := g(Rule{Action: Generalize, As: c.as, Width: c.width}, c.in, now)
		if err != nil || got != c.want {
			t.Errorf("%s: %s(%q) = %q, %v; want %q", c.name, c.as, c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ as, in string }{
		{AgeBand, "01/02/1990"}, {AgeBand, "2030-01-01"}, {Region, "12 Rainbow Street"}, {Region, "Amman, "},
		{CountryCode, "0791234567"}, {CountryCode, "+962 79x"}, {Domain, "no-at-sign"}, {Domain, "a@localhost"},
		{Range, "NaN"}, {Range, "many"},
	} {
		if _, err := generalizers[c.as](Rule{}, c.in, now); err == nil {
			t.Errorf("%s(%q) generalised a value it cannot handle", c.as, c.in)
		}
	}
}

func TestMinimize_DropsUnlistedAndNeverEchoesValues(t *testing.T) {
	t.Parallel()
	p := &Profile{Purpose: "ai", Fields: map[string]Rule{
		"dob": {Action: Generalize}, "phone": {Action: Tokenize}, "lang": {Action: Pass}, "note": {Action: Drop},
		"addr": {Action: Generalize, As: Region}}}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	var tokenized []string
	tok := func(f, v string) (string, error) { tokenized = append(tokenized, f); return "tok_" + f, nil }
	rec := map[string]string{"dob": "1990-05-05", "phone": "+962791234567", "lang": "ar", "note": "secret", "name": "Layla",
		"addr": "Amman, Jordan"}
	out, err := Minimize(p, rec, map[string]FieldType{"dob": FieldDate}, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"dob": "35-44", "phone": "tok_phone", "lang": "ar", "addr": "Jordan"}
	if len(out) != len(want) {
		t.Fatalf("out = %v, want %v", out, want)
	}
	for k, v := range want {
		if out[k] != v {
			t.Fatalf("out[%s] = %v, want %v", k, out[k], v)
		}
	}
	if len(tokenized) != 1 || tokenized[0] != "phone" {
		t.Fatalf("tokenized %v", tokenized)
	}
	// A value its rule cannot handle fails the whole record, naming the field, not the value.
	rec["dob"] = "05/05/1990"
	_, err = Minimize(p, rec, map[string]FieldType{"dob": FieldDate}, tok, now)
	if tutela.ErrorCode(err) != tutela.EINVALID || strings.Contains(err.Error(), "05/05/1990") {
		t.Fatalf("bad date: %v", err)
	}
	// Generalize without a named generalizer and without a known type: refused, not passed.
	rec["dob"] = "1990-05-05"
	if _, err := Minimize(p, rec, nil, tok, now); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("untyped generalize: %v", err)
	}
	// A tokenizer failure stops the record.
	boom := errors.New("vault down")
	if _, err := Minimize(p, rec, map[string]FieldType{"dob": FieldDate}, func(string, string) (string, error) { return "", boom }, now); !errors.Is(err, boom) {
		t.Fatalf("tokenizer error: %v", err)
	}
}

func TestProfileCheck_RefusesUnknownRules(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]*Profile{
		"purpose":     {Purpose: "AI Triage"},
		"action":      {Purpose: "ai", Fields: map[string]Rule{"f": {Action: "reveal"}}},
		"generalizer": {Purpose: "ai", Fields: map[string]Rule{"f": {Action: Generalize, As: "blur"}}},
		"width":       {Purpose: "ai", Fields: map[string]Rule{"f": {Action: Generalize, As: AgeBand, Width: 5}}},
		"as on pass":  {Purpose: "ai", Fields: map[string]Rule{"f": {Action: Pass, As: Region}}},
		"field":       {Purpose: "ai", Fields: map[string]Rule{"Bad Field": {Action: Pass}}},
	} {
		if err := p.Check(); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

func TestLuhnAndCardLike(t *testing.T) {
	t.Parallel()
	if !luhnValid("4111 1111 1111 1111") || luhnValid("4111 1111 1111 1112") {
		t.Fatal("luhn")
	}
	if !isCardLike("4111-1111-1111-1111") || isCardLike("AB12345678901234") || isCardLike("123456789012") {
		t.Fatal("card-like")
	}
}

func TestCheckTokenValue_FormatPreservingMinimum(t *testing.T) {
	t.Parallel()
	if err := CheckTokenValue(FormatPreserving, "12-345"); err == nil {
		t.Fatal("5 significant characters accepted")
	}
	if err := CheckTokenValue(FormatPreserving, "123-456"); err != nil {
		t.Fatal(err)
	}
	if err := CheckTokenValue(Deterministic, "12"); err != nil {
		t.Fatal(err)
	}
}
