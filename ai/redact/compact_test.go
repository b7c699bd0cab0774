package redact

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// compactRef is the compact view built rune by rune with every rule, as before the ASCII fast
// path: the reference the fast path must agree with.
func compactRef(n string) (string, []int32, []int32) {
	var b []byte
	var pos, starts []int32
	prev, prevAlnum := rune(0), false
	word := 0
	var head [3]rune
	for i, r := range n {
		alnum := isAlnum(r)
		if alnum {
			if !prevAlnum {
				word = 0
			}
			if !prevAlnum || unspaced(r) || unspaced(prev) || word <= 3 && proclitic(head[:word]) {
				starts = append(starts, int32(len(b)))
			}
			if word < 3 {
				head[word] = r
			}
			word++
			k := len(b)
			b = utf8.AppendRune(b, r)
			for j := range len(b) - k {
				pos = append(pos, int32(i+j))
			}
		}
		prev, prevAlnum = r, alnum
	}
	return string(b), pos, starts
}

// TestCompact_FastPathAgreesWithRules: the compact view of random mixes of ASCII, Arabic
// proclitics, Han and punctuation has the same text, offsets and word starts as the rune by rune
// rules give, reusing one compact from text to text.
func TestCompact_FastPathAgreesWithRules(t *testing.T) {
	pieces := []string{"a", "b", "1", "x", " ", ".", "-", "و", "ال", "ل", "محمد", "张", "伟", "ก", "é", "ab", "abcd", "وab", "aو"}
	rng := rand.New(rand.NewPCG(3, 4))
	var c compact
	var buf []byte
	for round := range 5000 {
		var sb strings.Builder
		for range rng.IntN(16) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		n := sb.String()
		buf = c.fill(n, buf)
		text, pos, starts := compactRef(n)
		if string(c.text) != text || !slices.Equal(c.pos, pos) || !slices.Equal(c.starts, starts) {
			t.Fatalf("round %d: compact of %q = %q %v %v, want %q %v %v", round, n, c.text, c.pos, c.starts, text, pos, starts)
		}
	}
}
