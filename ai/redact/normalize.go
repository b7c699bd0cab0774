package redact

import (
	"unicode"
	"unicode/utf16"
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

// normalize builds the matching view of s: JSON string escapes decoded, NFKD compatibility
// decomposition with every non-spacing mark dropped (Latin diacritics, Arabic harakat, the hamza
// and madda that NFKD splits off أ إ آ ؤ ئ), simple case folding, the Latin letters NFKD keeps
// whole spelled in ASCII (latinExpand), look-alike Cyrillic and Greek letters as Latin
// (confusable), every dash and the minus sign as "-", Arabic-Indic and Extended Arabic-Indic
// digits as ASCII, the Arabic letter variants unified (ٱ → ا, ى ی → ي, ک → ك, ة → ه), every
// format character and the tatweel removed, and every run of white space as one space. Both a
// subject's values and the text go through it, so they meet on the same form.
func normalize(s string) *view { return normalizeOf(s, true) }

// normString is normalize for a value: the normalized text alone.
func normString(s string) string { return normalizeOf(s, false).text }

func normalizeOf(s string, offsets bool) *view {
	v := &view{}
	v.fill(s, offsets, nil)
	return v
}

// fill makes v the view of s (with the offsets when asked), reusing v's offset slices and b for
// the bytes, and returns b for the next call: a Redactor keeps them from one string to the next,
// so a request's strings cost no new offset arrays.
func (v *view) fill(s string, offsets bool, b []byte) []byte {
	if offsets {
		if cap(v.start) < len(s)+8 {
			v.start, v.end = make([]int32, 0, len(s)+8), make([]int32, 0, len(s)+8)
		}
		v.start, v.end = v.start[:0], v.end[:0]
	} else {
		v.start, v.end = nil, nil
	}
	if cap(b) < len(s)+8 {
		b = make([]byte, 0, len(s)+8)
	}
	b = b[:0]
	space := false
	last := -1 // where the last emitted rune's bytes start
	emit := func(r rune, from, to int) {
		if r == ' ' {
			if space { // extend the run's single space over this one
				if offsets {
					v.end[len(v.end)-1] = int32(to)
				}
				return
			}
			space = true
		} else {
			space = false
		}
		n := len(b)
		last = n
		b = utf8.AppendRune(b, r)
		for range len(b) - n {
			if offsets {
				v.start = append(v.start, int32(from))
				v.end = append(v.end, int32(to))
			}
		}
	}
	fold := func(r rune, from, to int) {
		emitted := false
		foldRune(r, func(out rune) { emitted = true; emit(out, from, to) })
		if !emitted && last >= 0 && offsets {
			// A dropped mark or joiner belongs to the rune before it: replacing that rune
			// replaces it too, so no combining mark is left dangling on a placeholder.
			for k := last; k < len(v.end); k++ {
				v.end[k] = int32(to)
			}
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' {
			// JSON text (a tool result) writes a character as an escape: the view holds the
			// character, mapped back to the whole escape, so a match is replaced over it.
			if i+1 < len(s) && s[i+1] == '\\' { // an escaped backslash starts no escape
				emit('\\', i, i+1)
				emit('\\', i+1, i+2)
				i += 2
				continue
			}
			if r, size := decodeEscape(s[i:]); size > 0 {
				if r < utf8.RuneSelf {
					c := byte(r)
					switch {
					case 'A' <= c && c <= 'Z':
						r += 'a' - 'A'
					case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
						r = ' '
					}
					emit(r, i, i+size)
				} else {
					fold(r, i, i+size)
				}
				i += size
				continue
			}
		}
		if c < utf8.RuneSelf {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				c = ' '
			}
			if c != ' ' { // the common case, without the closure
				space = false
				last = len(b)
				b = append(b, c)
				if offsets {
					v.start = append(v.start, int32(i))
					v.end = append(v.end, int32(i+1))
				}
				i++
				continue
			}
			emit(rune(c), i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		fold(r, i, i+size)
		i += size
	}
	v.text = string(b)
	return b
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
	if r == 'ŀ' || r == 'Ŀ' { // NFKD makes it "l·", and the middle dot would split the word
		f('l')
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
		y := fold1(x)
		if e, ok := latinExpand[y]; ok {
			for _, c := range e {
				f(c)
			}
			continue
		}
		f(y)
	}
}

// latinExpand spells the Latin letters NFKD leaves whole as the ASCII a writer without them
// types: "Kılıç" as "Kilic", "Łukasz" as "Lukasz", "Søren" as "Soren", "Đorđe" as "Dorde",
// "Æsa" as "Aesa", "Þóra" as "Thora", "Straße" as "Strasse" (keys in lower case).
var latinExpand = map[rune]string{
	'ı': "i", 'ł': "l", 'ø': "o", 'đ': "d", 'ħ': "h", 'ŧ': "t", 'æ': "ae", 'œ': "oe", 'þ': "th",
	'ð': "d", 'ß': "ss", 'ƀ': "b", 'ɨ': "i", 'ƶ': "z", 'ĸ': "q",
}

// confusable maps the Cyrillic and Greek letters that look like Latin ones (in lower case, after
// folding) to those Latin letters, so a value written with a Cyrillic "а" or a Greek "Ο" inside
// a Latin name still matches; as both the text and the values are folded the same way, Cyrillic
// and Greek names still match each other. Cyrillic: а→a в→b е→e к→k м→m н→h о→o р→p с→c т→t
// у→y х→x і→i ѕ→s ј→j ԁ→d һ→h ӏ→l ԛ→q ԝ→w; Greek: α→a β→b ε→e ζ→z η→h ι→i κ→k μ→m ν→n
// ο→o ρ→p τ→t υ→y χ→x.
var confusable = map[rune]rune{
	'а': 'a', 'в': 'b', 'е': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c',
	'т': 't', 'у': 'y', 'х': 'x', 'і': 'i', 'ѕ': 's', 'ј': 'j', 'ԁ': 'd', 'һ': 'h', 'ӏ': 'l',
	'ԛ': 'q', 'ԝ': 'w',
	'α': 'a', 'β': 'b', 'ε': 'e', 'ζ': 'z', 'η': 'h', 'ι': 'i', 'κ': 'k', 'μ': 'm', 'ν': 'n',
	'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'y', 'χ': 'x',
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
	case 0x2212: // minus sign, which writers and converters put for a hyphen
		return '-'
	}
	if unicode.Is(unicode.Pd, x) { // en and em dash, non-breaking hyphen, figure dash, …
		return '-'
	}
	x = unicode.ToLower(x)
	if c, ok := confusable[x]; ok {
		return c
	}
	return x
}

// removed reports the invisible characters that must not split a match: every format character
// (Unicode category Cf: the joiners that Persian and Arabic writers place inside names, soft
// hyphens, bidi controls, the word joiner and invisible operators, tag characters, the
// Mongolian vowel separator, BOM; any of them can be put inside a value to hide it while the
// model reads past it) and the tatweel that stretches an Arabic word.
func removed(r rune) bool {
	return r == 0x0640 || r >= 0xAD && unicode.Is(unicode.Cf, r)
}

// isAlnum reports whether r (already normalized) is part of a word.
func isAlnum(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiAlnum[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mc, r)
}

var asciiAlnum = func() (t [utf8.RuneSelf]bool) {
	for c := range utf8.RuneSelf {
		t[c] = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z'
	}
	return t
}()

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
	text   []byte  // the bytes of the fill call's buffer: valid until the next fill
	pos    []int32 // per byte: offset in the normalized text
	starts []int32 // the offsets where a word begins, or any rune of an unspaced script
}

