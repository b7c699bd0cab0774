package privacy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"tutela"
)

func newSyn(t *testing.T) *Synthesizer {
	t.Helper()
	s, err := NewSynthesizer()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSynthesizer_SameShapeValidDeterministicPerRun(t *testing.T) {
	cases := []struct {
		t FieldType
		v string
	}{
		{FieldName, "Élodie Durand-Müller"},
		{FieldName, "李小龍"},
		{FieldDate, "1987-03-12"},
		{FieldPhone, "+41 79-123 45 67"},
		{FieldPhone, "(06) 12.34.56"},
		{FieldNationalID, "756-1234 5678 AB"},
		{FieldAddress, "12 Rainbow St\nAmman, Jordan"},
		{FieldEmail, "Elodie.Durand+news@mail.example.org"},
		{FieldText, "Came in on 3 May.\r\nAllergic to penicillin; follow-up\tin 2 weeks."},
		{FieldNumber, "-0042.50"},
		{FieldNumber, "7"},
	}
	run1, run2 := newSyn(t), newSyn(t)
	for _, c := range cases {
		a, err := run1.Value(c.t, c.v)
		if err != nil {
			t.Fatalf("%s %q: %v", c.t, c.v, err)
		}
		if err := ValidateValue("f", c.t, a); err != nil {
			t.Errorf("%s: synthetic %q does not validate: %v", c.t, a, err)
		}
		if Normalize(c.t, a) == Normalize(c.t, c.v) {
			t.Errorf("%s: synthetic %q is the original", c.t, a)
		}
		if again, _ := run1.Value(c.t, c.v); again != a {
			t.Errorf("%s: same original, same run: %q then %q", c.t, a, again)
		}
		// A one-digit number has nine other values, so two runs agree one time in nine by
		// chance: only originals with room to differ must differ between runs.
		if other, _ := run2.Value(c.t, c.v); other == a && len(c.v) >= 4 {
			t.Errorf("%s: two runs gave the same value %q", c.t, a)
		}
		switch c.t {
		case FieldName, FieldPhone, FieldNationalID, FieldAddress, FieldText:
			if n, m := utf8.RuneCountInString(a), utf8.RuneCountInString(c.v); n != m {
				t.Errorf("%s: %d characters for an original of %d", c.t, n, m)
			}
		case FieldDate:
			d, _ := time.Parse(time.DateOnly, a)
			if d.Year() < 1900 || d.Year() > 2029 {
				t.Errorf("date %s outside 1900–2029", a)
			}
		case FieldEmail:
			if !strings.HasSuffix(a, ".test") || !tutela.ValidEmail(a) {
				t.Errorf("e-mail %q: want a valid address under .test", a)
			}
		}
	}
}

// Values equal once normalized (what the blind index compares) get values equal once
// normalized: a search or join on the copy matches what it matched in production.
func TestSynthesizer_NormalizedEqualStayEqual(t *testing.T) {
	s := newSyn(t)
	pairs := []struct {
		t    FieldType
		a, b string
	}{
		{FieldPhone, "+41 79 123 45 67", "+41791234567"},
		{FieldName, "ÉLODIE  Durand", "élodie durand"},
		{FieldNationalID, "ab-12 3", "AB123"},
		{FieldEmail, "Ann@Example.org", "ann@example.org"},
	}
	for _, p := range pairs {
		x, err := s.Value(p.t, p.a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := s.Value(p.t, p.b)
		if err != nil {
			t.Fatal(err)
		}
		if Normalize(p.t, x) != Normalize(p.t, y) {
			t.Errorf("%s: %q and %q normalize alike but gave %q and %q", p.t, p.a, p.b, x, y)
		}
	}
	// Colleagues keep sharing a domain, and still get distinct addresses.
	a, _ := s.Value(FieldEmail, "ann@corp.example.org")
	b, _ := s.Value(FieldEmail, "bob@corp.example.org")
	_, da, _ := strings.Cut(a, "@")
	_, db, _ := strings.Cut(b, "@")
	if da != db || a == b {
		t.Errorf("colleagues: %q and %q", a, b)
	}
}

func TestSynthesizer_NeverGivesAnotherOriginal(t *testing.T) {
	s := newSyn(t)
	// Every day of the synthetic range but the last 30 belongs to someone: the date given for
	// another person's birthday must be one of the 30.
	from := syntheticDateFrom
	for i := range syntheticDateDays - 30 {
		s.Forbid(FieldDate, from.AddDate(0, 0, i).Format(time.DateOnly))
	}
	got, err := s.Value(FieldDate, "2030-06-01")
	if err != nil && !errors.Is(err, ErrSyntheticSpace) {
		t.Fatal(err)
	}
	if err == nil {
		if d, _ := time.Parse(time.DateOnly, got); d.Before(from.AddDate(0, 0, syntheticDateDays-30)) {
			t.Errorf("synthetic date %s is another person's original", got)
		}
	}
	// With every day taken, the run stops rather than hand out an original.
	full := newSyn(t)
	for i := range syntheticDateDays {
		full.Forbid(FieldDate, from.AddDate(0, 0, i).Format(time.DateOnly))
	}
	if got, err := full.Value(FieldDate, "2030-06-01"); !errors.Is(err, ErrSyntheticSpace) {
		t.Fatalf("every date is an original: got %q, %v; want ErrSyntheticSpace", got, err)
	}
}

func TestSynthesizer_DistinctOriginalsStayDistinct(t *testing.T) {
	s := newSyn(t)
	seen := map[string]string{}
	for d := range 10 {
		v := fmt.Sprint(d)
		got, err := s.Value(FieldNumber, v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got == v || ValidateValue("n", FieldNumber, got) != nil {
			t.Errorf("%s → %q", v, got)
		}
		if prev, ok := seen[Normalize(FieldNumber, got)]; ok {
			t.Errorf("%s and %s both became %s", prev, v, got)
		}
		seen[Normalize(FieldNumber, got)] = v
	}
}

func TestSynthesizer_RefusesInvalidOriginalAndRedacts(t *testing.T) {
	s := newSyn(t)
	if _, err := s.Value(FieldDate, "secret-not-a-date"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("invalid original: %v", err)
	}
	s.Forget()
	if _, err := s.Value(FieldName, "Ada Lovelace"); err == nil {
		t.Fatal("a forgotten run still makes values")
	}
	if fmt.Sprint(s) != "privacy.Synthesizer[redacted]" || fmt.Sprintf("%#v", s) != "privacy.Synthesizer[redacted]" {
		t.Fatal("the run key must not print")
	}
}
