package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/argon2"

	"tutela/config"
)

// What `tutela loadgen` prints, and the limits its throughputs are compared with.

// percentile of sorted latencies (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func report(w io.Writer, c loadgenCmd, ops []loadOp, stats []*opStats, limits map[string]float64, hash config.HashParams) {
	fmt.Fprintf(w, "target %s (%s), %s, at most %d in flight per operation, GOMAXPROCS %d\n", c.Target, c.TargetKind,
		c.Duration, c.InFlight, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "limits measured in this process: argon2id (m=%d KiB, t=%d, p=%d) %.1f hashes/s on %d goroutines; ed25519 verify %.0f/s on %d goroutines\n\n",
		hash.MemoryKiB, hash.Time, hash.Threads, limits["argon2id"], runtime.GOMAXPROCS(0), limits["ed25519"], runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "operation\trate\tsent\tok\tok/s\tp50 ms\tp99 ms\tp99.9 ms\tdropped\terrors")
	type row struct {
		name, limit       string
		rate, okps        float64
		p50, p99, p999    time.Duration
		sent, ok, dropped int
		errs              string
	}
	var rows []row
	for i, op := range ops {
		st := stats[i]
		st.mu.Lock()
		lat := slices.Clone(st.latencies)
		r := row{name: op.name, limit: op.limit, rate: op.rate, sent: st.sent, ok: len(lat), dropped: st.dropped,
			okps: float64(len(lat)) / c.Duration.Seconds()}
		var kinds []string
		for k, n := range st.errors {
			kinds = append(kinds, fmt.Sprintf("%s:%d", k, n))
		}
		st.mu.Unlock()
		sort.Strings(kinds)
		r.errs = strings.Join(kinds, " ")
		if r.errs == "" {
			r.errs = "0"
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		r.p50, r.p99, r.p999 = percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)
		rows = append(rows, r)
		fmt.Fprintf(tw, "%s\t%g\t%d\t%d\t%.1f\t%s\t%s\t%s\t%d\t%s\n", r.name, r.rate, r.sent, r.ok, r.okps, ms(r.p50), ms(r.p99), ms(r.p999), r.dropped, r.errs)
	}
	_ = tw.Flush() // a failed write to stdout shows in the output itself
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| operation | offered/s | ok/s | p50 ms | p99 ms | p99.9 ms | errors | limit | ratio to limit |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		lim := limits[r.limit]
		name := "Argon2id hashes/s"
		if r.limit == "ed25519" {
			name = "Ed25519 verifies/s"
		}
		ratio := 0.0
		if lim > 0 {
			ratio = r.okps / lim
		}
		fmt.Fprintf(w, "| %s | %g | %.1f | %s | %s | %s | %s | %.0f %s | %.3f |\n", r.name, r.rate, r.okps, ms(r.p50), ms(r.p99), ms(r.p999),
			r.errs, lim, name, ratio)
	}
}

// argon2Ceiling is how many Argon2id hashes per second this process computes with the
// server's parameters on GOMAXPROCS goroutines: the most sign-ins the machine could do.
func argon2Ceiling(ctx context.Context, p config.HashParams, d time.Duration) float64 {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return parallelRate(ctx, d, func() {
		_ = argon2.IDKey([]byte("correct horse battery staple"), salt, uint32(p.Time), uint32(p.MemoryKiB), uint8(p.Threads), 32) // #nosec G115 -- config validates the parameters' ranges
	})
}

// ed25519VerifyCeiling is how many Ed25519 signatures per second this process verifies on
// GOMAXPROCS goroutines: the cost of checking one access token's signature, the floor of
// every token operation.
func ed25519VerifyCeiling(ctx context.Context, d time.Duration) float64 {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 300) // about an access token's signed part
	sig := ed25519.Sign(priv, msg)
	return parallelRate(ctx, d, func() { _ = ed25519.Verify(pub, msg, sig) })
}

func parallelRate(ctx context.Context, d time.Duration, f func()) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				f()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
