package redact

import (
	"strings"
	"unicode/utf8"

	"tutela/privacy"
)

// needle is one form of a subject's value to look for.
type needle struct {
	s     string
	ph    int
	gap   gapKind         // the non-word characters allowed between the value's parts
	bound func(rune) bool // a neighbour that means the match is inside a longer word or number
	plus  bool            // an international phone number: take a "+" just before it along
	num   bool            // a number: a decimal mark followed by a digit also joins
	ll    bool            // an Arabic name without its article: only after "لل" ("for the")
}

// gapKind names the characters allowed between a value's parts.
type gapKind uint8

const (
	anyGap   gapKind = iota // anything
	nameGap                 // space, hyphen, apostrophes, period
	phoneGap                // any of " .-()/"
	idGap                   // any of " .-/"
	gapKinds
)

// gapAllows reports whether the gap kind k allows the non-word character r.
func gapAllows(k gapKind, r rune) bool {
	switch k {
	case nameGap:
		return r == ' ' || r == '-' || r == '\'' || r == '’' || r == '.'
	case phoneGap:
		return strings.ContainsRune(" .-()/", r)
	case idGap:
		return strings.ContainsRune(" .-/", r)
	}
	return true
}

// wordBound: a letter or digit next to the match, unless it is in a script written without
// spaces.
func wordBound(r rune) bool { return isAlnum(r) && !unspaced(r) }

// alnumBound: any letter or digit next to the match.
func alnumBound(r rune) bool { return isAlnum(r) }

// addField registers the forms of one field's value (the matching rules in the package doc).
func (r *Redactor) addField(ph int, f Field) {
	seen := r.seen
	addLL := func(s string, gap gapKind, bound func(rune) bool, plus, ll bool) {
		if k := (formKey{s, gap, plus, ll}); len(s) >= 2 && !seen[k] { // one ASCII letter or digit identifies no one
			seen[k] = true
			r.compacts = append(r.compacts, needle{s: s, ph: ph, gap: gap, bound: bound, plus: plus, ll: ll})
		}
	}
	add := func(s string, gap gapKind, bound func(rune) bool, plus bool) { addLL(s, gap, bound, plus, false) }
	n := normString(strings.TrimSpace(f.Value))
	switch f.Type {
	case privacy.FieldName:
		add(compactString(n), nameGap, wordBound, false)
		parts := strings.FieldsFunc(n, func(c rune) bool { return !isAlnum(c) })
		// Consecutive parts written together ("AdaLovelace", "عبدالله" for "عبد الله").
		for i := range min(len(parts), 8) {
			for j := i + 2; j <= min(len(parts), 8); j++ {
				if i > 0 || j < len(parts) {
					add(strings.Join(parts[i:j], ""), nameGap, wordBound, false)
				}
			}
		}
		for _, part := range parts {
			if utf8.RuneCountInString(part) >= 2 && !particles[part] {
				add(part, nameGap, wordBound, false)
			}
			// ل + الخطيب is written للخطيب: the article's alef goes.
			if rest, ok := strings.CutPrefix(part, "ال"); ok && utf8.RuneCountInString(rest) >= 2 {
				addLL(rest, nameGap, wordBound, false, true)
			}
			// A Chinese or Japanese name is written without spaces; its given name (after a
			// one-character family name) is how the person is often called.
			if rs := []rune(part); len(rs) >= 3 && unspaced(rs[0]) {
				add(string(rs[1:]), nameGap, wordBound, false)
			}
		}
	case privacy.FieldPhone:
		for _, form := range phoneForms(f.Value) {
			add(form.digits, phoneGap, alnumBound, form.plus)
		}
	case privacy.FieldEmail:
		if k := (formKey{s: "@" + n}); !seen[k] {
			seen[k] = true
			r.plains = append(r.plains, needle{s: n, ph: ph, bound: emailBound})
		}
	case privacy.FieldNationalID:
		if c := compactString(n); len(c) >= 4 {
			add(c, idGap, alnumBound, false)
		}
	case privacy.FieldDate:
		if d, ok := parseISODate(strings.TrimSpace(f.Value)); ok {
			r.dates = append(r.dates, dateNeedle{date: d, ph: ph})
		}
	case privacy.FieldAddress:
		add(compactString(n), anyGap, wordBound, false)
		parts := strings.FieldsFunc(strings.TrimSpace(f.Value), func(c rune) bool { return c == ',' || c == '\n' || c == '\r' })
		for i, p := range parts {
			if i == len(parts)-1 && i > 0 {
				break // the region: what the Region generalizer releases
			}
			np := normString(p)
			if c := compactString(np); utf8.RuneCountInString(c) >= 4 {
				add(c, anyGap, wordBound, false)
			}
			// The street without its house number ("Rainbow St" of "12 Rainbow St").
			if words := strings.Fields(np); len(words) >= 2 {
				var rest []string
				switch {
				case houseNumber(words[0]):
					rest = words[1:]
				case houseNumber(words[len(words)-1]):
					rest = words[:len(words)-1]
				}
				if c := compactString(strings.Join(rest, " ")); utf8.RuneCountInString(c) >= 4 {
					add(c, anyGap, wordBound, false)
				}
			}
		}
	case privacy.FieldText:
		if utf8.RuneCountInString(strings.TrimSpace(f.Value)) >= 8 {
			add(compactString(n), anyGap, wordBound, false)
		}
	case privacy.FieldNumber:
		digits := 0
		for _, c := range n {
			if '0' <= c && c <= '9' {
				digits++
			}
		}
		if digits >= 4 {
			for _, s := range []string{n, strings.TrimPrefix(n, "-")} {
				if k := (formKey{s: "#" + s}); !seen[k] {
					seen[k] = true
					r.plains = append(r.plains, needle{s: s, ph: ph, bound: digitBound, num: true})
				}
			}
		}
	}
}

