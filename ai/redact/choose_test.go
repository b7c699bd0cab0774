package redact

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestChoose_PackedKeysAgreeWithComparison: choose's packed-key sorts pick the same candidates,
// in the same order, as the comparison sort it uses for texts too long for the keys, on random
// candidate sets full of overlaps, shared spans and ties between placeholders.
func TestChoose_PackedKeysAgreeWithComparison(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var cs chooseScratch
	for round := range 2000 {
		n := 1 + rng.IntN(200)
		var ms []match
		for i := range rng.IntN(40) {
			a := rng.Int32N(int32(n))
			b := a + 1 + rng.Int32N(min(12, int32(n)-a))
			m := match{a: a, b: b, ph: rng.Int32N(4), subject: rng.IntN(2) == 0}
			if !m.subject {
				m.ph, m.det = -1, int32(i)
			}
			ms = append(ms, m)
			if rng.IntN(4) == 0 { // the same span again, another placeholder
				m.ph = rng.Int32N(4)
				m.subject = true
				ms = append(ms, m)
			}
		}
		want := chooseSlow(slices.Clone(ms), n, &chooseScratch{})
		if naive := chooseNaive(slices.Clone(ms), n); !slices.Equal(want, naive) {
			t.Fatalf("round %d: chooseSlow(%v) = %v, want %v", round, ms, want, naive)
		}
		got := choose(slices.Clone(ms), n, &cs)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: choose(%v) = %v, want %v", round, ms, got, want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].a < got[i-1].b {
				t.Fatalf("round %d: overlapping choices %v", round, got)
			}
		}
	}
}

// TestChoose_LongestThenSubject: the longest candidate wins, a subject's value wins a tie with a
// detection, and the lowest placeholder wins among a span's values.
func TestChoose_LongestThenSubject(t *testing.T) {
	ms := []match{
		{a: 0, b: 4, ph: -1, det: 0},
		{a: 2, b: 9, ph: 3, subject: true},
		{a: 2, b: 9, ph: 1, subject: true},
		{a: 9, b: 12, ph: -1, det: 1},
		{a: 9, b: 12, ph: 2, subject: true},
	}
	got := choose(ms, 20, &chooseScratch{})
	want := []match{{a: 2, b: 9, ph: 1, subject: true}, {a: 9, b: 12, ph: 2, subject: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("choose = %v, want %v", got, want)
	}
}

// chooseNaive is the greedy choice with a byte per text byte: the reference for the Fenwick
// trees.
func chooseNaive(ms []match, n int) []match {
	slices.SortFunc(ms, cmpMatch)
	taken := make([]bool, n)
	var out []match
	for _, m := range ms {
		if slices.Contains(taken[m.a:m.b], true) {
			continue
		}
		for i := m.a; i < m.b; i++ {
			taken[i] = true
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y match) int { return int(x.a - y.a) })
	return out
}
