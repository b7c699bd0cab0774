package blob

import (
	"context"
	"io"
	"testing"
)

const benchSize = 64 << 20

// benchEncryptedWrite measures a whole upload as intake does it: plaintext through Encrypt
// into a store Writer, committed; each blob is deleted outside the timer.
func benchEncryptedWrite(b *testing.B, s Store) {
	ctx := context.Background()
	dek, err := NewDEK()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := s.Create(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ew, err := Encrypt(w, dek, testAAD)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(ew, &patternReader{n: benchSize}); err != nil {
			b.Fatal(err)
		}
		if err := ew.Close(); err != nil {
			b.Fatal(err)
		}
		key, _, err := w.Commit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkLocalEncryptedWrite: 64 MiB per op, encrypted into a directory store (fsync included).
func BenchmarkLocalEncryptedWrite(b *testing.B) {
	benchEncryptedWrite(b, newTestLocal(b))
}

// BenchmarkS3EncryptedWrite: 64 MiB per op, encrypted into an in-process gofakes3 (multipart
// upload of 8 MiB parts, completion, copy to the content address). It measures the client's
// side and gofakes3's memory backend, not a network.
func BenchmarkS3EncryptedWrite(b *testing.B) {
	benchEncryptedWrite(b, newTestS3(b))
}
