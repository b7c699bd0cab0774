package redact

import (
	"strings"
	"testing"

	"tutela/privacy"
)

// The Latin letters NFKD leaves whole, every format character, every dash and the look-alike
// Cyrillic and Greek letters are folded, in the text and in the values alike.
func TestNormalize_Folds(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Kılıç İSTANBUL":                                             "kilic istanbul",
		"Łukasz Wałęsa Søren ØRSTED":                                 "lukasz walesa soren orsted",
		"Đorđe ĐURIĆ Ħal ŦŧŀĿ":                                       "dorde duric hal ttll",
		"Æsa œuvre Þóra Ðóra Straẞe":                                 "aesa oeuvre thora dora strasse",
		"a\u2060b\u2062c\U000E0020d\u180Ee\u2064f\U000E0001g\u0600h": "abcdefgh",
		"1\u20132\u20143\u20114\u22125\u20126\u2010" + "7":           "1-2-3-4-5-6-7",
		"Lаylа Mаnsоur ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ":                               "layla mansour abezhikmnoptyx",
	} {
		if got := normString(in); got != want {
			t.Errorf("normString(%q) = %q, want %q", in, got, want)
		}
	}
}

// The review's cases: names without their special letters, values with invisible characters or
// look-alike letters inside, numbers and IDs written with other dashes.
func TestRedact_FoldedFormsMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ stored, written string }{
		{"Ayşe Kılıç", "Ayse Kilic"}, {"Ayşe Kılıç", "AYŞE KILIÇ"}, {"Łukasz Wałęsa", "Lukasz Walesa"},
		{"Søren Kierkegård", "Soren Kierkegard"}, {"Đorđe Petrović", "Dorde Petrovic"},
		{"Þóra Ægisdóttir", "Thora Aegisdottir"}, {"Layla Mansour", "Lay\u2060la Man\u2060sour"},
		{"Layla Mansour", "Lay\u2062la Man\U000E0020sour"}, {"Layla Mansour", "Lаyla Mаnsour"},
		{"Layla Mansour", "ΛΑΥΛΑ Mansour"},
	} {
		r := New([]Subject{{ID: "s", Fields: []Field{{Name: "full_name", Type: privacy.FieldName, Value: c.stored}}}}, Options{})
		out := r.Redact("Case of " + c.written + ".")
		if !strings.Contains(out, "[S1_FULL_NAME]") || strings.Contains(out, "sour") || strings.Contains(out, "Kili") {
			t.Errorf("stored %q, written %q: sent %q", c.stored, c.written, out)
		}
	}
	r := New([]Subject{{ID: "s", Fields: []Field{
		{Name: "phone", Type: privacy.FieldPhone, Value: "+962 79 123 4567"},
		{Name: "nid", Type: privacy.FieldNationalID, Value: "AB-947381"},
	}}}, Options{})
	for _, w := range []string{"079\u20601234567", "079\u2013123\u20134567", "+962\u201179\u2011123\u20114567", "AB\u2212947381", "AB\u2014947\u2014381"} {
		if out := r.Redact("call " + w + " now"); out != "call [S1_PHONE] now" && out != "call [S1_NID] now" {
			t.Errorf("%q sent as %q", w, out)
		}
	}
	// Detectors see the dashes too: an SSN written with en dashes.
	d := New(nil, Options{Countries: []string{"US"}})
	if out := d.Redact("SSN 123\u201345\u20136789."); out != "SSN [ID_1]." {
		t.Errorf("detector: %q", out)
	}
}
