package intake_test

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela/files"
	"tutela/files/blob"
	"tutela/files/intake"
	"tutela/sqlstore"
)

// The benchmarks: upload throughput, scan excluded, against a raw encrypted disk write
// of the same bytes (goal: upload ≥ 0.7 × raw), and the memory held during a 1 GiB upload
// (goal < 64 MB). Run:
//
//	go test ./files/intake -run '^$' -bench 'Upload' -benchtime 5x

// csvReader produces n bytes of CSV without holding them.
type csvReader struct{ left int64 }

var csvLine = []byte("1234567,Layla Haddad,Amman,+962 6 555 0199,2026-12-07,case-open\n")

func (c *csvReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && c.left > 0 {
		k := copy(p[n:], csvLine[int(c.left%int64(len(csvLine))):])
		if int64(k) > c.left {
			k = int(c.left)
		}
		n += k
		c.left -= int64(k)
	}
	return n, nil
}

func BenchmarkUploadThroughput(b *testing.B) {
	const size = 64 << 20
	data, _ := io.ReadAll(&csvReader{left: size})
	k := newBenchKit(b)
	pol := files.DefaultPolicy()
	pol.MaxSize = 1 << 30
	b.Run("raw_encrypted_write", func(b *testing.B) {
		b.SetBytes(size)
		dek, _ := blob.NewDEK()
		for b.Loop() {
			w, err := k.blobs.Create(ctx)
			if err != nil {
				b.Fatal(err)
			}
			enc, err := blob.Encrypt(w, dek, []byte("bench"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(enc, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			if err := enc.Close(); err != nil {
				b.Fatal(err)
			}
			key, _, err := w.Commit(ctx)
			if err != nil {
				b.Fatal(err)
			}
			_ = k.blobs.Delete(ctx, key)
		}
	})
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, err := k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "big.csv", DeclaredType: "text/csv",
				DeclaredSize: size, Body: bytes.NewReader(data), Policy: pol})
			if err != nil {
				b.Fatal(err)
			}
			_ = k.blobs.Delete(ctx, f.BlobKey)
		}
	})
}

// BenchmarkUpload1GiBMemory uploads 1 GiB of CSV, generated as it is read, and reports the
// largest heap in use while it streamed (peak-heap-MB) over what was in use before.
func BenchmarkUpload1GiBMemory(b *testing.B) {
	const size = 1 << 30
	k := newBenchKit(b)
	pol := files.DefaultPolicy()
	pol.MaxSize = 2 << 30
	b.SetBytes(size)
	var peak uint64
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var top atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					if m.HeapInuse > base && m.HeapInuse-base > top.Load() {
						top.Store(m.HeapInuse - base)
					}
				}
			}
		})
		f, err := k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "huge.csv", DeclaredType: "text/csv",
			DeclaredSize: size, Body: &csvReader{left: size}, Policy: pol})
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		_ = k.blobs.Delete(ctx, f.BlobKey)
		peak = max(peak, top.Load())
	}
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
}

// newBenchKit is newKit for a benchmark: SQLite, no scanner (the scan is excluded).
func newBenchKit(b *testing.B) *kit {
	b.Helper()
	return newKitTB(b, sqlstore.SQLite, false)
}
