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
	gap   func(rune) bool // the non-word characters allowed between the value's parts
	bound func(rune) bool // a neighbour that means the match is inside a longer word or number
	plus  bool            // an international phone number: take a "+" just before it along
	num   bool            // a number: a decimal mark followed by a digit also joins
	ll    bool            // an Arabic name without its article: only after "لل" ("for the")
}

func nameGap(r rune) bool  { return r == ' ' || r == '-' || r == '\'' || r == '’' || r == '.' }
func phoneGap(r rune) bool { return strings.ContainsRune(" .-()/", r) }
func idGap(r rune) bool    { return strings.ContainsRune(" .-/", r) }
func anyGap(rune) bool     { return true }

// wordBound: a letter or digit next to the match, unless it is in a script written without
// spaces.
func wordBound(r rune) bool { return isAlnum(r) && !unspaced(r) }

// alnumBound: any letter or digit next to the match.
func alnumBound(r rune) bool { return isAlnum(r) }

// addField registers the forms of one field's value (the matching rules in the package doc).
func (r *Redactor) addField(ph int, f Field) {
	add := func(s string, gap, bound func(rune) bool, plus bool) {
		if len(s) >= 2 { // one ASCII letter or digit identifies no one
			key := [2]byte{s[0], s[1]}
			r.byPrefix[key] = append(r.byPrefix[key], len(r.compacts))
			r.compacts = append(r.compacts, needle{s: s, ph: ph, gap: gap, bound: bound, plus: plus})
		}
	}
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
				add(rest, nameGap, wordBound, false)
				r.compacts[len(r.compacts)-1].ll = true
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
		r.plains = append(r.plains, needle{s: n, ph: ph, bound: emailBound})
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
			r.plains = append(r.plains, needle{s: n, ph: ph, bound: digitBound, num: true})
			if strings.HasPrefix(n, "-") {
				r.plains = append(r.plains, needle{s: n[1:], ph: ph, bound: digitBound, num: true})
			}
		}
	}
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

// matchSubjects appends the occurrences of every subject value in the text.
func (r *Redactor) matchSubjects(v *view, ms []match) []match {
	if len(r.compacts) > 0 {
		c := compactOf(v.text)
		// Every form needs a word start (or an unspaced script) on its left, so only word
		// starts are tried, against the forms that begin with the same two bytes.
		for _, st := range c.starts {
			i := int(st)
			if i+2 > len(c.text) {
				continue
			}
			for _, k := range r.byPrefix[[2]byte{c.text[i], c.text[i+1]}] {
				nd := &r.compacts[k]
				if !strings.HasPrefix(c.text[i:], nd.s) {
					continue
				}
				last := i + len(nd.s) - 1
				na, nb := int(c.pos[i]), int(c.pos[last])+1
				if nd.ll {
					if l := string(leftOfWord(v.text, na)); (l != "لل" && l != "ولل" && l != "فلل") || !rightOK(v.text, nb, nd.bound) || !gapsOK(v.text[na:nb], nd.gap) {
						continue
					}
				} else if !gapsOK(v.text[na:nb], nd.gap) || !boundsOK(v.text, na, nb, nd.bound) && !(proclitic(leftOfWord(v.text, na)) && rightOK(v.text, nb, nd.bound)) {
					continue
				}
				if na > 0 && v.text[na-1] == '(' && strings.Count(v.text[na:nb], ")") > strings.Count(v.text[na:nb], "(") {
					na-- // "(079) 123 45 67": the parenthesis opened before the area code
				}
				if nd.plus && na > 0 && v.text[na-1] == '+' {
					na--
				}
				a, b := v.span(na, nb)
				ms = append(ms, match{a: int32(a), b: int32(b), ph: int32(nd.ph), subject: true})
			}
		}
	}
	for _, nd := range r.plains {
		for off := 0; ; {
			i := strings.Index(v.text[off:], nd.s)
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			if !boundsOK(v.text, i, i+len(nd.s), nd.bound) || nd.num && !numberBoundsOK(v.text, i, i+len(nd.s)) {
				continue
			}
			a, b := v.span(i, i+len(nd.s))
			ms = append(ms, match{a: int32(a), b: int32(b), ph: int32(nd.ph), subject: true})
		}
	}
	if len(r.dates) > 0 {
		ms = r.matchDates(v, ms)
	}
	return ms
}

// gapsOK reports whether every non-word character of s is one gap allows.
func gapsOK(s string, gap func(rune) bool) bool {
	for _, c := range s {
		if !isAlnum(c) && !gap(c) {
			return false
		}
	}
	return true
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
