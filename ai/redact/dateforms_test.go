package redact

import (
	"testing"

	"tutela/privacy"
)

// The date forms of records and databases (dd-Mon-yyyy), compact yyyymmdd, "the 2nd of April",
// and numeric dates written with other dashes match a subject's date; near misses do not.
func TestRedact_DateForms(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{ID: "s", Fields: []Field{{Name: "dob", Type: privacy.FieldDate, Value: "1990-04-02"}}}}, Options{})
	for _, w := range []string{
		"02-Apr-1990", "2-APR-90", "02 Apr 90", "2/apr/1990", "02.Apr.1990", "19900402",
		"2nd of April 1990", "2nd of April, 1990", "02\u201304\u20131990", "1990\u201404\u201402",
		"02\u221204\u22121990", "2\u2011Apr\u201190",
	} {
		if out := r.Redact("born " + w + "."); out != "born [S1_DOB]." {
			t.Errorf("%q sent as %q", w, out)
		}
	}
	if out := r.Redact("born the 2nd of April, 1990"); out != "born the [S1_DOB]" {
		t.Errorf("sent %q", out)
	}
	for _, w := range []string{
		"119900402", "199004021", "A19900402", "19900402x", "1.19900402", "19900402.5", "-19900402",
		"02-Apr/1990", "03-Apr-1990", "20 of April 1990", "19900431",
	} {
		if out := r.Redact("id " + w + " end"); out != "id "+w+" end" {
			t.Errorf("%q sent as %q", w, out)
		}
	}
}

// TestMonthNames_TwoBytesOrMore: monthAt compares a name's second byte before the rest, which
// needs every name to have one.
func TestMonthNames_TwoBytesOrMore(t *testing.T) {
	for _, m := range monthNames {
		if len(m.name) < 2 {
			t.Errorf("month name %q has fewer than two bytes", m.name)
		}
	}
}
