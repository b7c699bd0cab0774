package redact

import "testing"

// BenchmarkNew is the per-request setup: 3 subjects of 8 fields.
func BenchmarkNew(b *testing.B) {
	subjects := benchSubjects()
	b.ReportAllocs()
	for b.Loop() {
		New(subjects, Options{Countries: []string{"US", "GB", "FR", "JO"}})
	}
}
