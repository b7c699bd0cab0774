package clamdtest_test

import (
	"context"
	"testing"

	"tutela/files/clamd/clamdtest"
)

// BenchmarkStart measures one start of clamd with the test database, up to its first PONG,
// and its stop: what each test that calls Start pays.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s := clamdtest.Start(b, clamdtest.Options{})
		if err := s.Client().Ping(context.Background()); err != nil {
			b.Fatal(err)
		}
		s.Stop()
	}
}
