package redact

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"tutela/privacy"
)

func allowAll(Placeholder) bool { return true }

func restoreFixture() (*Redactor, string) {
	r := New([]Subject{{Fields: []Field{
		{Name: "full_name", Type: privacy.FieldName, Value: `Ada "The Countess" Lovelace\`},
		{Name: "ssn", Type: privacy.FieldNationalID, Value: "AB-947 381"},
		{Name: "phone", Type: privacy.FieldPhone, Value: "+41 79 123 45 67"},
	}}}, Options{})
	r.Redact(`Ada "The Countess" Lovelace\, id ab947381, tel 0791234567, mail x@y.org`)
	return r, `Dear [S1_FULL_NAME], your id [S1_SSN] and [EMAIL_1]; [S1_PHONE][S1_PHONE] [S9_X] [EMAIL_99] [s1_full_name] [S1_FULL_NAME [[S1_SSN]] [] [`
}

func TestRestore(t *testing.T) {
	t.Parallel()
	r, answer := restoreFixture()
	got := r.Restorer(allowAll).Restore(answer)
	want := `Dear Ada "The Countess" Lovelace\, your id AB-947 381 and x@y.org; +41 79 123 45 67+41 79 123 45 67 [S9_X] [EMAIL_99] [s1_full_name] [S1_FULL_NAME [AB-947 381] [] [`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestRestore_NotAllowedStays(t *testing.T) {
	t.Parallel()
	r, answer := restoreFixture()
	x := r.Restorer(func(p Placeholder) bool { return p.Field != "ssn" && p.Subject >= 0 })
	got := x.Restore(answer)
	if strings.Contains(got, "AB-947") || !strings.Contains(got, "your id [S1_SSN] and [EMAIL_1]") || !strings.Contains(got, "Dear Ada") {
		t.Errorf("got %q", got)
	}
	if got := r.Restorer(nil).Restore(answer); got != answer {
		t.Errorf("nil allow restored: %q", got)
	}
}

// A placeholder the caller typed literally is left by Redact and, while it replaced nothing, is
// never restored: typing "[S1_FULL_NAME]" must not read the value out.
func TestRestore_LiteralPlaceholder(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{Fields: []Field{{Name: "full_name", Type: privacy.FieldName, Value: "Ada Lovelace"},
		{Name: "notes", Type: privacy.FieldText, Value: "Allergic to penicillin"}}}}, Options{})
	in := "who is [S1_FULL_NAME]? [S1_NOTES]"
	if got := r.Redact(in); got != in {
		t.Errorf("Redact = %q", got)
	}
	x := r.Restorer(allowAll)
	if got := x.Restore(in); got != in {
		t.Errorf("Restore = %q", got)
	}
	if got := x.Restored(); len(got) != 0 {
		t.Errorf("Restored = %v", got)
	}
	// Once the name replaced something, the same token is restored; the notes still are not.
	r.Redact("Ada Lovelace")
	if got := r.Restorer(allowAll).Restore(in); got != "who is Ada Lovelace? [S1_NOTES]" {
		t.Errorf("Restore = %q", got)
	}
	// A placeholder created later (after the Restorer) is not restored by it.
	x = r.Restorer(allowAll)
	r.Redact("a@b.org")
	if got := x.Restore("[EMAIL_1]"); got != "[EMAIL_1]" {
		t.Errorf("Restore = %q", got)
	}
}

// Restored lists what was actually given back, once each, in first-restored order, across
// Restore, RestoreEscaped and Streams; not what was not allowed or only typed.
func TestRestorer_Restored(t *testing.T) {
	t.Parallel()
	r, _ := restoreFixture()
	x := r.Restorer(func(p Placeholder) bool { return p.Field != "ssn" })
	x.Restore("[S1_SSN] [S1_PHONE] [S9_X]")
	x.RestoreEscaped("[S1_PHONE]", jsonEscape)
	s := x.Stream(nil)
	s.Write("[EMAIL_")
	s.Write("1] [S1_FULL")
	s.Write("_NAME]")
	s.Flush()
	var got []string
	for _, p := range x.Restored() {
		got = append(got, p.Token)
	}
	if strings.Join(got, " ") != "[S1_PHONE] [EMAIL_1] [S1_FULL_NAME]" {
		t.Errorf("Restored = %v", got)
	}
	if y := r.Restorer(allowAll); len(y.Restored()) != 0 {
		t.Errorf("a new Restorer has restored %v", y.Restored())
	}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func TestRestoreEscaped_ToolArguments(t *testing.T) {
	t.Parallel()
	r, _ := restoreFixture()
	args := `{"name":"[S1_FULL_NAME]","id":"[S1_SSN]"}`
	got := r.Restorer(allowAll).RestoreEscaped(args, jsonEscape)
	var v map[string]string
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	if v["name"] != `Ada "The Countess" Lovelace\` || v["id"] != "AB-947 381" {
		t.Errorf("%q", v)
	}
}

func streamAll(x *Restorer, escape func(string) string, chunks []string) string {
	s := x.Stream(escape)
	var b strings.Builder
	for _, c := range chunks {
		b.WriteString(s.Write(c))
	}
	b.WriteString(s.Flush())
	return b.String()
}

func TestStream_EverySplit(t *testing.T) {
	t.Parallel()
	r, answer := restoreFixture()
	for _, escape := range []func(string) string{nil, jsonEscape} {
		for _, x := range []*Restorer{r.Restorer(allowAll), r.Restorer(func(p Placeholder) bool { return p.Field == "phone" })} {
			want := x.RestoreEscaped(answer, escape)
			for i := 0; i <= len(answer); i++ {
				for j := i; j <= len(answer); j++ {
					if got := streamAll(x, escape, []string{answer[:i], answer[i:j], answer[j:]}); got != want {
						t.Fatalf("split %d,%d: got %q, want %q", i, j, got, want)
					}
				}
			}
		}
	}
}

func TestStream_RandomChunks(t *testing.T) {
	t.Parallel()
	r, answer := restoreFixture()
	long := strings.Repeat(answer+" — text ", 40)
	x := r.Restorer(allowAll)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var chunks []string
		for rest := long; rest != ""; {
			n := min(len(rest), 1+rng.IntN(7))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got, want := streamAll(x, jsonEscape, chunks), x.RestoreEscaped(long, jsonEscape); got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	}
}

func TestStream_HoldsBackOnlyAPossiblePlaceholder(t *testing.T) {
	t.Parallel()
	r, _ := restoreFixture()
	s := r.Restorer(allowAll).Stream(nil)
	for _, c := range []struct{ in, out string }{
		{"Hello [S1_", "Hello "},
		{"SSN", ""},
		{"] and [", "AB-947 381 and "},
		{"x", "[x"},
		{"[EMAIL_1", ""},
		{" ", "[EMAIL_1 "},
		{"[" + strings.Repeat("A", 40), "[" + strings.Repeat("A", 40)},
		{"[E", ""},
	} {
		if got := s.Write(c.in); got != c.out {
			t.Errorf("Write(%q) = %q, want %q", c.in, got, c.out)
		}
	}
	if got := s.Flush(); got != "[E" {
		t.Errorf("Flush = %q", got)
	}
}

// RestorerFunc restores what value says: here a field the caller may not read comes back as the
// caller wrote it, never as the stored value.
func TestRestorerFunc_WrittenFormForUnreadable(t *testing.T) {
	r := New([]Subject{{ID: "s1", Fields: []Field{
		{Name: "national_id", Type: privacy.FieldNationalID, Value: "JO-99812"},
		{Name: "full_name", Type: privacy.FieldName, Value: "Layla Mansour"}}}}, Options{})
	red := r.Redact("ID jo 99812 of LAYLA MANSOUR")
	if strings.Contains(red, "99812") || strings.Contains(red, "LAYLA") {
		t.Fatalf("redacted: %q", red)
	}
	x := r.RestorerFunc(func(p Placeholder) (string, bool) {
		if p.Field == "national_id" {
			return p.Written, true
		}
		return p.Value, true
	})
	got := x.Restore("Answer: " + r.Token(0, "national_id") + " belongs to " + r.Token(0, "full_name") + ".")
	if got != "Answer: jo 99812 belongs to Layla Mansour." {
		t.Fatalf("restored %q", got)
	}
	var s strings.Builder
	st := x.Stream(nil)
	for _, c := range []string{"[S1_NAT", "IONAL_ID] x"} {
		s.WriteString(st.Write(c))
	}
	s.WriteString(st.Flush())
	if s.String() != "jo 99812 x" {
		t.Fatalf("streamed %q", s.String())
	}
}