// formKey identifies what a form matches: the gap decides the bound (the field type chooses
// both). A form is added once per Redactor: a second copy (the same parts joined twice, "a a a"
// giving "aa" twice; the same value in another field or subject) would match the same spans and
// lose every one to the first, whose placeholder comes first, and only multiply the matches a
// hostile text can produce.
type formKey struct {
	s        string
	gap      gapKind
	plus, ll bool
}

// particles are the name parts that say nothing alone and would redact every "de" and "van" of a
// text: they are matched only within the whole name or with a neighbouring part.
var particles = map[string]bool{
	"de": true, "da": true, "di": true, "do": true, "du": true, "del": true, "della": true, "der": true,
	"den": true, "des": true, "la": true, "le": true, "van": true, "von": true, "al": true, "el": true,
	"bin": true, "bint": true, "ibn": true, "ben": true, "abu": true, "dos": true, "das": true, "y": true,
}

// houseNumber reports a word that is a house number: digits, possibly with a letter or a
// range ("12", "12a", "12-14").
func houseNumber(w string) bool {
	w = strings.TrimRight(w, ",.")
	return w != "" && isDigit(w[0]) && len(w) <= 8
}

type phoneForm struct {
	digits string
	plus   bool
}

// phoneForms lists the digit strings a stored phone number is written as: for an international
// number (+ or 00) the full number, with 00, with the national trunk 0, and the national
// significant number alone (when it has 6 digits or more); otherwise the digits as stored.
func phoneForms(v string) []phoneForm {
	v = strings.TrimSpace(v)
	var d []byte
	for _, c := range normString(v) {
		if '0' <= c && c <= '9' {
			d = append(d, byte(c))
		}
	}
	s := string(d)
	intl := strings.HasPrefix(v, "+")
	if !intl && strings.HasPrefix(s, "00") {
		intl, s = true, s[2:]
	}
	if len(s) < 4 {
		return nil
	}
	if !intl {
		return []phoneForm{{digits: s}}
	}
	nsn := s[len(callingCode(s)):]
	forms := []phoneForm{{digits: s, plus: true}, {digits: "00" + s}, {digits: "0" + nsn}}
	if len(nsn) >= 6 {
		forms = append(forms, phoneForm{digits: nsn})
	}
	return forms
}

