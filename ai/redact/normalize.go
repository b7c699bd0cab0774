package redact

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// view is a normalized copy of a text with, for each of its bytes, the byte range of the original
// rune(s) it came from, so a match found in the normalized text is replaced in the original.
type view struct {
	text       string
	start, end []int32 // per byte of text: the original range [start, end)
}

// span maps the normalized byte range [a, b) back to the original text.
func (v *view) span(a, b int) (int, int) { return int(v.start[a]), int(v.end[b-1]) }

// normalize builds the matching view of s: NFKD compatibility decomposition with every
// non-spacing mark dropped (Latin diacritics, Arabic harakat, the hamza and madda that NFKD splits
// off أ إ آ ؤ ئ), simple case folding (plus ß → ss, final ς → σ), Arabic-Indic and Extended
// Arabic-Indic digits as ASCII, the Arabic letter variants unified (ٱ → ا, ى ی → ي, ک → ك, ة → ه),
// the invisible joiners and marks removed (ZWNJ, ZWJ, zero-width space, tatweel, soft hyphen,
// bidi controls, BOM), and every run of white space as one space. Both a subject's values and the
// text go through it, so they meet on the same form.
func normalize(s string) *view {
	v := &view{start: make([]int32, 0, len(s)+8), end: make([]int32, 0, len(s)+8)}
	b := make([]byte, 0, len(s)+8)
	space := false
	emit := func(r rune, from, to int) {
		if r == ' ' {
			if space { // extend the run's single space over this one
				v.end[len(v.end)-1] = int32(to)
				return
			}
			space = true
		} else {
			space = false
		}
		n := len(b)
		b = utf8.AppendRune(b, r)
		for range len(b) - n {
			v.start = append(v.start, int32(from))
			v.end = append(v.end, int32(to))
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				c = ' '
			}
			emit(rune(c), i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		foldRune(r, func(out rune) { emit(out, i, i+size) })
		i += size
	}
	v.text = string(b)
	return v
}

// foldRune calls f with each rune r normalizes to (none when r is dropped).
func foldRune(r rune, f func(rune)) {
	if removed(r) {
		return
	}
	if unicode.IsSpace(r) {
		f(' ')
		return
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	d := norm.NFKD.Properties(buf[:n]).Decomposition()
	if d == nil {
		d = buf[:n]
	}
	for len(d) > 0 {
		x, size := utf8.DecodeRune(d)
		d = d[size:]
		if unicode.Is(unicode.Mn, x) || removed(x) {
			continue
		}
		switch x {
		case 'ß', 'ẞ':
			f('s')
			f('s')
			continue
		}
		f(fold1(x))
	}
}

// fold1 lowercases one rune and applies the digit and Arabic letter unifications.
func fold1(x rune) rune {
	switch {
	case x >= 0x0660 && x <= 0x0669: // Arabic-Indic digits
		return '0' + x - 0x0660
	case x >= 0x06F0 && x <= 0x06F9: // Extended Arabic-Indic (Persian, Urdu) digits
		return '0' + x - 0x06F0
	}
	switch x {
	case 'ٱ', 'أ', 'إ', 'آ': // alef wasla; the hamza forms already lost their mark in NFKD
		return 'ا'
	case 'ى', 'ی': // alef maksura, Farsi yeh
		return 'ي'
	case 'ک': // keheh
		return 'ك'
	case 'ة': // teh marbuta, often written as heh
		return 'ه'
	case 'ς':
		return 'σ'
	}
	return unicode.ToLower(x)
}

// removed reports the invisible characters that must not split a match: joiners that Persian
// and Arabic writers place inside names, the tatweel that stretches a word, soft hyphens, and the
// bidi controls a text can carry between every word.
func removed(r rune) bool {
	switch {
	case r == 0x200B, r == 0x200C, r == 0x200D, r == 0x0640, r == 0x00AD, r == 0xFEFF, r == 0x061C,
		r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// normString is normalize for a value: the normalized text alone.
func normString(s string) string { return normalize(s).text }

// isAlnum reports whether r (already normalized) is part of a word.
func isAlnum(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mc, r)
}

// unspaced reports scripts written without spaces between words (Chinese, Japanese, Thai, Lao,
// Khmer, Myanmar): a name there has no word boundary to check.
func unspaced(r rune) bool {
	return r >= 0x0E00 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai,
		unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// compact is the letters-and-digits view of a normalized text: its word characters only, each
// byte with its offset in the normalized text, so a value matches whatever punctuation and
// spacing the writer put between its parts.
type compact struct {
	text string
	pos  []int32 // per byte: offset in the normalized text
}

func compactOf(n string) *compact {
	c := &compact{pos: make([]int32, 0, len(n))}
	b := make([]byte, 0, len(n))
	for i, r := range n {
		if !isAlnum(r) {
			continue
		}
		k := len(b)
		b = utf8.AppendRune(b, r)
		for j := range len(b) - k {
			c.pos = append(c.pos, int32(i+j))
		}
	}
	c.text = string(b)
	return c
}

// compactString is the word characters of a normalized value.
func compactString(n string) string {
	b := make([]byte, 0, len(n))
	for _, r := range n {
		if isAlnum(r) {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}
