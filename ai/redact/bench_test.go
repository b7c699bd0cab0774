package redact

import (
	"fmt"
	"strings"
	"testing"

	"tutela/privacy"
)

func benchSubjects() []Subject {
	var out []Subject
	for i, n := range []string{"Ada Lovelace", "محمد\u200cرضا حسینی", "José María García"} {
		out = append(out, Subject{ID: fmt.Sprint(i), Fields: []Field{
			{Name: "full_name", Type: privacy.FieldName, Value: n},
			{Name: "phone", Type: privacy.FieldPhone, Value: fmt.Sprintf("+41 79 123 45 6%d", i)},
			{Name: "email", Type: privacy.FieldEmail, Value: fmt.Sprintf("person%d@example.com", i)},
			{Name: "national_id", Type: privacy.FieldNationalID, Value: fmt.Sprintf("AB-94%d 381", i)},
			{Name: "dob", Type: privacy.FieldDate, Value: fmt.Sprintf("198%d-03-15", i)},
			{Name: "address", Type: privacy.FieldAddress, Value: "12 Rue de Rivoli, 75001 Paris, France"},
			{Name: "notes", Type: privacy.FieldText, Value: "Allergic to penicillin and latex"},
			{Name: "account", Type: privacy.FieldNumber, Value: fmt.Sprintf("99812%d", i)},
		}})
	}
	return out
}

// benchText is realistic prompt text of about n bytes with a few identifiers every kilobyte.
func benchText(n int) string {
	para := "Please summarize the case history below for the review committee, keeping the clinical " +
		"details and the timeline. The beneficiary, Ada Lovelace, was registered on 2024-08-06 and " +
		"reported a change of address in September; she can be reached at 079 123 45 60 or " +
		"person0@example.com. Her caseworker noted that the rent of 1,250.00 EUR per month was paid " +
		"late twice, see ticket 7731 and model gpt-4o-2024-08-06 output v1.2.3. Another contact, " +
		"dr.smith@clinic.example.org, +44 20 7946 0958, asked for the file. The payment card " +
		"4111 1111 1111 1111 must not appear. Born 15/03/1980, she lives at 12 rue de Rivoli. "
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(para)
	}
	return b.String()[:n]
}

func BenchmarkRedact(b *testing.B) {
	subjects := benchSubjects()
	for _, size := range []int{1 << 10, 8 << 10, 64 << 10} {
		text := benchText(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				r := New(subjects, Options{Countries: []string{"US", "GB", "FR", "JO"}})
				r.Redact(text)
			}
		})
	}
}

// BenchmarkStream restores an answer streamed in 4-byte chunks; chunks/s is the throughput.
func BenchmarkStream(b *testing.B) {
	r := New(benchSubjects(), Options{})
	answer := r.Redact(benchText(8 << 10))
	var chunks []string
	for i := 0; i < len(answer); i += 4 {
		chunks = append(chunks, answer[i:min(i+4, len(answer))])
	}
	x := r.Restorer(allowAll)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		s := x.Stream(nil)
		for _, c := range chunks {
			s.Write(c)
		}
		s.Flush()
		n += len(chunks)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "chunks/s")
}

// BenchmarkRedact_Hostile: 1 MiB of text built to make matching quadratic against 4000-character
// repetitive values (privacy's limit for a text field): "one" is a single such text field, "all"
// twenty subjects with such text, name, number and ID fields (names of many parts of repeated
// letters too). Before linear matching, "one/spaced" took about 12 s.
func BenchmarkRedact_Hostile(b *testing.B) {
	long := strings.Repeat("a", 4000)
	one := []Subject{{ID: "s", Fields: []Field{{Name: "notes", Type: privacy.FieldText, Value: long}}}}
	var all []Subject
	for i := range 20 {
		all = append(all, Subject{ID: fmt.Sprint(i), Fields: []Field{
			{Name: "notes", Type: privacy.FieldText, Value: long},
			{Name: "full_name", Type: privacy.FieldName, Value: strings.Repeat("a ", 8) + long[:3000]},
			{Name: "alias", Type: privacy.FieldName, Value: "aa aaa aaaa aaaaa aaaaaa aaaaaaa aaaaaaaa aaaaaaaaa"},
			{Name: "account", Type: privacy.FieldNumber, Value: strings.Repeat("1", 4000)},
			{Name: "national_id", Type: privacy.FieldNationalID, Value: long[:3999] + "b"},
		}})
	}
	const size = 1 << 20
	units := []struct{ name, unit string }{
		{"spaced", "a "}, {"solid", "a"}, {"almost", long[:3999] + "b "}, {"parens", "(a"},
		{"commas", strings.Repeat("a ", 1999) + "a,"}, {"digits", "1"}, {"escaped", `\u0061 `},
	}
	for _, set := range []struct {
		name     string
		subjects []Subject
	}{{"one", one}, {"all", all}} {
		for _, u := range units {
			text := strings.Repeat(u.unit, size/len(u.unit)+1)[:size]
			b.Run(set.name+"/"+u.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					New(set.subjects, Options{}).Redact(text)
				}
			})
		}
	}
}