// matchSubjects appends the occurrences of every subject value in the text. Every check on an
// occurrence takes constant time (prefix counts, a word-start table), so the whole is linear in
// the text plus the occurrences, however the values and the text repeat themselves.
func (r *Redactor) matchSubjects(v *view, ms []match, rs *scratch) []match {
	if r.compactAC != nil {
		c := &rs.c
		rs.cb = c.fill(v.text, rs.cb)
		// Every form needs a word start (or an unspaced script) on its left.
		start := reuse(rs.start, len(c.text)+1)
		for _, st := range c.starts {
			start[st] = true
		}
		rs.start = start
		// After a form matched, its next match must start past that one's end: two
		// overlapping matches of one form are never both replaced (the first wins), and
		// keeping them all lets a repetitive value against repetitive text produce a match at
		// every word start, each as long as the value.
		rs.gaps.reset(v.text)
		rs.next = reuse(rs.next, len(r.compacts))
		sc := &compactScan{v: v, c: c, gaps: &rs.gaps, next: rs.next}
		scanText(r.compactAC, c.text, func(end int, ks []int32) {
			if !start[end-len(r.compacts[ks[0]].s)] {
				return
			}
			for _, k := range ks {
				ms = sc.match(&r.compacts[k], end, k, ms)
			}
		})
	}
	if r.plainAC != nil {
		rs.next = reuse(rs.next, len(r.plains))
		next := rs.next
		r.plainAC.scan(v.text, func(end int, ks []int32) {
			for _, k := range ks {
				nd := &r.plains[k]
				i := end - len(nd.s)
				if i < next[k] || !boundsOK(v.text, i, end, nd.bound) || nd.num && !numberBoundsOK(v.text, i, end) {
					continue
				}
				next[k] = end
				a, b := v.span(i, end)
				ms = append(ms, match{a: int32(a), b: int32(b), ph: int32(nd.ph), subject: true})
			}
		})
	}
	if len(r.dates) > 0 {
		ms = r.matchDates(v, ms)
	}
	return ms
}

// compactScan is the state of one text's scan for the compact forms.
type compactScan struct {
	v      *view
	c      *compact
	gaps   *gapCounts
	parens []int32 // made when first needed: prefix count of ")" minus "("
	next   []int   // per form: the compact offset its next match may start at
}

// match appends the occurrence of form nd (index k) ending at the compact offset end, if its
// gaps and neighbours make it one.
func (sc *compactScan) match(nd *needle, end int, k int32, ms []match) []match {
	v, c, next := sc.v, sc.c, sc.next
	i := end - len(nd.s)
	if i < next[k] {
		return ms
	}
	na, nb := int(c.pos[i]), int(c.pos[end-1])+1
	if nd.ll {
		if l := string(leftOfWord(v.text, na)); (l != "لل" && l != "ولل" && l != "فلل") || !rightOK(v.text, nb, nd.bound) || !sc.gaps.ok(nd.gap, na, nb) {
			return ms
		}
	} else if !sc.gaps.ok(nd.gap, na, nb) || !boundsOK(v.text, na, nb, nd.bound) && !(proclitic(leftOfWord(v.text, na)) && rightOK(v.text, nb, nd.bound)) {
		return ms
	}
	if na > 0 && v.text[na-1] == '(' {
		if sc.parens == nil {
			sc.parens = parenCounts(v.text)
		}
		if sc.parens[nb]-sc.parens[na] > 0 {
			na-- // "(079) 123 45 67": the parenthesis opened before the area code
		}
	}
	if nd.plus && na > 0 && v.text[na-1] == '+' {
		na--
	}
	next[k] = end
	a, b := v.span(na, nb)
	return append(ms, match{a: int32(a), b: int32(b), ph: int32(nd.ph), subject: true})
}

// gapCounts holds, per gap kind asked for, the number of non-word characters that kind does not
// allow in each prefix of the text, so whether a match's gaps are allowed is one subtraction.
// A kind's counts are made when first asked for, in arrays kept from one text to the next.
type gapCounts struct {
	n    string
	p    [gapKinds][]int32 // nil until made for n
	keep [gapKinds][]int32 // the arrays, kept for the next text
}