// fill makes c the compact view of n, reusing c's slices and b for the bytes, and returns b
// for the next call.
func (c *compact) fill(n string, b []byte) []byte {
	if cap(c.pos) < len(n) {
		c.pos = make([]int32, 0, len(n))
	}
	c.pos, c.starts = c.pos[:0], c.starts[:0]
	if cap(b) < len(n) {
		b = make([]byte, 0, len(n))
	}
	b = b[:0]
	prev, prevAlnum := rune(0), false
	word := 0 // runes of the current word so far
	var head [3]rune
	for i, r := range n {
		if r < utf8.RuneSelf && (!prevAlnum || prev < utf8.RuneSelf) {
			// The common case: an ASCII character after a space or after ASCII. No script
			// rule applies, nor the proclitic one: a head that ends in ASCII is no proclitic.
			if !asciiAlnum[r] {
				prev, prevAlnum = r, false
				continue
			}
			if !prevAlnum {
				word = 0
				c.starts = append(c.starts, int32(len(b)))
			}
			if word < 3 {
				head[word] = r
			}
			word++
			b = append(b, byte(r))
			c.pos = append(c.pos, int32(i))
			prev, prevAlnum = r, true
			continue
		}
		alnum := isAlnum(r)
		if alnum {
			if !prevAlnum {
				word = 0
			}
			if !prevAlnum || unspaced(r) || unspaced(prev) || word <= 3 && proclitic(head[:word]) {
				c.starts = append(c.starts, int32(len(b)))
			}
			if word < 3 {
				head[word] = r // #nosec G602 -- guarded by word < 3; head is [3]rune
			}
			word++
			k := len(b)
			b = utf8.AppendRune(b, r)
			for j := range len(b) - k {
				c.pos = append(c.pos, int32(i+j))
			}
		}
		prev, prevAlnum = r, alnum
	}
	c.text = b
	return b
}

