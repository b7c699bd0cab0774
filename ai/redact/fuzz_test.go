package redact

import (
	"strings"
	"testing"

	"tutela/privacy"
)

// FuzzRedact: any input is redacted without a panic, a subject's name never survives as a
// word, and the streamed restore of the result equals the whole one wherever it is split.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"Ada Lovelace, +41 79 123 45 67, 15 March 1990, ab947381, a@b.org, 4111 1111 1111 1111",
		"[S1_FULL_NAME] [EMAIL_1] [", "١٥ مارس ١٩٩٠ عبد\u200cالله", "DE89 3704 0044 0532 0130 00", "\xff(0)79/123",
		"15 de ", "+", "00", "@", "1990-03-15T", "王小明是",
		`\u0041da \u004covelace \uD83D\uDE00 \\u0040 \uD83D \/`, "19900315 15-Mar-90 the 15th of March, 1990",
		"Lоvеlасе\u2060 ab\u2013947\u2212381 AB 947381",
	} {
		f.Add(s, 3)
	}
	subjects := []Subject{{Fields: []Field{
		{Name: "full_name", Type: privacy.FieldName, Value: "Ada Lovelace"},
		{Name: "phone", Type: privacy.FieldPhone, Value: "+41 79 123 45 67"},
		{Name: "dob", Type: privacy.FieldDate, Value: "1990-03-15"},
		{Name: "id", Type: privacy.FieldNationalID, Value: "AB-947 381", Opaque: true},
		{Name: "addr", Type: privacy.FieldAddress, Value: "12 Rue de Rivoli, 75001 Paris, France"},
		{Name: "n", Type: privacy.FieldNumber, Value: "-12345.5"},
	}}, {Fields: []Field{{Name: "full_name", Type: privacy.FieldName, Value: "王小明"}}}}
	f.Fuzz(func(t *testing.T, text string, split int) {
		r := New(subjects, Options{Countries: allCountries})
		out := r.Redact(text)
		if leaked(out, "Ada Lovelace") {
			t.Fatalf("name survived: %q", out)
		}
		x := r.Restorer(allowAll)
		whole := x.Restore(out)
		if split < 1 {
			split = 1
		}
		s := x.Stream(nil)
		var b strings.Builder
		for i := 0; i < len(out); i += split {
			b.WriteString(s.Write(out[i:min(i+split, len(out))]))
		}
		b.WriteString(s.Flush())
		if b.String() != whole {
			t.Fatalf("stream %q != restore %q", b.String(), whole)
		}
		r.Flags(text)
	})
}