// reset starts the counts over for the text n.
func (g *gapCounts) reset(n string) {
	g.n = n
	for k := range g.p {
		if g.p[k] != nil {
			g.keep[k] = g.p[k]
		}
		g.p[k] = nil
	}
}

// gapBad lists, per gap kind, the ASCII characters that are neither word characters nor allowed
// by the kind: the common case of ok's table, without a function call per byte.
var gapBad = func() (t [gapKinds][utf8.RuneSelf]bool) {
	for k := range gapKinds {
		for c := range rune(utf8.RuneSelf) {
			t[k][c] = !isAlnum(c) && !gapAllows(k, c)
		}
	}
	return t
}()

// ok reports whether every non-word character of n[a:b] is one the gap kind allows.
func (g *gapCounts) ok(k gapKind, a, b int) bool {
	if k == anyGap {
		return true
	}
	p := g.p[k]
	if p == nil {
		if cap(g.keep[k]) < len(g.n)+1 {
			g.keep[k] = make([]int32, len(g.n)+1)
		}
		p = g.keep[k][:len(g.n)+1]
		bad, tab := int32(0), &gapBad[k]
		for i := 0; i < len(g.n); {
			if c := g.n[i]; c < utf8.RuneSelf {
				p[i] = bad
				if tab[c] {
					bad++
				}
				i++
				continue
			}
			c, size := utf8.DecodeRuneInString(g.n[i:])
			for j := i; j < i+size; j++ {
				p[j] = bad
			}
			if !isAlnum(c) && !gapAllows(k, c) {
				bad++
			}
			i += size
		}
		p[len(g.n)] = bad
		g.p[k] = p
	}
	return p[b]-p[a] == 0
}

// reuse returns s's array cleared to length n, or a new one when it is too short.
func reuse[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// parenCounts is the prefix count of ")" minus "(" in n.
func parenCounts(n string) []int32 {
	p := make([]int32, len(n)+1)
	for i := 0; i < len(n); i++ {
		p[i+1] = p[i]
		switch n[i] {
		case ')':
			p[i+1]++
		case '(':
			p[i+1]--
		}
	}
	return p
}

// rightOK reports whether the rune after n[:b] leaves the match a whole word or number.
func rightOK(n string, b int, bound func(rune) bool) bool {
	if b < len(n) {
		c, _ := utf8.DecodeRuneInString(n[b:])
		return !bound(c)
	}
	return true
}

// boundsOK reports whether the runes on either side of n[a:b] leave it a whole word or number.
func boundsOK(n string, a, b int, bound func(rune) bool) bool {
	if a > 0 {
		if c, _ := utf8.DecodeLastRuneInString(n[:a]); bound(c) {
			return false
		}
	}
	if b < len(n) {
		if c, _ := utf8.DecodeRuneInString(n[b:]); bound(c) {
			return false
		}
	}
	return true
}

func emailChar(c rune) bool {
	return isAlnum(c) || strings.ContainsRune("._%+-@", c)
}

// emailBound: an address continues while an address character follows, except a sentence's
// final period.
func emailBound(c rune) bool { return emailChar(c) && c != '.' }

func digitBound(c rune) bool { return '0' <= c && c <= '9' }

// numberBoundsOK: n[a:b] is a whole number, not the integer or fraction part of a longer one
// ("12345" in "12345.67" or "1.12345") nor a negative number's digits ("-12345").
func numberBoundsOK(n string, a, b int) bool {
	if a >= 2 && (n[a-1] == '.' || n[a-1] == ',') && digitBound(rune(n[a-2])) {
		return false
	}
	if a >= 1 && n[a-1] == '-' && !strings.HasPrefix(n[a:b], "-") {
		return false
	}
	if b+1 < len(n) && (n[b] == '.' || n[b] == ',') && digitBound(rune(n[b+1])) {
		return false
	}
	return true
}