// proclitics are the Arabic particles written joined to the next word: "and", "so", "with",
// "for", "like", the article, and their combinations ("ومحمد", "لمحمد", "والأحمد").
var proclitics = map[string]bool{
	"و": true, "ف": true, "ب": true, "ل": true, "ك": true, "ال": true, "وال": true, "بال": true, "فال": true,
	"كال": true, "لل": true, "ولل": true, "فلل": true, "وب": true, "ول": true, "فب": true, "فل": true, "وك": true, "فك": true,
}

// proclitic reports whether the runes that begin a word are an Arabic proclitic sequence.
func proclitic(head []rune) bool {
	if len(head) == 0 || head[0] < 0x0600 || head[0] > 0x06FF {
		return false
	}
	return proclitics[string(head)]
}

// leftOfWord returns the runes from the start of the word that n[:i] ends in, up to i, or
// nothing when that is more than three runes.
func leftOfWord(n string, i int) []rune {
	var rs []rune
	for j := i; j > 0 && len(rs) <= 3; {
		c, size := utf8.DecodeLastRuneInString(n[:j])
		if !isAlnum(c) {
			break
		}
		rs = append([]rune{c}, rs...)
		j -= size
	}
	if len(rs) > 3 {
		return nil
	}
	return rs
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

// decodeEscape decodes the JSON string escape at the start of s (RFC 8259 §7) that stands for a
// character a writer could hide a value behind: `\uXXXX`, a UTF-16 surrogate pair
// `\uD83D\uDE00` as one character, and `\/`. It returns the character and the escape's length,
// or size 0 when s does not start with one (a lone surrogate, too few hex digits): an invalid
// escape stays as written.
func decodeEscape(s string) (rune, int) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == '/' {
		return '/', 2
	}
	r, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	switch {
	case utf16.IsSurrogate(r):
		r2, ok := hex4(s[6:])
		if !ok || r >= 0xDC00 {
			return 0, 0
		}
		if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
			return d, 12
		}
		return 0, 0
	}
	return r, 6
}

// hex4 reads `\u` and four hex digits at the start of s.
func hex4(s string) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
