package audit

import (
	"context"
	"testing"
)

// BenchmarkVerifyBatch measures a receiver checking one batch of 1,000 entries (~400 bytes
// each) on top of 9,000 it holds: content hashes, tree hashes, root and both proofs.
func BenchmarkVerifyBatch(b *testing.B) {
	l := newTestLog(b, 10_000, 1000)
	ctx := context.Background()
	root := func(n int64) ShipState {
		h, err := TreeHash(ctx, n, l.src.hashes)
		if err != nil {
			b.Fatal(err)
		}
		return ShipState{Size: n, CheckpointSize: n, CheckpointRoot: h}
	}
	st := root(9000)
	var rb shipRig
	rb.l, rb.st = l, st
	batch := rb.batch(b, 9000, 10_000, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyBatch(ctx, st, l.src.hashes, batch, l.vkey, testOrigin); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "entries/s")
}
