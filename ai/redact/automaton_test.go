package redact

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The automaton reports exactly the occurrences a naive search finds, overlapping ones and
// strings that are suffixes or prefixes of others included.
func TestAutomaton_AllOccurrences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var pats []string
		for range 1 + rng.IntN(6) {
			b := make([]byte, 1+rng.IntN(5))
			for i := range b {
				b[i] = "ab"[rng.IntN(2)]
			}
			pats = append(pats, string(b))
		}
		text := make([]byte, rng.IntN(40))
		for i := range text {
			text[i] = "abc"[rng.IntN(3)]
		}
		type occ struct{ end, k int }
		var want, got []occ
		for k, p := range pats {
			for i := 0; i+len(p) <= len(text); i++ {
				if strings.HasPrefix(string(text[i:]), p) {
					want = append(want, occ{i + len(p), k})
				}
			}
		}
		newAutomaton(pats).scan(string(text), func(end int, ks []int32) {
			for _, k := range ks {
				got = append(got, occ{end, int(k)})
			}
		})
		cmp := func(x, y occ) int {
			if x.end != y.end {
				return x.end - y.end
			}
			return x.k - y.k
		}
		slices.SortFunc(want, cmp)
		slices.SortFunc(got, cmp)
		if !slices.Equal(got, want) {
			t.Fatalf("pats %q text %q:\ngot  %v\nwant %v", pats, text, got, want)
		}
	}
}

// Repetitive values against repetitive text (the input of BenchmarkRedact_Hostile) are still
// all replaced: skipping a form's overlapping matches loses no text, and forms repeated within
// a field are matched once.
func TestRedact_RepetitiveValueCoversText(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{ID: "s", Fields: []Field{
		{Name: "notes", Type: "text", Value: strings.Repeat("a", 400)},
		{Name: "account", Type: "number", Value: strings.Repeat("1", 40)},
	}}}, Options{})
	out := r.Redact(strings.Repeat("a ", 1200) + "| " + strings.Repeat("1", 40) + " " + strings.Repeat("1", 41))
	if got := strings.Count(out, "[S1_NOTES]"); got != 3 || strings.Contains(out, "a a") {
		t.Errorf("notes replaced %d times: %.200q", got, out)
	}
	if !strings.Contains(out, "[S1_ACCOUNT] "+strings.Repeat("1", 41)) {
		t.Errorf("account: %q", out[len(out)-80:])
	}
}
